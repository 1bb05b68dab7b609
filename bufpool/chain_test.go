package bufpool

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/internal/ring"
)

// submitChain writes the first n bytes of buffer idx at off, linked to an
// fdatasync, and returns the raw results and the checked error.
func submitChain(t *testing.T, r *Ring, p *Pool, fd int, idx uint16, off int64, n int) ([]int32, error) {
	t.Helper()
	buf, err := p.Get(idx)
	require.NoError(t, err)
	ops := []ring.Op{
		{Kind: ring.WriteFixed, Fd: fd, Buf: buf[:n], BufIndex: idx, Offset: off},
		{Kind: ring.Fdatasync, Fd: fd},
	}
	require.NoError(t, p.MarkInFlight(idx))
	c, err := r.Submit(ops)
	require.NoError(t, err)
	<-c.Done()
	require.NoError(t, p.CompleteInFlight(idx))
	return c.Results(), ring.Check(ops, c.Results())
}

func TestLinkedChainSucceeds(t *testing.T) {
	r := newRing(t)
	p, err := New(r, 8192, 1)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	f, err := os.Create(filepath.Join(t.TempDir(), "ok"))
	require.NoError(t, err)
	defer f.Close()
	idx, buf, err := p.Acquire()
	require.NoError(t, err)
	copy(buf, "durable")
	res, err := submitChain(t, r, p, int(f.Fd()), idx, 0, 8192)
	require.NoError(t, err)
	assert.Equal(t, []int32{8192, 0}, res)
	require.NoError(t, p.Release(idx))
}

// A write that fails outright (EBADF: the fd is read-only) must cancel the
// linked fsync: the fsync never reports success for a chain whose write
// failed.
func TestLinkedFailedWriteCancelsFsync(t *testing.T) {
	r := newRing(t)
	p, err := New(r, 8192, 1)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	path := filepath.Join(t.TempDir(), "ro")
	require.NoError(t, os.WriteFile(path, nil, 0o644))
	f, err := os.Open(path) // read-only
	require.NoError(t, err)
	defer f.Close()
	idx, _, err := p.Acquire()
	require.NoError(t, err)

	res, err := submitChain(t, r, p, int(f.Fd()), idx, 0, 8192)
	assert.Equal(t, -int32(syscall.EBADF), res[0])
	assert.Equal(t, -int32(syscall.ECANCELED), res[1], "the fsync behind a failed write must be cancelled")
	var opErr *ring.OpError
	require.ErrorAs(t, err, &opErr)
	assert.Equal(t, ring.WriteFixed, opErr.Kind, "the cause is the write, not the cancelled fsync")
	assert.ErrorIs(t, err, syscall.EBADF)
	require.NoError(t, p.Release(idx))
}

// A short write (6000 of 8192 bytes: the file-size limit stops it) reports a
// positive count, not an errno. The kernel must still cancel the linked
// fsync, and Check must call the chain failed.
func TestLinkedShortWriteCancelsFsync(t *testing.T) {
	r := newRing(t)
	p, err := New(r, 8192, 1)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	f, err := os.Create(filepath.Join(t.TempDir(), "short"))
	require.NoError(t, err)
	defer f.Close()
	idx, _, err := p.Acquire()
	require.NoError(t, err)

	// Writes may not grow the file past 4096+6000 bytes while the limit holds.
	// Go ignores SIGXFSZ, so the write is cut short instead of killing us.
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	lim := old
	lim.Cur = 4096 + 6000
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim))
	res, err := submitChain(t, r, p, int(f.Fd()), idx, 4096, 8192)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old))

	assert.Equal(t, int32(6000), res[0], "short write reported as a byte count")
	assert.Equal(t, -int32(syscall.ECANCELED), res[1], "the fsync behind a short write must be cancelled")
	assert.ErrorIs(t, err, ring.ErrShortIO)
	var opErr *ring.OpError
	require.ErrorAs(t, err, &opErr)
	assert.Equal(t, 0, opErr.Index)
	require.NoError(t, p.Release(idx))
}
