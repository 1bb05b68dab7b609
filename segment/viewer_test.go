package segment

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lendingViewer is a Viewer over data that lends a fresh copy of a random
// length in [least, most] on every View and, like a reader whose buffers are
// reused, overwrites the bytes it lent before at every later call: a Reader
// that kept using lent bytes past their validity reads garbage.
type lendingViewer struct {
	data  []byte
	rng   *rand.Rand
	lent  []byte
	views int
}

func newLendingViewer(data []byte, seed uint64) *lendingViewer {
	return &lendingViewer{data: data, rng: rand.New(rand.NewPCG(seed, 7))}
}

func (v *lendingViewer) scribble() {
	for i := range v.lent {
		v.lent[i] = 0xA5
	}
	v.lent = nil
}

func (v *lendingViewer) ReadAt(p []byte, off int64) (int, error) {
	v.scribble()
	return bytes.NewReader(v.data).ReadAt(p, off)
}

func (v *lendingViewer) View(off int64, least, most int) ([]byte, error) {
	v.scribble()
	v.views++
	if off < 0 || least < 0 || least > most {
		return nil, fmt.Errorf("bad view [%d, %d] at %d", least, most, off)
	}
	avail := int64(len(v.data)) - off
	if avail < int64(least) {
		return nil, io.ErrUnexpectedEOF
	}
	n := least + v.rng.IntN(int(min(int64(most), avail))-least+1)
	v.lent = bytes.Clone(v.data[off : off+int64(n)])
	return v.lent, nil
}

// TestViewerMatchesReaderAt reads every golden segment, at several window
// sizes, through a plain io.ReaderAt and through a lending Viewer: the same
// records (each verified against the file's bytes as it is returned) and the
// same end.
func TestViewerMatchesReaderAt(t *testing.T) {
	files := seedFiles(t)
	for i, data := range files {
		for _, bufSize := range []int{FrameHeaderSize, 100, 1000, 4096, 0} {
			opts := ReaderOptions{BufferSize: bufSize}
			want := readAll(t, data, opts)
			v := newLendingViewer(data, uint64(i*31+bufSize))
			got := readAllFrom(t, v, data, opts)
			require.Equal(t, len(want.recs), len(got.recs), "file %d, buffer %d", i, bufSize)
			for j := range want.recs {
				require.Equal(t, want.recs[j], got.recs[j], "file %d, buffer %d, record %d", i, bufSize, j)
			}
			if want.err == nil || got.err == nil {
				require.Equal(t, want.err, got.err, "file %d, buffer %d", i, bufSize)
			} else {
				require.Equal(t, want.err.Error(), got.err.Error(), "file %d, buffer %d", i, bufSize)
			}
			if len(data) > DataOffset && want.r != nil {
				assert.Positive(t, v.views, "file %d: the reader took its window from View", i)
			}
		}
	}
}

// shortViewer lends fewer bytes than asked for.
type shortViewer struct{ lendingViewer }

func (v *shortViewer) View(off int64, least, most int) ([]byte, error) {
	b, err := v.lendingViewer.View(off, least, most)
	if least > 0 && len(b) >= least {
		b = b[:least-1]
	}
	return b, err
}

// TestViewerShort: a Viewer that lends less than asked for is an I/O error
// naming the segment, not a panic or a misread.
func TestViewerShort(t *testing.T) {
	s := newSeg(t, frameSpec{n: 10}, frameSpec{n: 20})
	v := &shortViewer{*newLendingViewer(s.data, 1)}
	r, err := NewReader(v, int64(len(s.data)), ReaderOptions{Name: "seg"})
	require.NoError(t, err)
	_, err = r.Next()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Contains(t, err.Error(), "seg")
	assert.NotErrorIs(t, err, ErrCorrupt)
}

// TestReaderBuffer reads every golden segment with a caller's Buffer holding
// garbage: the same records and end as with the reader's own buffer, and
// the window is the caller's (overwriting the Buffer changes the payload
// just returned). A Buffer smaller than the window is not used.
func TestReaderBuffer(t *testing.T) {
	for i, data := range seedFiles(t) {
		for _, bufSize := range []int{100, 4096, 0} {
			opts := ReaderOptions{BufferSize: bufSize}
			want := readAll(t, data, opts)
			win := bufSize
			if win == 0 {
				win = DefaultBufferSize
			}
			win = int(max(FrameHeaderSize, min(int64(win), int64(len(data)))))
			for _, extra := range []int{0, 1000, -1} {
				if win+extra < 0 {
					continue
				}
				buf := bytes.Repeat([]byte{0xEE}, win+extra)
				opts.Buffer = buf
				got := readAll(t, data, opts)
				require.Equal(t, want.recs, got.recs, "file %d, buffer %d+%d", i, bufSize, extra)
				require.Equal(t, fmt.Sprint(want.err), fmt.Sprint(got.err), "file %d, buffer %d+%d", i, bufSize, extra)
				if len(want.recs) == 0 {
					continue
				}
				r, err := NewReader(bytes.NewReader(data), int64(len(data)), opts)
				require.NoError(t, err)
				rec, err := r.Next()
				require.NoError(t, err)
				if len(rec.Payload) == 0 || FrameHeaderSize+len(rec.Payload) > win {
					continue // an empty payload, or one read outside the window
				}
				before := bytes.Clone(rec.Payload)
				for j := range buf {
					buf[j] ^= 0xFF
				}
				if extra < 0 {
					assert.Equal(t, before, rec.Payload, "file %d: a Buffer smaller than the window is not used", i)
				} else {
					assert.NotEqual(t, before, rec.Payload, "file %d, buffer %d+%d: the window is the caller's Buffer", i, bufSize, extra)
				}
			}
		}
	}
}
