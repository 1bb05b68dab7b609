//go:build linux

package ring

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	iouring "github.com/iceber/iouring-go"
	iouring_syscall "github.com/iceber/iouring-go/syscall"
	"golang.org/x/sys/unix"
)

// Ring is one io_uring instance. It is safe for concurrent use.
type Ring struct {
	r       *iouring.IOURing
	entries int
	// mu is held shared by submissions and exclusively by Close: the
	// library dereferences unmapped memory when used after Close.
	mu     sync.RWMutex
	closed bool

	freeMu sync.Mutex
	free   []*chain // released chains, for reuse
}

// New creates a ring with room for entries submission queue entries. The
// error wraps the errno of io_uring_setup, so callers can test for
// syscall.EPERM (disabled by sysctl or blocked by seccomp), syscall.ENOSYS
// (kernel without io_uring) or syscall.ENOMEM and fall back to plain I/O.
func New(entries uint) (*Ring, error) {
	if entries == 0 {
		return nil, errors.New("ring: entries must be > 0")
	}
	r, err := iouring.New(entries)
	if err != nil {
		return nil, fmt.Errorf("ring: io_uring_setup(%d): %w", entries, unwrapErrno(err))
	}
	return &Ring{r: r, entries: r.Size()}, nil
}

// unwrapErrno returns a syscall.Errno when err carries one, so errors.Is works
// however the library wrapped it.
func unwrapErrno(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}

// Probe reports whether io_uring can be used on this machine: it sets up a
// tiny ring, registers one page as a fixed buffer and tears both down. A nil
// result means the io_uring backend will work; otherwise the error wraps the
// errno that stopped it.
func Probe() error {
	r, err := New(4)
	if err != nil {
		return err
	}
	defer r.Close()
	page := make([]byte, os.Getpagesize())
	if err := r.RegisterBuffers([][]byte{page}); err != nil {
		return err
	}
	return r.UnregisterBuffers()
}

// Entries is the submission queue size: the most ops one chain may hold.
func (r *Ring) Entries() int { return r.entries }

// RegisterBuffers registers bufs as fixed buffers 0..len(bufs)-1
// (IORING_REGISTER_BUFFERS). The memory must stay mapped and unmoved until
// UnregisterBuffers. ENOMEM means RLIMIT_MEMLOCK is too small.
func (r *Ring) RegisterBuffers(bufs [][]byte) error {
	if err := r.r.RegisterBuffers(bufs); err != nil {
		return fmt.Errorf("ring: register %d buffers: %w", len(bufs), unwrapErrno(err))
	}
	return nil
}

// UnregisterBuffers drops every registered buffer.
func (r *Ring) UnregisterBuffers() error {
	if err := r.r.UnRegisterBuffers(); err != nil {
		return fmt.Errorf("ring: unregister buffers: %w", unwrapErrno(err))
	}
	return nil
}

// Close tears the ring down. Ops still in flight complete in the kernel, but
// their completions are no longer delivered: drain before closing.
func (r *Ring) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	r.closed = true
	return r.r.Close()
}

// Kick submits a no-op (IORING_OP_NOP). Its io_uring_enter hands the kernel
// any entry still queued in the submission ring, and its completion wakes
// the library's reaper, which then drains every completion posted. Callers
// use it when a chain has been in flight suspiciously long.
func (r *Ring) Kick() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	_, err := r.r.SubmitRequests([]iouring.PrepRequest{func(sqe iouring_syscall.SubmissionQueueEntry, _ *iouring.UserData) {
		sqe.PrepOperation(iouring_syscall.IORING_OP_NOP, -1, 0, 0, 0)
	}}, nil)
	if err != nil {
		return fmt.Errorf("ring: kick: %w", unwrapErrno(err))
	}
	return nil
}

// chain is a submitted chain: it adapts the library's request set. Chains
// are reused once their owner calls Release, so that a submission makes no
// allocation of this package's own (the library still makes its per-request
// ones): the prep functions are bound to the chain's op slots once, when
// the chain first holds that many ops.
type chain struct {
	r       *Ring
	ops     []Op // the caller's ops: keeps heap buffers referenced while the kernel uses them
	preps   []iouring.PrepRequest
	set     iouring.RequestSet
	res     []int32
	haveRes bool
}

func (c *chain) Done() <-chan struct{} { return c.set.Done() }

func (c *chain) Results() []int32 {
	if !c.haveRes {
		reqs := c.set.Requests()
		c.res = c.res[:0]
		for _, req := range reqs {
			n, err := req.GetRes()
			if err != nil {
				// Not completed: callers must wait for Done first.
				n = -int(syscall.EINPROGRESS)
			}
			c.res = append(c.res, int32(n))
		}
		c.haveRes = true
	}
	return c.res
}

