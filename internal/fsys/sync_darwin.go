//go:build darwin

package fsys

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Fdatasync makes the file durable. On macOS fsync(2) leaves data in the
// drive's cache; fcntl F_FULLFSYNC flushes it, as Go's (*os.File).Sync does.
// File systems that refuse F_FULLFSYNC get fsync(2).
func Fdatasync(fd int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_FULLFSYNC, 0)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EINVAL) {
		return unix.Fsync(fd)
	}
	return err
}
