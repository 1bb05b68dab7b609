package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEncoderPadToPage: PadToPage flags the last frame, lays zeros up to
// the next page boundary and moves the next frame there; the frame
// verifies with the flag (directly encoded, and deferred then filled in by
// ChecksumFrames, which leaves the padding zero). It lays nothing when the
// frames end on a boundary, when the padding does not fit, and when the
// last frame was not laid whole into the current buffer.
func TestEncoderPadToPage(t *testing.T) {
	for _, deferred := range []bool{false, true} {
		buf := bytes.Repeat([]byte{0xee}, 3*PageSize)
		e := NewEncoder(testSalt, 0, 0)
		if deferred {
			e.DeferChecksums()
		}
		e.Reset(buf, DataOffset, testBaseLSN)
		_, off1, err := e.Append(payloadFor(testBaseLSN, 100, 0), testBaseLSN-1, 0)
		require.NoError(t, err)
		_, off2, err := e.Append(payloadFor(testBaseLSN+1, 1000, 0), testBaseLSN-1, 0)
		require.NoError(t, err)
		end := off2 + int64(FrameSize(1000))
		pad, ok := e.PadToPage()
		require.True(t, ok)
		assert.Equal(t, int(PageSize-end%PageSize), pad)
		assert.Equal(t, PadToPage(end), e.Offset(), "the next frame starts on the page boundary")
		_, _, err = e.Append(payloadFor(testBaseLSN+2, 10, 0), testBaseLSN+1, 0)
		require.NoError(t, err)
		laid := e.Bytes()
		if deferred {
			require.NoError(t, ChecksumFrames(testSalt, [][]byte{laid[:PadToPage(end)-DataOffset]}))
			require.NoError(t, ChecksumFrames(testSalt, [][]byte{laid[PadToPage(end)-DataOffset:]}))
		}
		at := func(off int64) []byte { return laid[off-DataOffset:] }
		fh, _, err := VerifyFrame(testSalt, at(off2)[:FrameSize(1000)])
		require.NoError(t, err, "deferred=%t", deferred)
		assert.Equal(t, uint8(FlagPadToPage), fh.Flags)
		fh, _, err = VerifyFrame(testSalt, at(off1)[:FrameSize(100)])
		require.NoError(t, err)
		assert.Zero(t, fh.Flags, "only the last frame is flagged")
		assert.Equal(t, make([]byte, pad), at(end)[:pad], "the padding is zeros")

		// Nothing to pad, or no room for it, or no whole frame here.
		e.Reset(make([]byte, PageSize), DataOffset, testBaseLSN)
		_, ok = e.PadToPage()
		assert.False(t, ok, "no frame laid")
		_, _, err = e.Append(nil, testBaseLSN-1, 0)
		require.NoError(t, err)
		_, _, err = e.Append(make([]byte, PageSize-2*FrameHeaderSize), testBaseLSN, 0)
		require.NoError(t, err)
		assert.Equal(t, int64(DataOffset+PageSize), e.Offset())
		n, ok := e.PadToPage()
		assert.False(t, ok, "frames ending on a page boundary are not padded")
		assert.Zero(t, n)
		e.Reset(make([]byte, 200), DataOffset, testBaseLSN)
		_, _, err = e.Append(make([]byte, 10), testBaseLSN-1, 0)
		require.NoError(t, err)
		_, ok = e.PadToPage()
		assert.False(t, ok, "padding that does not fit in the buffer")
		assert.Equal(t, FrameSize(10), e.Len(), "nothing laid")
		e.Continue(make([]byte, 2*PageSize))
		_, ok = e.PadToPage()
		assert.False(t, ok, "the last frame is in the previous buffer")
	}
}

// TestChecksumFramesSplitPadded: a padded frame split across buffers is
// checksummed with its flag, and ChecksumFrames stops at it, leaving the
// padding zero.
func TestChecksumFramesSplitPadded(t *testing.T) {
	e := NewEncoder(testSalt, 0, 0)
	e.DeferChecksums()
	whole := make([]byte, 2*PageSize)
	e.Reset(whole, DataOffset, testBaseLSN)
	_, _, err := e.Append(payloadFor(testBaseLSN, 700, 0), testBaseLSN-1, 0)
	require.NoError(t, err)
	_, ok := e.PadToPage()
	require.True(t, ok)
	laid := e.Bytes()
	for cut := 1; cut < len(laid); cut += 37 {
		b := bytes.Clone(laid)
		require.NoError(t, ChecksumFrames(testSalt, [][]byte{b[:cut], b[cut:]}), "cut at %d", cut)
		fh, _, err := VerifyFrame(testSalt, b[:FrameSize(700)])
		require.NoError(t, err, "cut at %d", cut)
		assert.Equal(t, uint8(FlagPadToPage), fh.Flags)
		assert.Equal(t, make([]byte, len(b)-FrameSize(700)), b[FrameSize(700):], "cut at %d: padding left zero", cut)
	}
}

