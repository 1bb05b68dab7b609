package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReaderAcrossTruncateBack: Readers open while TruncateBack drops the
// log's end and new records take the dropped LSNs. A reader at or before the
// cut returns the kept records and then the new ones, never the dropped
// bytes it may have in its window or file (the segment it reads is replaced
// by a copy, later segments removed and created again under the same
// names); a reader past the cut, which may have returned dropped records,
// gets ErrTruncated, sticky.
func TestReaderAcrossTruncateBack(t *testing.T) {
	old := func(lsn int) []byte { return bytes.Repeat([]byte{'o'}, 900+lsn%7) }
	neu := func(lsn int) []byte { return bytes.Repeat([]byte{'n'}, 900+lsn%5) }
	for _, be := range []Backend{BackendPwrite, BackendURing} {
		for _, segSize := range []int64{8 << 20, 64 << 10} {
			t.Run(fmt.Sprintf("%s/segment=%d", be, segSize), func(t *testing.T) {
				w := openT(t, t.TempDir(), Options{Backend: be, SegmentSize: segSize, MaxRecordSize: 16 << 10})
				defer w.Close()
				for lsn := 1; lsn <= 200; lsn++ {
					_, err := w.Append(old(lsn))
					require.NoError(t, err)
				}
				segsBefore := w.Stats().Segments
				// Readers that returned records up to 40, 50 and 60.
				readers := map[int]*Reader{}
				for _, upTo := range []int{40, 50, 60} {
					r, err := w.NewReader(1)
					require.NoError(t, err)
					defer r.Close()
					for lsn := 1; lsn <= upTo; lsn++ {
						rec, err := r.Next()
						require.NoError(t, err)
						require.Equal(t, old(lsn), rec.Data)
					}
					readers[upTo] = r
				}

				require.NoError(t, w.TruncateBack(50))
				for lsn := 51; lsn <= 300; lsn++ {
					_, err := w.Append(neu(lsn))
					require.NoError(t, err)
				}
				if segSize == 64<<10 {
					require.Greater(t, segsBefore, 2, "the old log spanned segments the cut removed")
				}

				for _, upTo := range []int{40, 50} {
					r := readers[upTo]
					for lsn := upTo + 1; lsn <= 300; lsn++ {
						rec, err := r.Next()
						require.NoError(t, err, "reader that had returned up to %d, lsn %d", upTo, lsn)
						want := neu(lsn)
						if lsn <= 50 {
							want = old(lsn)
						}
						require.Equal(t, uint64(lsn), rec.LSN)
						require.Equal(t, want[:1], rec.Data[:1], "reader that had returned up to %d, lsn %d", upTo, lsn)
						require.Equal(t, want, rec.Data)
					}
					_, err := r.Next()
					assert.ErrorIs(t, err, io.EOF)
				}
				r := readers[60]
				for range 2 {
					_, err := r.Next()
					require.ErrorIs(t, err, ErrTruncated, "the reader returned lsn 51-60, dropped")
				}
			})
		}
	}
}

