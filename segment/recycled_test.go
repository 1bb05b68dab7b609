package segment

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// recycledSeg builds what the wal leaves in a recycled file: a segment of an
// earlier life (another salt, lower LSNs) filled to the end, then a new
// header (flag Recycled, testSalt, testBaseLSN) over it and the given frames
// from DataOffset on. The stale frames past the new ones stay.
func recycledSeg(t testing.TB, specs ...frameSpec) *testSeg {
	t.Helper()
	const oldSalt = 0x01d5a17
	data := make([]byte, testSegSize)
	old := Header{Seq: 2, BaseLSN: 10, Size: testSegSize, Salt: oldSalt}
	old.MarshalTo(data)
	lsn := old.BaseLSN
	for off := int64(DataOffset); ; lsn++ {
		// Sizes vary so that stale frames do not line up with new ones.
		frame := AppendFrame(nil, oldSalt, FrameHeader{LSN: lsn, Lag: 1}, payloadFor(lsn, 40+int(lsn%7)*13, 0))
		if off+int64(len(frame)) > testSegSize {
			break
		}
		copy(data[off:], frame)
		off += int64(len(frame))
	}
	s := &testSeg{data: data}
	h := testHeader()
	h.Flags = HeaderFlagRecycled
	copy(s.data[:DataOffset], make([]byte, DataOffset))
	h.MarshalTo(s.data)
	s.frames = s.lay(DataOffset, testBaseLSN, specs...)
	return s
}

func TestRecycledHeaderFlag(t *testing.T) {
	s := recycledSeg(t)
	h, err := ParseHeader(s.data)
	require.NoError(t, err)
	require.True(t, h.Recycled())
	require.False(t, testHeader().Recycled())

	// Any other flag bit is damage, and a writer refuses it.
	bad := testHeader()
	bad.Flags = 2
	b := make([]byte, HeaderSize)
	bad.MarshalTo(b)
	_, err = ParseHeader(b)
	require.ErrorIs(t, err, ErrCorrupt)
	_, err = NewWriter(&memFile{}, bad)
	require.Error(t, err)
	good := testHeader()
	good.Flags = HeaderFlagRecycled
	_, err = NewWriter(&memFile{}, good)
	require.NoError(t, err)
}

// The stale frames of the file's earlier life are not the log, and not a
// torn tail: a recycled segment ends cleanly after its last frame.
func TestRecycledStaleTailIsACleanEnd(t *testing.T) {
	s := recycledSeg(t, seqFrames(100, 0, 333, 7)...)
	res := readAll(t, s.data, ReaderOptions{})
	require.ErrorIs(t, res.err, io.EOF)
	require.Equal(t, lsnRange(testBaseLSN, testBaseLSN+3), lsns(res.recs))
	require.Equal(t, s.frames[3].end, res.r.Offset())

	// The same bytes without the flag are what they would be in a
	// zero-filled segment: a torn tail running to the end of the file.
	plain := bytes.Clone(s.data)
	h := testHeader()
	h.MarshalTo(plain)
	res = readAll(t, plain, ReaderOptions{})
	var torn *TornTailError
	require.ErrorAs(t, res.err, &torn)
	require.Equal(t, s.frames[3].end, torn.Offset)
	require.Equal(t, writtenEndOf(plain, 0), torn.End, "the old life's frames end near the file's end")
	require.Greater(t, torn.End, int64(testSegSize-100))

	// An empty recycled segment ends at DataOffset.
	res = readAll(t, recycledSeg(t).data, ReaderOptions{})
	require.ErrorIs(t, res.err, io.EOF)
	require.Empty(t, res.recs)
}

// A write cut short leaves part of a frame of this life over stale bytes:
// nothing of it verifies, so the log ends before it.
func TestRecycledTornFrameEndsTheLog(t *testing.T) {
	s := recycledSeg(t, seqFrames(100, 200, 300)...)
	last := s.frames[2]
	// The frame's second half never reached the disk: stale bytes there.
	stale := recycledSeg(t)
	mid := (last.off + last.end) / 2
	copy(s.data[mid:last.end], stale.data[mid:last.end])
	res := readAll(t, s.data, ReaderOptions{})
	require.ErrorIs(t, res.err, io.EOF)
	require.Equal(t, lsnRange(testBaseLSN, testBaseLSN+1), lsns(res.recs))
}

