//go:build linux

package fsys

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWriteback: the writeback calls accept a written range of a regular
// file (the flags are ones the kernel takes) and report a bad descriptor.
func TestWriteback(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteAt(make([]byte, 256<<10), 0)
	require.NoError(t, err)
	fd := int(f.Fd())
	require.NoError(t, StartWriteback(fd, 0, 128<<10))
	require.NoError(t, StartWriteback(fd, 128<<10, 128<<10))
	require.NoError(t, WaitWriteback(fd, 0, 128<<10))
	require.NoError(t, WaitWriteback(fd, 128<<10, 128<<10))
	assert.Error(t, StartWriteback(-1, 0, 4096))
	assert.Error(t, WaitWriteback(-1, 0, 4096))
}
