package wal

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
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
