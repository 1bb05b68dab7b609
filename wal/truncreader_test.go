package wal

import (
	"bytes"
	"fmt"
	"io"
	"testing"

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