// Release hands the chain back for reuse (Releaser). The caller must have
// waited for Done and must not use the chain (or its Results) afterwards.
func (c *chain) Release() {
	c.ops, c.set, c.haveRes = nil, nil, false
	c.r.freeMu.Lock()
	c.r.free = append(c.r.free, c)
	c.r.freeMu.Unlock()
}

// getChain returns a chain with prep functions for n ops.
func (r *Ring) getChain(n int) *chain {
	r.freeMu.Lock()
	var c *chain
	if k := len(r.free); k > 0 {
		c, r.free = r.free[k-1], r.free[:k-1]
	}
	r.freeMu.Unlock()
	if c == nil {
		c = &chain{r: r}
	}
	for i := len(c.preps); i < n; i++ {
		c.preps = append(c.preps, func(sqe iouring_syscall.SubmissionQueueEntry, _ *iouring.UserData) {
			prep(sqe, c.ops[i], i < len(c.ops)-1)
		})
	}
	return c
}

// Submit implements Submitter.
func (r *Ring) Submit(ops []Op) (Completion, error) {
	if len(ops) == 0 {
		return nil, errors.New("ring: empty chain")
	}
	if len(ops) > r.entries {
		return nil, fmt.Errorf("ring: chain of %d ops exceeds ring size %d", len(ops), r.entries)
	}
	for i := range ops {
		if err := validate(ops[i]); err != nil {
			return nil, err
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, ErrClosed
	}
	c := r.getChain(len(ops))
	c.ops = ops
	set, err := r.r.SubmitRequests(c.preps[:len(ops)], nil)
	if err != nil {
		c.Release()
		if errors.Is(err, iouring.ErrIOURingClosed) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("ring: submit: %w", unwrapErrno(err))
	}
	c.set = set
	return c, nil
}

func validate(op Op) error {
	switch op.Kind {
	case WriteFixed, ReadFixed, Write, Read:
		if len(op.Buf) == 0 {
			return fmt.Errorf("ring: %v with an empty buffer", op.Kind)
		}
		if op.Offset < 0 {
			return fmt.Errorf("ring: %v at negative offset %d", op.Kind, op.Offset)
		}
		if uint64(len(op.Buf)) > 1<<31 {
			return fmt.Errorf("ring: %v of %d bytes is too large", op.Kind, len(op.Buf))
		}
	case Fdatasync, Fsync:
	case SyncRange:
		if op.Size == 0 || op.Offset < 0 {
			return fmt.Errorf("ring: %v of %d bytes at offset %d", op.Kind, op.Size, op.Offset)
		}
	default:
		return fmt.Errorf("ring: unknown op %v", op.Kind)
	}
	if op.Fd < 0 {
		return fmt.Errorf("ring: %v on bad fd %d", op.Kind, op.Fd)
	}
	return nil
}

// prep fills sqe for op, linked to the next SQE when link is set.
func prep(sqe iouring_syscall.SubmissionQueueEntry, op Op, link bool) {
	var addr uint64
	if len(op.Buf) > 0 {
		addr = uint64(uintptr(unsafe.Pointer(&op.Buf[0])))
	}
	switch op.Kind {
	case WriteFixed:
		sqe.PrepOperation(iouring_syscall.IORING_OP_WRITE_FIXED, int32(op.Fd), addr, uint32(len(op.Buf)), uint64(op.Offset))
		sqe.SetBufIndex(op.BufIndex)
	case ReadFixed:
		sqe.PrepOperation(iouring_syscall.IORING_OP_READ_FIXED, int32(op.Fd), addr, uint32(len(op.Buf)), uint64(op.Offset))
		sqe.SetBufIndex(op.BufIndex)
	case Write:
		sqe.PrepOperation(iouring_syscall.IORING_OP_WRITE, int32(op.Fd), addr, uint32(len(op.Buf)), uint64(op.Offset))
	case Read:
		sqe.PrepOperation(iouring_syscall.IORING_OP_READ, int32(op.Fd), addr, uint32(len(op.Buf)), uint64(op.Offset))
	case Fdatasync:
		sqe.PrepOperation(iouring_syscall.IORING_OP_FSYNC, int32(op.Fd), 0, 0, 0)
		sqe.SetOpFlags(iouring_syscall.IORING_FSYNC_DATASYNC)
	case Fsync:
		sqe.PrepOperation(iouring_syscall.IORING_OP_FSYNC, int32(op.Fd), 0, 0, 0)
	case SyncRange:
		sqe.PrepOperation(iouring_syscall.IORING_OP_SYNC_FILE_RANGE, int32(op.Fd), 0, op.Size, uint64(op.Offset))
		sqe.SetOpFlags(unix.SYNC_FILE_RANGE_WRITE)
	}
	if link {
		sqe.SetFlags(iouring_syscall.IOSQE_FLAGS_IO_LINK)
	}
}
