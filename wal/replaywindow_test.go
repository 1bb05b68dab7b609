package wal

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringwal/ringwal/internal/fsys"
)

// evictDir drops the page-cache pages of every file under dir.
func evictDir(t *testing.T, dir string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	for _, p := range paths {
		f, err := os.Open(p)
		require.NoError(t, err)
		require.NoError(t, unix.Fdatasync(int(f.Fd())))
		require.NoError(t, unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED))
		require.NoError(t, f.Close())
	}
}

// TestReplayWindowFollowsPageCache: on the pwrite backend a Reader reads a
// segment that is not in the page cache in coldReplayBuffer windows and one
// that is in replayBuffer windows, with one buffer for all segments, and
// returns the same records either way.
func TestReplayWindowFollowsPageCache(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentSize: 8 << 20, MaxRecordSize: 64 << 10, Backend: BackendPwrite}
	w := openT(t, dir, o)
	const records = 20 << 10 // 1000-byte records: three segments
	batch := make([][]byte, 64)
	for lsn := uint64(1); lsn <= records; lsn += uint64(len(batch)) {
		for i := range batch {
			batch[i] = payload(lsn+uint64(i), 1000)
		}
		_, err := w.AppendBatch(batch)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	evictDir(t, dir)
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(segs), 3)
	f, err := os.Open(segs[0])
	require.NoError(t, err)
	cached, known := fsys.Cached(int(f.Fd()), 0, o.SegmentSize)
	require.NoError(t, f.Close())
	require.True(t, known, "cachestat(2) is missing (Linux 6.5 or later); CI runs on a kernel that has it")
	require.False(t, cached, "evicted segment still cached")

	w = openT(t, dir, o)
	defer w.Close()
	pass := func() map[string]bool {
		r, err := w.NewReader(w.FirstLSN())
		require.NoError(t, err)
		defer r.Close()
		cold := map[string]bool{}
		var lsn uint64 = 1
		for ; ; lsn++ {
			rec, err := r.Next()
			if err != nil {
				require.ErrorIs(t, err, io.EOF)
				break
			}
			require.Equal(t, lsn, rec.LSN)
			require.Equal(t, payload(lsn, 1000), rec.Data)
			if _, seen := cold[rec.Segment]; !seen {
				cold[rec.Segment] = r.cold
			}
		}
		require.Equal(t, uint64(records+1), lsn)
		want := replayBuffer
		for _, c := range cold {
			if c {
				want = coldReplayBuffer
			}
		}
		assert.Len(t, r.buf, want, "the reader's one window buffer")
		return cold
	}
	first := pass()
	require.Len(t, first, len(segs))
	for i, p := range segs {
		name := filepath.Base(p)
		if i < len(segs)-1 { // Open read the last segment to find its end
			assert.True(t, first[name], "%s: read from the disk, but not as cold", name)
		}
	}
	for name, cold := range pass() {
		assert.False(t, cold, "%s: read again from the page cache, but as cold", name)
	}
}