// A pipelined writer's later frame that reached the disk while an earlier one
// did not: a torn tail whose End covers that frame (and no stale byte after
// it), so the wal zeroes only what this life wrote.
func TestRecycledPipelinedHole(t *testing.T) {
	s := recycledSeg(t, seqFrames(100, 200)...)
	next := s.frames[1].end
	// LSN base+2 (200 bytes) is missing: stale bytes stay there. base+3
	// was written after base+1 was acknowledged (lag 2: watermark base+1).
	hole := int64(FrameSize(200))
	after := s.lay(next+hole, testBaseLSN+3, frameSpec{n: 50, lag: 2})
	res := readAll(t, s.data, ReaderOptions{})
	var torn *TornTailError
	require.ErrorAs(t, res.err, &torn, "got %v", res.err)
	require.Equal(t, next, torn.Offset)
	require.Equal(t, after[0].end, torn.End)
	require.Equal(t, uint64(testBaseLSN+2), torn.LSN)

	// With a watermark covering the hole it is lost acknowledged data.
	s2 := recycledSeg(t, seqFrames(100, 200)...)
	s2.lay(next+hole, testBaseLSN+3, frameSpec{n: 50, lag: 1})
	res = readAll(t, s2.data, ReaderOptions{})
	require.ErrorIs(t, res.err, ErrCorrupt)
	var ce *CorruptionError
	require.ErrorAs(t, res.err, &ce)
	require.Equal(t, next, ce.Offset)
}

// An atomic batch cut short at the end of a recycled segment is a torn tail
// from its first frame, as in any segment.
func TestRecycledIncompleteBatch(t *testing.T) {
	s := recycledSeg(t, frameSpec{n: 10}, frameSpec{n: 20, flags: FlagBatchContinues}, frameSpec{n: 30, flags: FlagBatchContinues})
	res := readAll(t, s.data, ReaderOptions{})
	var torn *TornTailError
	require.ErrorAs(t, res.err, &torn, "got %v", res.err)
	require.Equal(t, s.frames[1].off, torn.Offset)
	require.Equal(t, uint64(testBaseLSN+1), torn.LSN)
	require.Equal(t, s.frames[2].end, torn.End)
}

// A sealed recycled segment read with its last LSN known stops there and
// reads nothing of the stale tail; one missing its last records ends early,
// which the caller sees by the LSN reached.
func TestRecycledLastLSN(t *testing.T) {
	s := recycledSeg(t, seqFrames(100, 200, 300)...)
	cr := &countingReaderAt{r: bytes.NewReader(s.data)}
	r, err := NewReader(cr, int64(len(s.data)), ReaderOptions{LastLSN: testBaseLSN + 2, BufferSize: 4096})
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, err := r.Next()
		require.NoError(t, err)
	}
	_, err = r.Next()
	require.ErrorIs(t, err, io.EOF)
	require.LessOrEqual(t, cr.max, int64(DataOffset+4096), "nothing past the last record's window is read")

	res := readAll(t, s.data, ReaderOptions{LastLSN: testBaseLSN + 5})
	require.ErrorIs(t, res.err, io.EOF)
	require.Len(t, res.recs, 3)

	// Without the flag LastLSN changes nothing: the zeros are checked.
	plain := newSeg(t, seqFrames(100, 200, 300)...)
	plain.lay(plain.frames[2].end, testBaseLSN+3, frameSpec{n: 9})
	res = readAll(t, plain.data, ReaderOptions{LastLSN: testBaseLSN + 2})
	require.Len(t, res.recs, 4, "a plain segment is read to its end")
}

// A sealed recycled segment whose last record (by LastLSN) continues its
// batch is torn there, as a zero-filled one would be.
func TestRecycledLastLSNOpenBatch(t *testing.T) {
	s := recycledSeg(t, frameSpec{n: 10}, frameSpec{n: 20, flags: FlagBatchContinues}, frameSpec{n: 30})
	res := readAll(t, s.data, ReaderOptions{LastLSN: testBaseLSN + 1})
	var torn *TornTailError
	require.ErrorAs(t, res.err, &torn, "got %v", res.err)
	require.Equal(t, s.frames[1].off, torn.Offset)
	require.Contains(t, torn.Reason, "continues its batch")
}

// countingReaderAt records the furthest byte read.
type countingReaderAt struct {
	r   io.ReaderAt
	max int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.max = max(c.max, off+int64(n))
	return n, err
}

// The scan for frames past a damaged one (rule 2b) finds the same frames
// with the type-byte search as byte by byte, over a stale tail.
func TestFindAcknowledgedSkipsByType(t *testing.T) {
	s := recycledSeg(t, seqFrames(100, 200)...)
	next := s.frames[1].end
	// A frame valid in isolation far into the stale tail, at an odd
	// offset, with a watermark covering the hole.
	far := s.lay(testSegSize-4001, testBaseLSN+40, frameSpec{n: 64, lag: 38})
	for _, bufSize := range []int{FrameHeaderSize, 100, 4096, DefaultBufferSize} {
		res := readAll(t, s.data, ReaderOptions{BufferSize: bufSize})
		var ce *CorruptionError
		require.ErrorAs(t, res.err, &ce, "buffer %d: got %v", bufSize, res.err)
		require.Equal(t, next, ce.Offset)
		require.Contains(t, ce.Reason, fmt.Sprintf("lsn %d at offset %d", testBaseLSN+40, far[0].off))
	}
}
