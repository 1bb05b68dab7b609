//go:build unix && !linux

package fsys

import "golang.org/x/sys/unix"

// StartWriteback does nothing: there is no sync_file_range here.
func StartWriteback(fd int, off, n int64) error { return nil }

// Fallocate reports EOPNOTSUPP, as a Linux file system without fallocate
// does: the log zero-fills its segments instead.
func Fallocate(fd int, off, n int64) error { return unix.EOPNOTSUPP }

// AdviseSequential does nothing.
func AdviseSequential(fd int) {}
