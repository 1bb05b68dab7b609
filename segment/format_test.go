package segment

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFileName(t *testing.T) {
	for _, lsn := range []uint64{1, 9, 10, 4097, 1 << 40, math.MaxUint64} {
		name := FileName(lsn)
		assert.Len(t, name, 24)
		got, ok := ParseFileName(name)
		require.True(t, ok, name)
		assert.Equal(t, lsn, got)
	}
	assert.Equal(t, "00000000000000000001.seg", FileName(1))
	assert.Equal(t, "18446744073709551615.seg", FileName(math.MaxUint64))
	assert.Less(t, FileName(9), FileName(10), "names sort by base LSN")

	for _, name := range []string{
		"",
		".seg",
		"00000000000000000000.seg",     // base LSN 0
		"0000000000000000001.seg",      // 19 digits
		"000000000000000000001.seg",    // 21 digits
		"00000000000000000001.seg.tmp", // being prepared
		"00000000000000000001.tmp",
		"00000000000000000001.SEG",
		"00000000000000000001.wal",
		"00000000000000000001",
		"0000000000000000000x.seg",
		"+0000000000000000001.seg",
		"-0000000000000000001.seg",
		" 0000000000000000001.seg",
		"99999999999999999999.seg", // overflows uint64
		"notes.txt",
		"LOCK",
	} {
		_, ok := ParseFileName(name)
		assert.False(t, ok, "%q is not a segment name", name)
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{FileName(300), FileName(1), FileName(20), FileName(20) + TempFileSuffix, "notes.txt", "0001.seg"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, FileName(5)), 0o755))
	bases, other, err := List(dir)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 20, 300}, bases)
	assert.Equal(t, []string{"00000000000000000005.seg", "00000000000000000020.seg.tmp", "0001.seg", "notes.txt"}, other)

	_, _, err = List(filepath.Join(dir, "missing"))
	require.Error(t, err)
}

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Version: Version, Seq: 3, BaseLSN: 12345, Size: 64 << 20, Salt: 0xdeadbeef, Created: 1_700_000_000_123_456_789}
	var b [HeaderSize]byte
	h.MarshalTo(b[:])
	got, err := ParseHeader(b[:])
	require.NoError(t, err)
	assert.Equal(t, h, got)
	// A version 1 header (a segment written before version 2) reads too.
	h1 := h
	h1.Version = 1
	var b1 [HeaderSize]byte
	h1.MarshalTo(b1[:])
	got, err = ParseHeader(b1[:])
	require.NoError(t, err)
	assert.Equal(t, h1, got)

	// The layout of the spec, field by field.
	assert.Equal(t, Magic, string(b[0:8]))
	assert.Equal(t, uint16(2), binary.LittleEndian.Uint16(b[8:]))
	assert.Equal(t, uint16(64), binary.LittleEndian.Uint16(b[10:]))
	assert.Equal(t, uint32(4096), binary.LittleEndian.Uint32(b[12:]))
	assert.Equal(t, uint64(3), binary.LittleEndian.Uint64(b[16:]))
	assert.Equal(t, uint64(12345), binary.LittleEndian.Uint64(b[24:]))
	assert.Equal(t, uint64(64<<20), binary.LittleEndian.Uint64(b[32:]))
	assert.Equal(t, uint32(0xdeadbeef), binary.LittleEndian.Uint32(b[40:]))
	assert.Equal(t, uint32(0), binary.LittleEndian.Uint32(b[44:]))
	assert.Equal(t, uint64(1_700_000_000_123_456_789), binary.LittleEndian.Uint64(b[48:]))
	assert.Equal(t, uint32(0), binary.LittleEndian.Uint32(b[56:]))
	assert.Equal(t, independentCRCOf(b[:60]), binary.LittleEndian.Uint32(b[60:]))

	// Version zero is written as the current version.
	h.Version = 0
	var b2 [HeaderSize]byte
	h.MarshalTo(b2[:])
	assert.Equal(t, b, b2)

	// Every single bit flip is caught.
	for i := range HeaderSize * 8 {
		c := b
		c[i/8] ^= 1 << (i % 8)
		_, err := ParseHeader(c[:])
		require.Error(t, err, "bit %d", i)
	}

	assert.Panics(t, func() { h.MarshalTo(make([]byte, HeaderSize-1)) })
}

