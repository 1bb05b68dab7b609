//go:build !linux

package ring

import (
	"fmt"
	"syscall"
)

// Ring is unavailable off Linux; New always fails with ENOSYS.
type Ring struct{}

// New fails: io_uring exists only on Linux.
func New(entries uint) (*Ring, error) {
	return nil, fmt.Errorf("ring: io_uring_setup: %w", syscall.ENOSYS)
}

// Probe fails: io_uring exists only on Linux.
func Probe() error { _, err := New(1); return err }

// Entries is 0.
func (r *Ring) Entries() int { return 0 }

// RegisterBuffers fails with ENOSYS.
func (r *Ring) RegisterBuffers([][]byte) error { return syscall.ENOSYS }

// UnregisterBuffers fails with ENOSYS.
func (r *Ring) UnregisterBuffers() error { return syscall.ENOSYS }

// Close does nothing.
func (r *Ring) Close() error { return nil }

// Submit fails with ENOSYS.
func (r *Ring) Submit([]Op) (Completion, error) { return nil, syscall.ENOSYS }

// Kick fails with ENOSYS.
func (r *Ring) Kick() error { return syscall.ENOSYS }
