package wal

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// mountRamfs mounts a ramfs, a file system without fallocate(2) like ext2
// and some NFS and FUSE ones, on a fresh directory for the test.
func mountRamfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a ramfs needs root (CI runs as root): the no-fallocate cases are not run")
	}
	dir := t.TempDir()
	require.NoError(t, syscall.Mount("ramfs", dir, "ramfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755"))
	unmountAtCleanup(t, dir)
	f, err := os.Create(filepath.Join(dir, "probe"))
	require.NoError(t, err)
	defer os.Remove(f.Name())
	defer f.Close()
	require.ErrorIs(t, unix.Fallocate(int(f.Fd()), 0, 0, 4096), unix.EOPNOTSUPP, "ramfs must refuse fallocate for this test to mean anything")
	return dir
}

// TestNoFallocate: on a file system that refuses fallocate(2), segments are
// zero-filled instead, whatever the Prealloc option, the policy that picks
// fallocate for a segment of AppendAsync records, or a rotation in a hurry.
// The log used to fail its first rotation after a bulk load there ("prepare
// segment 2: fallocate ...: operation not supported"), and Open with
// PreallocFallocate failed outright.
func TestNoFallocate(t *testing.T) {
	root := mountRamfs(t)
	for _, be := range []Backend{BackendPwrite, BackendURing} {
		for _, pre := range []Prealloc{PreallocZero, PreallocFallocate} {
			t.Run(fmt.Sprintf("%s/prealloc=%d", be, pre), func(t *testing.T) {
				dir := filepath.Join(root, fmt.Sprintf("%s-%d", be, pre))
				var logs bytes.Buffer
				o := Options{Backend: be, Prealloc: pre, SegmentSize: 1 << 20, MaxRecordSize: 16 << 10,
					Logger: slog.New(slog.NewTextHandler(&logs, nil))}
				w, err := Open(dir, o)
				require.NoError(t, err)
				p := make([]byte, 1000)
				const n = 6000 // about six segments
				for i := range n {
					p[0] = byte(i)
					if i%200 == 0 {
						_, err = w.Append(p)
					} else {
						_, err = w.AppendAsync(p)
					}
					require.NoError(t, err, "record %d", i)
				}
				require.NoError(t, w.Sync())
				assert.GreaterOrEqual(t, w.Stats().Rotations, uint64(4))
				require.NoError(t, w.Close())
				// With PreallocZero too: segments of AppendAsync records
				// are followed by fallocated ones.
				assert.Equal(t, 1, strings.Count(logs.String(), "does not support fallocate"), "said once:\n%s", logs.String())

				w, err = Open(dir, o)
				require.NoError(t, err)
				got := readAll(t, w, 1)
				require.Len(t, got, n)
				for i, r := range got {
					require.Equal(t, byte(i), r.Data[0])
				}
				require.NoError(t, w.Close())
			})
		}
	}
}

// TestCreatePreparedNoFallocate: a hurried zero-fill (a rotation waits for
// the segment) and a PreallocFallocate one on a file system without
// fallocate write zeros to the end and say so.
func TestCreatePreparedNoFallocate(t *testing.T) {
	root := mountRamfs(t)
	const size = 4 * zeroChunk
	for _, c := range []struct {
		name  string
		mode  Prealloc
		hurry bool
		rate  int64
	}{{"hurried", PreallocZero, true, zeroChunk}, {"fallocate", PreallocFallocate, false, 0}} {
		t.Run(c.name, func(t *testing.T) {
			var hurry atomic.Bool
			hurry.Store(c.hurry)
			told := 0
			path := filepath.Join(root, c.name+".tmp")
			f, err := createPrepared(path, size, c.mode, fillControl{hurry: &hurry, rate: c.rate, noFallocate: func() { told++ }})
			require.NoError(t, err)
			defer f.Close()
			assert.Equal(t, 1, told)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Len(t, data, size)
			assert.True(t, bytes.Equal(data, make([]byte, size)), "reads as zeros")
		})
	}
}
