package segment

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCreateAndOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName(testBaseLSN))
	w, err := Create(path, testHeader())
	require.NoError(t, err)
	lsn, err := w.Append([]byte("one"))
	require.NoError(t, err)
	assert.Equal(t, uint64(100), lsn)
	first, err := w.AppendBatch([]byte("two"), nil, []byte("four"))
	require.NoError(t, err)
	assert.Equal(t, uint64(101), first)
	lsn, err = w.AppendFrame([]byte("five"), 101, 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(104), lsn)
	require.NoError(t, w.Sync())
	pos := w.Position()
	require.NoError(t, w.Close())
	require.NoError(t, w.Close(), "a second Close does nothing")

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(testSegSize), fi.Size(), "preallocated")

	_, err = Create(path, testHeader())
	require.ErrorIs(t, err, os.ErrExist)

	r, err := OpenReader(path, ReaderOptions{})
	require.NoError(t, err)
	defer r.Close()
	h := testHeader()
	h.Version = Version
	assert.Equal(t, h, r.Header())
	var got []string
	var flags []uint8
	var lags []uint32
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		got = append(got, string(rec.Payload))
		flags = append(flags, rec.Flags)
		lags = append(lags, rec.Lag)
	}
	assert.Equal(t, []string{"one", "two", "", "four", "five"}, got)
	assert.Equal(t, []uint8{0, 1, 1, 0, 0}, flags)
	assert.Equal(t, []uint32{1, 1, 2, 3, 3}, lags)
	assert.Equal(t, pos, r.Position())
	require.NoError(t, r.Close())
}

func TestOpenReaderChecksTheFileName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName(testBaseLSN))
	w, err := Create(path, testHeader())
	require.NoError(t, err)
	require.NoError(t, w.Close())
	wrong := filepath.Join(dir, FileName(99))
	require.NoError(t, os.Rename(path, wrong))

	_, err = OpenReader(wrong, ReaderOptions{})
	var ce *CorruptionError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, wrong, ce.Segment)
	assert.Equal(t, int64(24), ce.Offset)

	_, err = OpenReader(filepath.Join(dir, "missing"), ReaderOptions{})
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestWriterRefuses(t *testing.T) {
	for _, h := range []Header{
		{Seq: 0, BaseLSN: 1, Size: testSegSize},
		{Seq: 1, BaseLSN: 0, Size: testSegSize},
		{Seq: 1, BaseLSN: 1, Size: 100},
		{Seq: 1, BaseLSN: 1, Size: testSegSize, Flags: 2}, // bit 0 is HeaderFlagRecycled,
		{Seq: 1, BaseLSN: 1, Size: testSegSize, Version: 3},
	} {
		_, err := NewWriter(&memFile{}, h)
		require.Error(t, err, "%+v", h)
		_, err = Create(filepath.Join(t.TempDir(), "x"), h)
		require.Error(t, err, "%+v", h)
	}

	f := &memFile{}
	h := testHeader()
	h.Size = DataOffset + 100
	w, err := NewWriter(f, h)
	require.NoError(t, err)
	_, err = w.Append(make([]byte, 50))
	require.NoError(t, err)
	before := w.Position()
	_, err = w.Append(make([]byte, 3))
	require.ErrorIs(t, err, ErrSegmentFull)
	_, err = w.AppendBatch(make([]byte, 1), make([]byte, 1))
	require.ErrorIs(t, err, ErrSegmentFull)
	assert.Equal(t, before, w.Position(), "a refused append changes nothing")
	_, err = w.AppendBatch()
	require.Error(t, err)
	_, err = w.AppendFrame(nil, 101, 0)
	require.ErrorContains(t, err, "durable watermark")
}

type failingWriterAt struct{}

func (failingWriterAt) WriteAt([]byte, int64) (int, error) { return 0, errDisk }

func TestWriterWriteError(t *testing.T) {
	_, err := NewWriter(failingWriterAt{}, testHeader())
	require.ErrorIs(t, err, errDisk)
	w := ResumeWriter(failingWriterAt{}, testHeader(), Position{Offset: DataOffset, LSN: testBaseLSN})
	_, err = w.Append([]byte("x"))
	require.ErrorIs(t, err, errDisk)
	assert.Equal(t, Position{Offset: DataOffset, LSN: testBaseLSN}, w.Position())
	require.NoError(t, w.Sync(), "no Sync method: nothing to do")
}

// TestRecoveryCycle walks the cycle the wal runs after a crash: read to the
// end, find a torn tail, zero it, resume with a higher epoch, and find a clean
// log.
func TestRecoveryCycle(t *testing.T) {
	f := &memFile{}
	w, err := NewWriter(f, testHeader())
	require.NoError(t, err)
	for i := range 10 {
		_, err := w.Append(payloadFor(uint64(100+i), 40, 0))
		require.NoError(t, err)
	}
	// A crash tore the last frame.
	f.b[len(f.b)-10] ^= 0xff

	r, err := NewReader(f, int64(len(f.b)), ReaderOptions{})
	require.NoError(t, err)
	n := 0
	for {
		_, err = r.Next()
		if err != nil {
			break
		}
		n++
	}
	var te *TornTailError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 9, n)
	assert.Equal(t, uint64(109), te.LSN)

	require.NoError(t, ZeroRange(f, te.Offset, te.End))
	w = ResumeWriter(f, r.Header(), Position{Offset: te.Offset, LSN: te.LSN, Epoch: r.LastEpoch() + 1})
	_, err = w.Append([]byte("after"))
	require.NoError(t, err)

	r, err = NewReader(f, int64(len(f.b)), ReaderOptions{})
	require.NoError(t, err)
	var last Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		last = rec
	}
	assert.Equal(t, uint64(109), last.LSN)
	assert.Equal(t, "after", string(last.Payload))
	assert.Equal(t, uint16(1), last.Epoch)
	assert.Equal(t, uint16(1), r.LastEpoch())

	require.Error(t, ZeroRange(f, 10, 5))
	require.NoError(t, ZeroRange(f, 10, 10))
}
