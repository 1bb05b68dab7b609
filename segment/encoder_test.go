package segment

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEncoderAppend(t *testing.T) {
	buf := make([]byte, 300)
	e := NewEncoder(testSalt, 2, 0)
	e.Reset(buf, 8192, 50)

	var want []byte
	for i, n := range []int{10, 0, 100} {
		p := payloadFor(uint64(50+i), n, 0)
		lsn, off, err := e.Append(p, uint64(49+i), 0)
		require.NoError(t, err)
		assert.Equal(t, uint64(50+i), lsn)
		assert.Equal(t, int64(8192+len(want)), off)
		want = AppendFrame(want, testSalt, FrameHeader{LSN: lsn, Lag: 1, Epoch: 2}, p)
	}
	assert.Equal(t, want, e.Bytes())
	assert.Equal(t, len(want), e.Len())
	assert.Equal(t, 300-len(want), e.Available())
	assert.Equal(t, int64(8192+len(want)), e.Offset())
	assert.Equal(t, uint64(53), e.NextLSN())
	assert.Equal(t, uint32(testSalt), e.Salt())
	assert.Equal(t, uint16(2), e.Epoch())

	// A frame that does not fit lays nothing.
	_, _, err := e.Append(make([]byte, 300-len(want)-FrameHeaderSize+1), 52, 0)
	require.ErrorIs(t, err, ErrBufferFull)
	assert.Equal(t, want, e.Bytes())
	assert.Equal(t, uint64(53), e.NextLSN())

	// Exactly filling the buffer works.
	_, _, err = e.Append(make([]byte, 300-len(want)-FrameHeaderSize), 52, 0)
	require.NoError(t, err)
	assert.Zero(t, e.Available())
	_, _, err = e.Append(nil, 53, 0)
	require.ErrorIs(t, err, ErrBufferFull, "even an empty record needs a frame header")

	// The next buffer follows on in the segment.
	next := make([]byte, 100)
	e.Continue(next)
	lsn, off, err := e.Append([]byte("x"), 10, FlagBatchContinues)
	require.NoError(t, err)
	assert.Equal(t, uint64(54), lsn)
	assert.Equal(t, int64(8192+300), off)
	fh, err := DecodeFrameHeader(e.Bytes())
	require.NoError(t, err)
	assert.Equal(t, uint32(44), fh.Lag, "lag is the distance to the durable watermark")
	assert.Equal(t, uint8(FlagBatchContinues), fh.Flags)
}

func TestEncoderRefuses(t *testing.T) {
	e := NewEncoder(testSalt, 0, 100)
	e.Reset(make([]byte, 1000), DataOffset, 10)
	_, _, err := e.Append(make([]byte, 101), 9, 0)
	require.ErrorIs(t, err, ErrRecordTooLarge)
	_, _, err = e.AppendSplit(make([]byte, 101), 9, 0)
	require.ErrorIs(t, err, ErrRecordTooLarge)
	_, _, err = e.Append(nil, 9, 2)
	require.ErrorContains(t, err, "unknown frame flags")
	_, _, err = e.Append(nil, 10, 0)
	require.ErrorContains(t, err, "durable watermark 10 not below lsn 10")
	assert.Zero(t, e.Len())
	assert.Equal(t, uint64(10), e.NextLSN())

	// Without a buffer everything is full.
	e2 := NewEncoder(testSalt, 0, 0)
	e2.Reset(nil, DataOffset, 1)
	_, _, err = e2.Append(nil, 0, 0)
	require.ErrorIs(t, err, ErrBufferFull)

	assert.Equal(t, MaxRecordSizeLimit, NewEncoder(0, 0, math.MaxInt).maxRec)
	assert.Equal(t, DefaultMaxRecordSize, NewEncoder(0, 0, -1).maxRec)
}

func TestEncoderLagIsCapped(t *testing.T) {
	e := NewEncoder(testSalt, 0, 0)
	e.Reset(make([]byte, 100), DataOffset, 1<<40)
	_, _, err := e.Append(nil, 0, 0)
	require.NoError(t, err)
	fh, err := DecodeFrameHeader(e.Bytes())
	require.NoError(t, err)
	assert.Equal(t, uint32(math.MaxUint32), fh.Lag, "a capped lag claims a lower watermark, which is safe")
}

// TestEncoderSplit lays records larger than the buffers across many small
// buffers and checks that the segment bytes are those of the frames laid
// back to back, and that a Reader reads them.
func TestEncoderSplit(t *testing.T) {
	for _, bufSize := range []int{1, 7, 24, 25, 100, 4096} {
		sizes := []int{0, 1, 23, 24, 300, 5, 1000, 0, 77}
		e := NewEncoder(testSalt, 0, 0)
		var disk, want []byte
		buf := make([]byte, bufSize)
		e.Reset(buf, DataOffset, testBaseLSN)
		flush := func() {
			disk = append(disk, e.Bytes()...)
			e.Continue(buf)
		}
		for i, n := range sizes {
			p := payloadFor(uint64(testBaseLSN+i), n, 0)
			want = AppendFrame(want, testSalt, FrameHeader{LSN: uint64(testBaseLSN + i), Lag: 1}, p)
			offBefore := e.Offset()
			lsn, off, err := e.AppendSplit(p, uint64(testBaseLSN+i-1), 0)
			require.NoError(t, err)
			assert.Equal(t, uint64(testBaseLSN+i), lsn)
			assert.Equal(t, offBefore, off)
			for e.Pending() > 0 {
				_, _, err := e.Append(nil, 0, 0)
				require.ErrorIs(t, err, ErrBufferFull, "nothing goes in while a frame is pending")
				flush()
			}
		}
		disk = append(disk, e.Bytes()...)
		require.Equal(t, want, disk, "buf=%d", bufSize)

		data := make([]byte, DataOffset+len(disk))
		h := testHeader()
		h.MarshalTo(data)
		copy(data[DataOffset:], disk)
		res := readAll(t, data, ReaderOptions{})
		require.ErrorIs(t, res.err, io.EOF)
		require.Len(t, res.recs, len(sizes))
		for i, r := range res.recs {
			assert.True(t, bytes.Equal(payloadFor(uint64(testBaseLSN+i), sizes[i], 0), r.Payload))
		}
	}
}

