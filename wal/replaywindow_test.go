package wal

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringwal/ringwal/internal/fsys"
	"github.com/ringwal/ringwal/segment"
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

// appendKiB appends n 1000-byte records (n a multiple of 64) to an empty
// log, in atomic batches of 64.
func appendKiB(t *testing.T, w *WAL, n uint64) {
	t.Helper()
	batch := make([][]byte, 64)
	for lsn := uint64(1); lsn <= n; lsn += uint64(len(batch)) {
		for i := range batch {
			batch[i] = payload(lsn+uint64(i), 1000)
		}
		_, err := w.AppendBatch(batch)
		require.NoError(t, err)
	}
}

// coldLog writes three 8 MiB segments of 1000-byte records, closes the log
// and drops its pages from the page cache.
func coldLog(t *testing.T, o Options) (dir string, records uint64, segs []string) {
	t.Helper()
	dir = t.TempDir()
	o.SegmentSize, o.MaxRecordSize = 8<<20, 64<<10
	w := openT(t, dir, o)
	records = 20 << 10
	appendKiB(t, w, records)
	require.NoError(t, w.Close())
	evictDir(t, dir)
	segs = segPaths(t, dir)
	require.GreaterOrEqual(t, len(segs), 3)
	f, err := os.Open(segs[0])
	require.NoError(t, err)
	frac, known := fsys.Cached(int(f.Fd()), 0, o.SegmentSize)
	require.NoError(t, f.Close())
	require.True(t, known, "cachestat(2) is missing (Linux 6.5 or later); CI runs on a kernel that has it")
	require.Less(t, frac, 0.1, "evicted segment still cached")
	return dir, records, segs
}

// warmSegments reads the segment files until the page-cache probe the
// Reader uses finds each of them cached (at most three times).
func warmSegments(t *testing.T, segs []string) {
	t.Helper()
	for _, p := range segs {
		var frac float64
		for range 3 {
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			f, err := os.Open(p)
			require.NoError(t, err)
			frac, _ = fsys.Cached(int(f.Fd()), 0, int64(len(b)))
			require.NoError(t, f.Close())
			if frac >= cachedEnough {
				break
			}
		}
		require.GreaterOrEqual(t, frac, cachedEnough, "%s: not in the page cache after reading it three times", p)
	}
}

// replayPass reads the whole log with one Reader, checks every record, and
// returns, per segment, whether the reader took it for cold, and the
// READ_FIXED reads and bytes of the pass.
func replayPass(t *testing.T, w *WAL, records uint64) (cold map[string]bool, ops, bytes uint64) {
	t.Helper()
	st0 := w.Stats()
	r, err := w.NewReader(w.FirstLSN())
	require.NoError(t, err)
	cold = map[string]bool{}
	seq := map[string]bool{} // pwrite: the segment's windows advised sequential
	lsn := uint64(1)
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
			seq[rec.Segment] = r.mr != nil && r.mr.seq
		}
	}
	require.Equal(t, records+1, lsn)
	if w.Backend() == BackendPwrite {
		// Every segment is read in place through mapped windows, cold or
		// cached, without a read buffer; a cold one's windows are
		// advised sequential, a cached one's are not.
		assert.Nil(t, r.buf, "segments read in place need no read buffer")
		// A 8 MiB segment takes two or three 4 MiB windows.
		assert.GreaterOrEqual(t, r.mappedWindows(), 2*len(cold), "every segment read through mapped windows")
		assert.LessOrEqual(t, r.mappedWindows(), 3*len(cold), "every segment read through mapped windows")
		for name, c := range cold {
			assert.Equal(t, c, seq[name], "%s: cold %v, windows advised sequential %v", name, c, seq[name])
		}
	}
	require.NoError(t, r.Close())
	st1 := w.Stats()
	return cold, st1.ReadFixedOps - st0.ReadFixedOps, st1.ReadFixedBytes - st0.ReadFixedBytes
}

