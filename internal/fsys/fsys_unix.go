//go:build unix && !linux

package fsys

// StartWriteback does nothing: there is no sync_file_range here.
func StartWriteback(fd int, off, n int64) error { return nil }

// WaitWriteback does nothing: StartWriteback started nothing.
func WaitWriteback(fd int, off, n int64) error { return nil }

// Fallocate reports false: not supported here, as on a Linux file system
// without fallocate(2). The log zero-fills its segments instead.
func Fallocate(fd int, off, n int64) (bool, error) { return false, nil }

// AdviseSequential does nothing.
func AdviseSequential(fd int) {}

// AdviseHugePages does nothing.
func AdviseHugePages(b []byte) {}

// DropCached does nothing.
func DropCached(fd int, off, n int64) {}

// Cached reports that it does not know.
func Cached(fd int, off, n int64) (frac float64, known bool) { return 0, false }