func TestEncoderResetDropsPending(t *testing.T) {
	e := NewEncoder(testSalt, 0, 0)
	e.Reset(make([]byte, 10), DataOffset, 1)
	_, _, err := e.AppendSplit(make([]byte, 100), 0, 0)
	require.NoError(t, err)
	assert.Equal(t, FrameSize(100)-10, e.Pending())
	e.Reset(make([]byte, 10), DataOffset, 1)
	assert.Zero(t, e.Pending())
	assert.Zero(t, e.Len())
}

func TestEncoderDoesNotAllocate(t *testing.T) {
	e := NewEncoder(testSalt, 0, 0)
	buf := make([]byte, 64<<10)
	payload := make([]byte, 1000)
	e.Reset(buf, DataOffset, 1)
	allocs := testing.AllocsPerRun(1000, func() {
		lsn := e.NextLSN()
		if _, _, err := e.Append(payload, lsn-1, 0); err == ErrBufferFull {
			e.Reset(buf, DataOffset, lsn)
		}
	})
	assert.Zero(t, allocs)
}

// TestEncoderDeferredChecksums lays the frames of TestEncoderSplit with
// their checksums deferred, into buffers of many sizes (so that frames,
// headers and checksum fields run from one buffer into the next), and
// checks that the bytes are the same frames once ChecksumFrames filled the
// checksums in, and not before.
func TestEncoderDeferredChecksums(t *testing.T) {
	sizes := []int{0, 1, 23, 24, 300, 5, 1000, 0, 77, 3}
	for _, bufSize := range []int{1, 2, 3, 5, 7, 24, 25, 27, 100, 4096} {
		e := NewEncoder(testSalt, 3, 0)
		e.DeferChecksums()
		var want []byte
		bufs := [][]byte{make([]byte, bufSize)}
		e.Reset(bufs[0], DataOffset, testBaseLSN)
		for i, n := range sizes {
			p := payloadFor(uint64(testBaseLSN+i), n, 0)
			want = AppendFrame(want, testSalt, FrameHeader{LSN: uint64(testBaseLSN + i), Lag: 1, Epoch: 3}, p)
			_, _, err := e.AppendSplit(p, uint64(testBaseLSN+i-1), 0)
			require.NoError(t, err)
			for e.Pending() > 0 {
				bufs[len(bufs)-1] = e.Bytes()
				bufs = append(bufs, make([]byte, bufSize))
				e.Continue(bufs[len(bufs)-1])
			}
		}
		bufs[len(bufs)-1] = e.Bytes()
		laid := bytes.Join(bufs, nil)
		require.Len(t, laid, len(want))
		for off := 0; off < len(want); {
			n := int(binary.LittleEndian.Uint32(laid[off+frmLength:]))
			assert.Zero(t, binary.LittleEndian.Uint32(laid[off:]), "buf=%d: checksum laid before ChecksumFrames", bufSize)
			assert.Equal(t, want[off+frmLength:off+FrameSize(n)], laid[off+frmLength:off+FrameSize(n)], "buf=%d", bufSize)
			off += FrameSize(n)
		}

		require.NoError(t, ChecksumFrames(testSalt, bufs))
		require.Equal(t, want, bytes.Join(bufs, nil), "buf=%d", bufSize)
	}
}

// TestChecksumFramesRefusesCutFrames: bytes that end inside a frame's header
// or payload are reported, with the frames before it filled in.
func TestChecksumFramesRefusesCutFrames(t *testing.T) {
	var frames []byte
	frames = AppendFrame(frames, testSalt, FrameHeader{LSN: 1}, []byte("first"))
	first := len(frames)
	frames = AppendFrame(frames, testSalt, FrameHeader{LSN: 2}, []byte("second record"))
	for _, cut := range []int{first + 1, first + FrameHeaderSize - 1, first + FrameHeaderSize, len(frames) - 1} {
		for _, split := range []int{0, first, first + 2, cut - 1} {
			split = min(split, cut)
			b := bytes.Clone(frames[:cut])
			clear(b[:4])
			clear(b[first:min(first+4, cut)])
			err := ChecksumFrames(testSalt, [][]byte{b[:split], b[split:]})
			require.Error(t, err, "cut=%d split=%d", cut, split)
			assert.ErrorContains(t, err, "cut")
			assert.Equal(t, frames[:4], b[:4], "cut=%d split=%d: the whole frame before it has its checksum", cut, split)
		}
	}
	require.NoError(t, ChecksumFrames(testSalt, nil))
	require.NoError(t, ChecksumFrames(testSalt, [][]byte{{}, nil}))
}

func TestChecksumFramesDoesNotAllocate(t *testing.T) {
	e := NewEncoder(testSalt, 0, 0)
	e.DeferChecksums()
	a, b := make([]byte, 1000), make([]byte, 1000)
	e.Reset(a, DataOffset, 1)
	for e.Pending() == 0 {
		_, _, err := e.AppendSplit(make([]byte, 90), e.NextLSN()-1, 0)
		require.NoError(t, err)
	}
	e.Continue(b)
	bufs := [][]byte{a, e.Bytes()}
	allocs := testing.AllocsPerRun(100, func() {
		if err := ChecksumFrames(testSalt, bufs); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}