// TestReaderFollowsTruncations: one goroutine appends and now and then
// truncates back, while a Reader follows the log. Each record carries its
// LSN and the number of TruncateBacks before it was appended (its
// generation). Whatever the interleaving, the records a Reader returns are
// one history of the log: a record returned after others comes from a
// generation in which every record returned before it was still in the
// log (no TruncateBack in between cut below it). When that no longer holds
// for the reader's position, Next returns ErrTruncated, and a new Reader
// starts over.
func TestReaderFollowsTruncations(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		w := openT(t, t.TempDir(), Options{Backend: be, SegmentSize: 64 << 10, MaxRecordSize: 16 << 10})
		defer w.Close()
		rec := func(lsn uint64, gen int) []byte {
			p := make([]byte, 200+int(lsn%300))
			binary.LittleEndian.PutUint64(p, lsn)
			binary.LittleEndian.PutUint64(p[8:], uint64(gen))
			return p
		}
		var mu sync.Mutex
		var cuts []uint64 // cuts[g-1]: the lsn of the g-th TruncateBack
		cutsAfter := func(from, to int) []uint64 {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(cuts[from:to])
		}
		const appends = 3000
		done := make(chan error, 1)
		go func() {
			rng := rand.New(rand.NewPCG(1, uint64(len(be))))
			gen := 0
			for i := 0; i < appends; i++ {
				if _, err := w.Append(rec(w.LastLSN()+1, gen)); err != nil {
					done <- err
					return
				}
				if rng.IntN(100) == 0 && w.LastLSN() > 10 {
					cut := w.LastLSN() - uint64(rng.IntN(int(min(w.LastLSN()-5, 200))))
					// Published before the truncation: a reader that
					// sees the new generation's records sees the cut.
					mu.Lock()
					cuts = append(cuts, cut)
					mu.Unlock()
					if err := w.TruncateBack(cut); err != nil {
						done <- err
						return
					}
					gen++
				}
			}
			done <- nil
		}()
		type got struct {
			lsn uint64
			gen int
		}
		var seen []got
		readers, truncated, records := 1, 0, 0
		r, err := w.NewReader(1)
		require.NoError(t, err)
		defer func() { r.Close() }()
		finished := false
		for !finished || r.next <= w.LastLSN() {
			if !finished {
				select {
				case err := <-done:
					require.NoError(t, err)
					finished = true
				default:
				}
			}
			x, err := r.Next()
			if errors.Is(err, io.EOF) {
				time.Sleep(20 * time.Microsecond)
				continue
			}
			if errors.Is(err, ErrTruncated) {
				truncated++
				require.NoError(t, r.Close())
				r, err = w.NewReader(w.FirstLSN())
				require.NoError(t, err)
				readers++
				seen = seen[:0]
				continue
			}
			require.NoError(t, err)
			lsn := binary.LittleEndian.Uint64(x.Data)
			gen := int(binary.LittleEndian.Uint64(x.Data[8:]))
			require.Equal(t, x.LSN, lsn, "the record's own lsn")
			require.Equal(t, rec(lsn, gen), x.Data)
			if n := len(seen); n > 0 {
				prev := seen[n-1]
				require.Equal(t, prev.lsn+1, lsn)
				require.GreaterOrEqual(t, gen, prev.gen, "lsn %d: generation went back", lsn)
			}
			// Every record returned before is still in the log of gen:
			// no cut between its generation and gen below it.
			for _, s := range seen {
				for _, c := range cutsAfter(s.gen, gen) {
					require.GreaterOrEqual(t, c, s.lsn, "lsn %d (gen %d) returned after lsn %d (gen %d), which a TruncateBack(%d) between dropped", lsn, gen, s.lsn, s.gen, c)
				}
			}
			seen = append(seen, got{lsn, gen})
			records++
		}
		t.Logf("%d records read by %d readers, %d ErrTruncated, %d truncations", records, readers, truncated, len(cuts))
		assert.Positive(t, len(cuts))
	})
}

// TestReaderAfterManyTruncations: the log remembers its last maxBackCuts
// TruncateBacks for its Readers. A Reader that has not read since more
// cuts than that stops with ErrTruncated, even where the cuts it missed all
// kept its position; one at the start of the log, or one that read between
// the cuts, goes on.
func TestReaderAfterManyTruncations(t *testing.T) {
	w := openT(t, t.TempDir(), Options{Backend: BackendPwrite, SegmentSize: 64 << 10, MaxRecordSize: 16 << 10, Prealloc: PreallocFallocate})
	defer w.Close()
	p := []byte("record")
	for range 10 {
		_, err := w.Append(p)
		require.NoError(t, err)
	}
	atStart, err := w.NewReader(1)
	require.NoError(t, err)
	defer atStart.Close()
	idle, err := w.NewReader(1)
	require.NoError(t, err)
	defer idle.Close()
	busy, err := w.NewReader(1)
	require.NoError(t, err)
	defer busy.Close()
	for range 5 {
		_, err := idle.Next()
		require.NoError(t, err)
		_, err = busy.Next()
		require.NoError(t, err)
	}
	for i := range maxBackCuts + 10 {
		_, err := w.Append(p)
		require.NoError(t, err)
		require.NoError(t, w.TruncateBack(10), "cut %d", i)
		if i%100 == 0 {
			// Records 6-10, then the end of the log.
			if _, err := busy.Next(); err != io.EOF {
				require.NoError(t, err, "cut %d", i)
			}
		}
	}
	_, err = idle.Next()
	require.ErrorIs(t, err, ErrTruncated, "more cuts than remembered since its last read")
	_, err = busy.Next()
	require.ErrorIs(t, err, io.EOF)
	for lsn := uint64(1); lsn <= 10; lsn++ {
		rec, err := atStart.Next()
		require.NoError(t, err)
		require.Equal(t, lsn, rec.LSN)
	}
}