func TestFrameLayout(t *testing.T) {
	payload := []byte("hello, segment")
	h := FrameHeader{LSN: 0x0102030405060708, Lag: 3, Flags: FlagBatchContinues, Epoch: 0x0a0b}
	frame := AppendFrame(nil, testSalt, h, payload)
	require.Len(t, frame, FrameSize(len(payload)))
	assert.Equal(t, 24+len(payload), FrameSize(len(payload)))

	assert.Equal(t, uint32(len(payload)), binary.LittleEndian.Uint32(frame[4:]))
	assert.Equal(t, h.LSN, binary.LittleEndian.Uint64(frame[8:]))
	assert.Equal(t, uint32(3), binary.LittleEndian.Uint32(frame[16:]))
	assert.Equal(t, uint8(TypeRecord), frame[20], "type 0 is written as TypeRecord")
	assert.Equal(t, uint8(FlagBatchContinues), frame[21])
	assert.Equal(t, uint16(0x0a0b), binary.LittleEndian.Uint16(frame[22:]))
	assert.Equal(t, independentCRC(testSalt, frame), binary.LittleEndian.Uint32(frame[0:]))
	assert.Equal(t, payload, frame[24:])

	got, err := DecodeFrameHeader(frame)
	require.NoError(t, err)
	want := h
	want.Length, want.Type, want.CRC = uint32(len(payload)), TypeRecord, binary.LittleEndian.Uint32(frame[0:])
	assert.Equal(t, want, got)
	_, err = DecodeFrameHeader(frame[:23])
	require.Error(t, err)

	// The salt seeds the checksum: the same frame in another segment does
	// not verify.
	other := AppendFrame(nil, testSalt+1, h, payload)
	assert.NotEqual(t, frame[:4], other[:4])
	assert.Equal(t, frame[4:], other[4:])

	// The header alone, for a payload that is placed elsewhere.
	var hdr [FrameHeaderSize]byte
	EncodeFrameHeader(hdr[:], testSalt, h, payload)
	assert.Equal(t, frame[:FrameHeaderSize], hdr[:])

	assert.Panics(t, func() { EncodeFrameHeader(hdr[:23], testSalt, h, payload) })
}

func TestAppendFrameDoesNotAllocate(t *testing.T) {
	payload := bytes.Repeat([]byte{7}, 1000)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendFrame(buf[:0], testSalt, FrameHeader{LSN: 9, Lag: 1}, payload)
	})
	assert.Zero(t, allocs)

	// Growing keeps what was there.
	small := []byte("ab")
	small = AppendFrame(small, testSalt, FrameHeader{LSN: 1, Lag: 1}, payload)
	assert.Equal(t, "ab", string(small[:2]))
	assert.Len(t, small, 2+FrameSize(len(payload)))
}

func TestEmptyRecordIsValid(t *testing.T) {
	s := newSeg(t, seqFrames(0, 0, 0)...)
	res := readAll(t, s.data, ReaderOptions{})
	require.ErrorIs(t, res.err, io.EOF)
	require.Equal(t, lsnRange(100, 102), lsns(res.recs))
	for _, r := range res.recs {
		assert.Empty(t, r.Payload)
	}
}

// TestLastNonZero compares lastNonZero with a byte-by-byte scan over buffers
// of zeros around the comparison block's size with one or two bytes set.
func TestLastNonZero(t *testing.T) {
	naive := func(b []byte) int {
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return i
			}
		}
		return -1
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 9, len(zeroBlock) - 1, len(zeroBlock), len(zeroBlock) + 1, 3*len(zeroBlock) + 5} {
		b := make([]byte, n)
		require.Equal(t, -1, lastNonZero(b), "n=%d, all zero", n)
		for range 50 {
			clear(b)
			if n == 0 {
				break
			}
			b[rng.IntN(n)] = byte(1 + rng.IntN(255))
			if rng.IntN(2) == 0 {
				b[rng.IntN(n)] = byte(1 + rng.IntN(255))
			}
			require.Equal(t, naive(b), lastNonZero(b), "n=%d", n)
		}
		if n > 1 {
			clear(b)
			b[n-1], b[0] = 1, 1
			require.Equal(t, n-1, lastNonZero(b))
			b[n-1] = 0
			require.Equal(t, 0, lastNonZero(b))
		}
	}
}

func BenchmarkLastNonZero(b *testing.B) {
	buf := make([]byte, 1<<20)
	buf[0] = 1
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if lastNonZero(buf) != 0 {
			b.Fatal("wrong")
		}
	}
}
