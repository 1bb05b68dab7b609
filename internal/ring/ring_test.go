//go:build linux

package ring

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ringAndFile returns a small ring and an empty file, both closed when t ends.
func ringAndFile(t *testing.T) (*Ring, *os.File) {
	t.Helper()
	r, err := New(8)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return r, f
}

// TestSyncRangeChain: a write linked to a SyncRange succeeds with 0 for the
// range op and the data reads back; a SyncRange on a bad descriptor fails
// with the errno, as an *OpError.
func TestSyncRangeChain(t *testing.T) {
	r, f := ringAndFile(t)
	fd := int(f.Fd())
	data := []byte("sync_file_range after a write")
	ops := []Op{
		{Kind: Write, Fd: fd, Buf: data, Offset: 4096},
		{Kind: SyncRange, Fd: fd, Offset: 4096, Size: uint32(len(data))},
	}
	c, err := r.Submit(ops)
	require.NoError(t, err)
	require.NoError(t, Wait(c, ops))
	got := make([]byte, len(data))
	_, err = f.ReadAt(got, 4096)
	require.NoError(t, err)
	assert.Equal(t, data, got)

	bad := []Op{{Kind: SyncRange, Fd: 1 << 20, Offset: 0, Size: 4096}}
	c, err = r.Submit(bad)
	require.NoError(t, err)
	err = Wait(c, bad)
	var oe *OpError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, SyncRange, oe.Kind)
	assert.ErrorIs(t, err, syscall.EBADF)

	_, err = r.Submit([]Op{{Kind: SyncRange, Fd: fd, Offset: 0, Size: 0}})
	assert.Error(t, err, "an empty range is refused before submission")
}

// TestKick: a no-op submission completes on an open ring (and does not
// disturb a chain in flight); a closed ring refuses it.
func TestKick(t *testing.T) {
	r, err := New(8)
	require.NoError(t, err)
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	defer f.Close()
	ops := []Op{{Kind: Write, Fd: int(f.Fd()), Buf: []byte("x"), Offset: 0}, {Kind: Fdatasync, Fd: int(f.Fd())}}
	c, err := r.Submit(ops)
	require.NoError(t, err)
	for range 10 {
		require.NoError(t, r.Kick())
	}
	require.NoError(t, Wait(c, ops))
	require.NoError(t, r.Close())
	assert.ErrorIs(t, r.Kick(), ErrClosed)
	_, err = r.Submit(ops)
	assert.ErrorIs(t, err, ErrClosed, "a closed ring refuses chains instead of crashing")
}

// TestChainReuse: a released chain is reused by the next submission, which
// may hold more ops than it did before; each use reports its own results
// and a failure in one use does not leak into the next.
func TestChainReuse(t *testing.T) {
	r, f := ringAndFile(t)
	fd := int(f.Fd())

	one := []Op{{Kind: Write, Fd: fd, Buf: []byte("first"), Offset: 0}}
	c, err := r.Submit(one)
	require.NoError(t, err)
	require.NoError(t, Wait(c, one))
	c.(Releaser).Release()

	two := []Op{{Kind: Write, Fd: fd, Buf: []byte("second"), Offset: 8}, {Kind: Fdatasync, Fd: fd}}
	c2, err := r.Submit(two)
	require.NoError(t, err)
	require.Same(t, c, c2, "the released chain is reused")
	require.NoError(t, Wait(c2, two))
	assert.Equal(t, []int32{6, 0}, c2.Results())
	c2.(Releaser).Release()

	bad := []Op{{Kind: Write, Fd: 1 << 20, Buf: []byte("x"), Offset: 0}, {Kind: Fdatasync, Fd: fd}}
	c3, err := r.Submit(bad)
	require.NoError(t, err)
	require.ErrorIs(t, Wait(c3, bad), syscall.EBADF)
	assert.Equal(t, []int32{-int32(syscall.EBADF), -int32(syscall.ECANCELED)}, c3.Results())
	c3.(Releaser).Release()

	c4, err := r.Submit(one)
	require.NoError(t, err)
	require.NoError(t, Wait(c4, one))
	assert.Equal(t, []int32{5}, c4.Results())

	got := make([]byte, 14)
	_, err = f.ReadAt(got, 0)
	require.NoError(t, err)
	assert.Equal(t, "first\x00\x00\x00second", string(got))
}
