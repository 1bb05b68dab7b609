//go:build unix && !linux && !darwin

package fsys

import "golang.org/x/sys/unix"

// Fdatasync makes the file durable with fsync(2).
func Fdatasync(fd int) error { return unix.Fsync(fd) }
