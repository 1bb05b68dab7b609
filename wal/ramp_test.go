package wal

import (
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rampFile is an io.ReaderAt of size zeros that records each read and fails
// the read numbered failAt (1-based; 0: none).
type rampFile struct {
	size   int64
	failAt int
	reads  [][2]int64 // offset, length
}

func (l *rampFile) ReadAt(p []byte, off int64) (int, error) {
	l.reads = append(l.reads, [2]int64{off, int64(len(p))})
	if len(l.reads) == l.failAt {
		return 0, errors.New("injected")
	}
	if off >= l.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), l.size-off)
	clear(p[:n])
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// TestRampReadahead: a cold segment's first reads grow fourfold from 16 KiB
// to 1 MiB, each where the last ended, never past the data's end, and stop
// at the first failed read (the reads after them report it).
func TestRampReadahead(t *testing.T) {
	buf := make([]byte, rampMax)
	const k = 1 << 10
	for _, c := range []struct {
		name      string
		off, end  int64
		failAt    int
		wantReads [][2]int64
	}{
		{"whole ramp", 4096, 64 << 20, 0, [][2]int64{{4096, 16 * k}, {4096 + 16*k, 64 * k}, {4096 + 80*k, 256 * k}, {4096 + 336*k, 1024 * k}}},
		{"from the middle", 5 << 20, 64 << 20, 0, [][2]int64{{5 << 20, 16 * k}, {5<<20 + 16*k, 64 * k}, {5<<20 + 80*k, 256 * k}, {5<<20 + 336*k, 1024 * k}}},
		{"short data", 4096, 4096 + 100*k, 0, [][2]int64{{4096, 16 * k}, {4096 + 16*k, 64 * k}, {4096 + 80*k, 20 * k}}},
		{"no data", 4096, 4096, 0, nil},
		{"failed read", 4096, 64 << 20, 2, [][2]int64{{4096, 16 * k}, {4096 + 16*k, 64 * k}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := &rampFile{size: 64 << 20, failAt: c.failAt}
			rampReadahead(l, c.off, c.end, buf)
			assert.Equal(t, c.wantReads, l.reads)
		})
	}
}

// TestColdReplayRampsReadahead: a Reader ramps the read-ahead of each
// segment it finds out of the page cache, once when it opens it, and of
// none it finds in it; the records are the same either way.
func TestColdReplayRampsReadahead(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		for _, cached := range []bool{false, true} {
			dir, records, segs := coldLog(t, Options{Backend: be})
			probe := func(fd int, off, n int64) (float64, bool) { return 0, true }
			if cached {
				probe = inCache
			}
			w := openT(t, dir, Options{SegmentSize: 8 << 20, MaxRecordSize: 64 << 10, Backend: be, cacheProbe: probe})
			r, err := w.NewReader(w.FirstLSN())
			require.NoError(t, err)
			lsn := uint64(1)
			for ; ; lsn++ {
				rec, err := r.Next()
				if err != nil {
					require.ErrorIs(t, err, io.EOF)
					break
				}
				require.Equal(t, payload(lsn, 1000), rec.Data, "lsn %d", lsn)
			}
			require.Equal(t, records+1, lsn)
			if cached {
				assert.Zero(t, r.ramps, "segments in the page cache")
			} else {
				assert.Equal(t, len(segs), r.ramps, "one ramp per cold segment")
			}
			require.NoError(t, r.Close())
			require.NoError(t, w.Close())
		}
	})
}