// TestReaderFollowsPadding: a version 2 segment whose batches are padded
// reads every record, each at the offset it was written at, and ends
// cleanly where the writer would go on; a file cut inside the padding after
// its last frame ends cleanly there.
func TestReaderFollowsPadding(t *testing.T) {
	const size = 64 << 10
	f := &memFile{b: make([]byte, size)}
	h := testHeader()
	h.Size = size
	w, err := NewWriter(f, h)
	require.NoError(t, err)
	var offs []int64
	lsn := uint64(testBaseLSN)
	for i := range 6 {
		n := 1 + i%3
		var ps [][]byte
		for k := range n {
			ps = append(ps, payloadFor(lsn+uint64(k), 300*i+k, 0))
		}
		off := w.Position().Offset
		if i%2 == 0 {
			_, err = w.AppendBatchPadded(ps...)
		} else {
			_, err = w.AppendBatch(ps...)
		}
		require.NoError(t, err)
		for _, p := range ps {
			offs = append(offs, off)
			off += int64(FrameSize(len(p)))
		}
		if i%2 == 0 {
			assert.Zero(t, w.Position().Offset%PageSize, "batch %d padded", i)
		}
		lsn += uint64(n)
	}
	end := w.Position().Offset
	r, err := NewReader(f, size, ReaderOptions{})
	require.NoError(t, err)
	var got []int64
	for {
		rec, err := r.Next()
		if err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
		got = append(got, rec.Offset)
		assert.Equal(t, rec.End(), r.Offset())
	}
	assert.Equal(t, offs, got)
	assert.Equal(t, end, r.Offset(), "where the next frame goes")
	// The last batch (i=5) was not padded; cut the file in the padding of
	// batch 4's last frame instead: records up to it, then a clean end.
	last4 := offs[len(offs)-3] // batch 5 holds three records
	end4 := offs[len(offs)-4] + int64(FrameSize(300*4+1))
	require.Greater(t, last4-end4, int64(1), "batch 4 is padded")
	cut := end4 + (last4-end4)/2
	r, err = NewReader(&memFile{b: f.b[:cut]}, cut, ReaderOptions{})
	require.NoError(t, err)
	n := 0
	for {
		_, err := r.Next()
		if err != nil {
			require.ErrorIs(t, err, io.EOF, "a file cut in padding ends cleanly")
			break
		}
		n++
	}
	assert.Equal(t, len(offs)-3, n)
}

// TestVersion1RefusesPadding: FlagPadToPage is an unknown flag in a version
// 1 segment: such a frame is not a record, and a version 1 Writer refuses
// to pad.
func TestVersion1RefusesPadding(t *testing.T) {
	h := testHeader()
	h.Version = 1
	s := &testSeg{data: make([]byte, testSegSize)}
	h.MarshalTo(s.data)
	s.frames = s.lay(DataOffset, testBaseLSN, frameSpec{n: 50}, frameSpec{n: 60, flags: FlagPadToPage}, frameSpec{n: 70})
	r, err := NewReader(&memFile{b: s.data}, testSegSize, ReaderOptions{})
	require.NoError(t, err)
	_, err = r.Next()
	require.NoError(t, err)
	_, err = r.Next()
	var ce *CorruptionError
	var te *TornTailError
	require.True(t, errors.As(err, &ce) || errors.As(err, &te), "%v", err)
	assert.Contains(t, err.Error(), "unknown frame flags 0x2")

	// The same frames in version 2 read whole.
	binary.LittleEndian.PutUint16(s.data[hdrVersion:], 2)
	h.Version = 2
	h.MarshalTo(s.data)
	r, err = NewReader(&memFile{b: s.data}, testSegSize, ReaderOptions{})
	require.NoError(t, err)
	for range 3 {
		_, err = r.Next()
		require.NoError(t, err)
	}
	_, err = r.Next()
	require.ErrorIs(t, err, io.EOF)

	w, err := NewWriter(&memFile{}, Header{Version: 1, Seq: 1, BaseLSN: 1, Size: testSegSize})
	require.NoError(t, err)
	_, err = w.AppendBatchPadded([]byte("x"))
	require.ErrorContains(t, err, "version 1")
}
