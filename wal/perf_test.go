package wal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/internal/ring"
)

// TestAppendAllocs counts heap allocations per durable Append, across every
// goroutine of the process (AllocsPerRun reads the runtime's malloc count):
// the appender, the flusher or ring reaper, and the completer. 500 appends
// of 1 KiB stay inside the first segment, so no rotation or preparation
// runs.
//
// The pwrite backend must not allocate at all. On io_uring this package
// allocates nothing either, but github.com/iceber/iouring-go allocates per
// chain: per request a UserData, a request and its done channel (3 x 2:
// the write and the fdatasync), per request set the set, its request and
// user-data slices and its done channel (4), and per completion a copy of
// the CQE (2): 12. The bound is that count, so any allocation of ours fails
// the test.
func TestAppendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race sync.Pool drops a random share of recycled batches; .ci/run runs this test without -race")
	}
	for _, tc := range []struct {
		backend Backend
		max     float64
	}{{BackendPwrite, 0}, {BackendURing, 12}} {
		t.Run(string(tc.backend), func(t *testing.T) {
			w := openT(t, t.TempDir(), Options{Backend: tc.backend})
			defer w.Close()
			p := make([]byte, 1024)
			for range 10 { // warm up: the first chains make their jobs
				_, err := w.Append(p)
				require.NoError(t, err)
			}
			var err error
			allocs := testing.AllocsPerRun(500, func() {
				if _, e := w.Append(p); e != nil {
					err = e
				}
			})
			require.NoError(t, err)
			t.Logf("%s: %.0f allocations per durable Append", tc.backend, allocs)
			require.LessOrEqual(t, allocs, tc.max, "allocations per durable Append")
		})
	}
}

// TestPwriteJobDone: a job's Done channel, asked for before or after the
// chain completed, is closed once it completed; a recycled job starts open
// again, and the completer's wait consumes exactly one completion per use.
func TestPwriteJobDone(t *testing.T) {
	s := newPwriteSubmitter(nil, 1)
	defer s.close()
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	defer f.Close()
	fd := int(f.Fd())
	ops := []ring.Op{{Kind: ring.Fdatasync, Fd: fd}}

	c, err := s.Submit(ops)
	require.NoError(t, err)
	before := c.Done()
	<-before
	j := c.(*pwriteJob)
	j.wait()
	require.NoError(t, ring.Check(ops, c.Results()))
	select {
	case <-c.Done(): // asked for after completion: already closed
	default:
		t.Fatal("Done after completion is not closed")
	}
	j.Release()

	c2, err := s.Submit(ops)
	require.NoError(t, err)
	require.Same(t, j, c2.(*pwriteJob), "the released job is reused")
	// Waited for through Done only, then released: release drains the
	// pending wake-up, so the next use's wait does not return before its
	// own chain completed.
	<-c2.Done()
	require.NoError(t, ring.Check(ops, c2.Results()))
	j.Release()
	require.Empty(t, j.wake)

	gate := make(chan struct{})
	s2 := newPwriteSubmitter(gateIO{gate: gate}, 1)
	defer s2.close()
	c3, err := s2.Submit(ops)
	require.NoError(t, err)
	select {
	case <-c3.Done():
		t.Fatal("Done closed before the chain ran")
	default:
	}
	close(gate)
	c3.(*pwriteJob).wait()
	<-c3.Done()
}

// gateIO holds every fdatasync until gate is closed.
type gateIO struct {
	osFileIO
	gate chan struct{}
}

func (g gateIO) Fdatasync(fd int) error { <-g.gate; return g.osFileIO.Fdatasync(fd) }

// TestPrefetchBackwards: recovery scans for the end of the written region
// from the end of the file backwards; READ_FIXED reads then cover exactly
// what was asked for, while a forward scan still reads ahead.
func TestPrefetchBackwards(t *testing.T) {
	rr, err := newReadRing()
	require.NoError(t, err)
	defer rr.release()
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	defer f.Close()
	const size, win = 8 << 20, 1 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	_, err = f.WriteAt(data, 0)
	require.NoError(t, err)

	p := newPrefetchReader(rr, f, size)
	buf := make([]byte, win)
	for off := int64(size - win); off >= 0; off -= win {
		n, err := p.ReadAt(buf, off)
		require.NoError(t, err)
		require.Equal(t, win, n)
		require.Equal(t, data[off:off+win], buf)
	}
	require.NoError(t, p.Close())
	assert.Equal(t, uint64(size), rr.bytes.Load(), "bytes read by READ_FIXED scanning backwards")

	rr.bytes.Store(0)
	p = newPrefetchReader(rr, f, size)
	_, err = p.ReadAt(buf, 0)
	require.NoError(t, err)
	require.NoError(t, p.Close())
	assert.Greater(t, rr.bytes.Load(), uint64(win), "a forward reader reads ahead")
}
