package wal

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringwal/ringwal/segment"
)

// TestCreatePreparedBoundsWriteback: a zero-fill keeps at most two chunks
// of zeros under writeback, so an appender's fdatasync never queues behind
// more. The fill runs unpaced, writing zeros into the page cache faster
// than a disk takes them; a goroutine samples how many of the file's pages
// are under writeback (cachestat(2)) until it ends. Without the bound the
// count runs to megabytes.
func TestCreatePreparedBoundsWriteback(t *testing.T) {
	const size = 64 * zeroChunk
	path := filepath.Join(t.TempDir(), "p.tmp")
	page := int64(unix.Getpagesize())
	var stop atomic.Bool
	peak, samples := make(chan uint64, 1), make(chan int, 1)
	go func() {
		var most uint64
		n := 0
		defer func() { peak <- most; samples <- n }()
		var f *os.File
		for f == nil && !stop.Load() {
			f, _ = os.Open(path)
		}
		if f == nil {
			return
		}
		defer f.Close()
		r := unix.CachestatRange{Off: 0, Len: uint64(size)}
		for !stop.Load() {
			var st unix.Cachestat_t
			if err := unix.Cachestat(uint(f.Fd()), &r, &st, 0); err != nil {
				if errors.Is(err, unix.ENOSYS) {
					return
				}
				continue
			}
			n++
			most = max(most, st.Writeback)
		}
	}()
	f, err := createPrepared(path, size, PreallocZero, fillControl{})
	stop.Store(true)
	require.NoError(t, err)
	defer f.Close()
	most, n := <-peak, <-samples
	if n == 0 {
		t.Skip("cachestat(2) is not available here (Linux 6.5 and later)")
	}
	t.Logf("%d samples, at most %d pages under writeback (a chunk is %d)", n, most, zeroChunk/page)
	// Two chunks, and the pages of the next one, which the kernel's own
	// flusher may have started writing before the fill did.
	assert.LessOrEqual(t, most, uint64(3*zeroChunk/page), "zeros under writeback")
}

// TestOpenPreparesNothing: Open does not ask for the next segment, even
// when the last one is past the quarter at which appends ask for it, so a
// log opened to be replayed writes no zero-filled segment beside its
// reads. The first append after Open asks for it.
func TestOpenPreparesNothing(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := smallOpts(be)
		w := openT(t, dir, o)
		for i := uint64(1); w.Stats().Rotations < 1 || w.tail < o.SegmentSize/2; i++ {
			_, err := w.Append(payload(i, 300))
			require.NoError(t, err)
		}
		require.NoError(t, w.Close())

		w = openT(t, dir, o)
		defer w.Close()
		require.Greater(t, w.tail, o.SegmentSize/4, "the last segment is past the quarter")
		recs := readAll(t, w, 1)
		require.NotEmpty(t, recs)
		time.Sleep(100 * time.Millisecond) // a preparation started by Open would be under way or done
		st := w.Stats()
		assert.Zero(t, st.ZeroFilled+st.Fallocated, "Open and the replay prepared no segment")
		tmp, err := filepath.Glob(filepath.Join(dir, "*"+segment.TempFileSuffix))
		require.NoError(t, err)
		assert.Empty(t, tmp, "no file being prepared")

		_, err = w.Append(payload(uint64(len(recs))+1, 300))
		require.NoError(t, err)
		require.Eventually(t, func() bool { st := w.Stats(); return st.ZeroFilled+st.Fallocated == 1 },
			5*time.Second, 5*time.Millisecond, "the first append asked for the next segment")
	})
}