// TestReplayWindowFollowsPageCache: a Reader reads a segment that is not in
// the page cache through 4 MiB mapped windows advised sequential (pwrite)
// or in 4 MiB reads (io_uring: READ_FIXED through the cold ring's 4 MiB
// buffer, let go when the reader is done), and one that is through 4 MiB
// mapped windows (pwrite) or in 512 KiB READ_FIXED chunks (io_uring), and
// returns the same records either way.
func TestReplayWindowFollowsPageCache(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir, records, segs := coldLog(t, Options{Backend: be})
		w := openT(t, dir, Options{SegmentSize: 8 << 20, MaxRecordSize: 64 << 10, Backend: be})
		defer w.Close()

		first, ops, bytes := replayPass(t, w, records)
		require.Len(t, first, len(segs))
		for i, p := range segs {
			name := filepath.Base(p)
			if i < len(segs)-1 { // Open read the last segment to find its end
				assert.True(t, first[name], "%s: read from the disk, but not as cold", name)
			}
		}
		if be == BackendURing {
			// Two sealed 8 MiB segments in 4 MiB reads, the last (cached)
			// in 512 KiB ones: far fewer reads than 512 KiB chunks take.
			require.NotZero(t, ops)
			assert.Less(t, ops, bytes/readChunk/2, "cold segments read in %d READ_FIXED of %d bytes", ops, bytes)
			assert.False(t, w.cold.held, "the reader let go of the cold ring")
		}

		// The kernel may evict pages of a file read a moment ago (this
		// VM's does, now and then): make sure the segments are in the page
		// cache before the pass that must take them for cached.
		warmSegments(t, segs)
		second, ops, bytes := replayPass(t, w, records)
		for name, cold := range second {
			assert.False(t, cold, "%s: read again from the page cache, but as cold", name)
		}
		if be == BackendURing {
			assert.GreaterOrEqual(t, ops, bytes/readChunk, "cached segments read in 512 KiB chunks")
		}
	})
}

// TestColdRingUnavailable: on io_uring, when the cold ring cannot be set up
// (its 4 MiB refused, as under a short RLIMIT_MEMLOCK) or another reader
// holds it, cold segments are read with 4 MiB preads (no READ_FIXED), the
// refusal logged once; cached ones still through the shared read ring.
func TestColdRingUnavailable(t *testing.T) {
	dir, records, _ := coldLog(t, Options{Backend: BackendURing})
	var logs bytes.Buffer
	o := Options{
		SegmentSize: 8 << 20, MaxRecordSize: 64 << 10, Backend: BackendURing,
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
		newColdRing: func() (*readRing, error) { return nil, fmt.Errorf("register: %w", syscall.ENOMEM) },
	}
	w := openT(t, dir, o)
	cold, ops, n := replayPass(t, w, records)
	assert.True(t, cold[filepath.Base(segPaths(t, dir)[0])], "the first segment was cold")
	assert.NotZero(t, ops, "the cached last segment through the shared read ring")
	assert.Less(t, n, uint64(8<<20), "the two cold 8 MiB segments without READ_FIXED")
	_, ops, _ = replayPass(t, w, records)
	assert.GreaterOrEqual(t, ops, uint64(20<<20)/readChunk, "read again, all cached: 512 KiB READ_FIXED chunks")
	evictDir(t, dir)
	replayPass(t, w, records)
	assert.Equal(t, 1, strings.Count(logs.String(), "cold-replay buffer unavailable"), "said once per log: %s", logs.String())
	assert.Contains(t, logs.String(), "cannot allocate memory")
	require.NoError(t, w.Close())

	// Two readers at once over a cold log: the first holds the cold ring
	// (and its read-ahead brings the rest of its segment in), the second,
	// started in the next segment, does without it; both read everything.
	evictDir(t, dir)
	w = openT(t, dir, Options{SegmentSize: 8 << 20, MaxRecordSize: 64 << 10, Backend: BackendURing})
	defer w.Close()
	r1, err := w.NewReader(1)
	require.NoError(t, err)
	_, err = r1.Next()
	require.NoError(t, err)
	require.True(t, r1.cold)
	require.NotNil(t, r1.cr, "the first reader holds the cold ring")
	base2, ok := segment.ParseFileName(filepath.Base(segPaths(t, dir)[1]))
	require.True(t, ok)
	r2, err := w.NewReader(base2)
	require.NoError(t, err)
	rec, err := r2.Next()
	require.NoError(t, err)
	require.Equal(t, payload(base2, 1000), rec.Data)
	require.True(t, r2.cold)
	assert.Nil(t, r2.cr, "the second reader does without the cold ring")
	assert.Nil(t, r2.pf, "and reads its cold segment with pread")
	assert.Len(t, r2.buf, coldReplayBuffer)
	rest2 := readRest(t, r2)
	rest1 := readRest(t, r1)
	require.Len(t, rest1, int(records)-1)
	require.Len(t, rest2, int(records-base2))
	for i := range rest1 {
		require.Equal(t, payload(uint64(i+2), 1000), rest1[i].Data)
	}
	for i := range rest2 {
		require.Equal(t, payload(base2+1+uint64(i), 1000), rest2[i].Data)
	}
	require.NoError(t, r1.Close())
	require.NoError(t, r2.Close())
	assert.False(t, w.cold.held)
}
