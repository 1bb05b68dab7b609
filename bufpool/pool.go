// Package bufpool is a pool of fixed-size buffers registered once with an
// io_uring instance (IORING_REGISTER_BUFFERS), for IORING_OP_WRITE_FIXED and
// IORING_OP_READ_FIXED.
//
// A buffer moves through three states:
//
//	free --Acquire--> acquired --MarkInFlight--> in flight
//	  ^                  |  ^                        |
//	  +-----Release------+  +---CompleteInFlight-----+
//
// A buffer the kernel may still be reading or writing (in flight) cannot be
// released: it goes back to the pool only after its completion arrived. The
// free list is FIFO, so a released buffer is handed out after the ones that
// were already free.
//
// The design follows a Rust RegisteredBufferPool and closes its gaps: every
// buffer starts on a page boundary (one anonymous mmap arena, usable with
// O_DIRECT); misuse (an invalid index, a double release, releasing a buffer in
// flight) is refused with an error in every build and leaves the pool
// untouched; Close unregisters and unmaps; AcquireWait blocks with
// cancellation; and the pool is safe for concurrent use. NewHeap makes a
// pool whose buffers are Go memory instead, for buffers whose bytes are lent
// to callers: after Close, a slice of one stays valid memory.
//
// One ring holds one set of registered buffers: use one pool per ring.
package bufpool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/ringwal/ringwal/internal/ring"
)

// MaxBufferCount is the largest pool: buffer indices are uint16. The kernel
// has its own, lower limit on registered buffers (16384 on current kernels);
// asking for more fails at registration with the kernel's error.
const MaxBufferCount = 65535

// MaxBufferSize is the largest buffer the kernel will register (1 GiB).
const MaxBufferSize = 1 << 30

// Errors returned by the pool.
var (
	// ErrPoolExhausted: no buffer is free.
	ErrPoolExhausted = errors.New("bufpool: pool exhausted")
	// ErrInvalidIndex: the index names no buffer of this pool.
	ErrInvalidIndex = errors.New("bufpool: invalid buffer index")
	// ErrNotAcquired: the buffer is free (a double release, or use of a
	// buffer that was never acquired).
	ErrNotAcquired = errors.New("bufpool: buffer is not acquired")
	// ErrInFlight: the kernel may still use the buffer.
	ErrInFlight = errors.New("bufpool: buffer is in flight")
	// ErrNotInFlight: CompleteInFlight without a matching MarkInFlight.
	ErrNotInFlight = errors.New("bufpool: buffer is not in flight")
	// ErrBusy: Close while buffers are acquired or in flight.
	ErrBusy = errors.New("bufpool: buffers still acquired or in flight")
	// ErrClosed: the pool was closed.
	ErrClosed = errors.New("bufpool: pool is closed")
)

// Registrar is what the pool needs from a ring: registering and dropping its
// memory as fixed buffers. *Ring implements it.
type Registrar interface {
	RegisterBuffers(bufs [][]byte) error
	UnregisterBuffers() error
}

// Ring is an io_uring instance (see NewRing).
type Ring = ring.Ring

// Submitter submits chains of ops to a ring. *Ring implements it.
type Submitter = ring.Submitter

// NewRing creates an io_uring instance with entries submission slots. Its
// error wraps the errno of io_uring_setup (EPERM, ENOSYS, ENOMEM), so a caller
// can tell that io_uring is unavailable and fall back.
func NewRing(entries uint) (*Ring, error) { return ring.New(entries) }

type bufState struct {
	acquired bool
	inFlight int32 // ops submitted on this buffer whose completion has not arrived
}

// Pool is a set of registered, page-aligned buffers. It is safe for
// concurrent use by many goroutines.
type Pool struct {
	mu    sync.Mutex
	reg   Registrar
	arena []byte
	heap  bool // arena is Go memory (NewHeap): Close does not unmap it
	bufs  [][]byte
	size  int
	state []bufState

	// FIFO of free indices: free[head], free[head+1], ... (mod len), n of them.
	free []uint16
	head int
	n    int

	acquired     int // buffers not free
	inFlight     int // buffers with inFlight > 0
	acquisitions uint64
	exhaustions  uint64

	// waitCh is closed (and cleared) by the next Release; made only when a
	// waiter needs it, so Acquire/Release stay allocation-free.
	waitCh chan struct{}

	nextID uint64
	closed bool
}

// New maps bufferCount buffers of bufferSize bytes, each starting on a page
// boundary, and registers them with r. It fails when a size or count is zero,
// the count exceeds MaxBufferCount, the size exceeds MaxBufferSize, or the
// kernel refuses the registration (ENOMEM: RLIMIT_MEMLOCK too small).
func New(r Registrar, bufferSize, bufferCount int) (*Pool, error) {
	return makePool(r, bufferSize, bufferCount, false)
}

// NewHeap is New with the buffers in one Go allocation (its pages aligned
// the same way) instead of an anonymous mapping. Close unregisters them and
// drops the pool's reference instead of unmapping them, so a slice of a
// buffer that outlives the pool still reads (whatever was last read into
// it) for as long as something refers to it, and the garbage collector
// frees the memory after that. For pools whose bytes are handed to callers
// without a copy, where a caller that keeps a slice past its validity must
// read stale bytes, not fault. Go never moves heap memory, so the kernel
// may keep the pages registered; as with New, Close refuses while a buffer
// is in flight.
func NewHeap(r Registrar, bufferSize, bufferCount int) (*Pool, error) {
	return makePool(r, bufferSize, bufferCount, true)
}

func makePool(r Registrar, bufferSize, bufferCount int, heap bool) (*Pool, error) {
	if r == nil {
		return nil, errors.New("bufpool: nil ring")
	}
	if bufferSize <= 0 {
		return nil, fmt.Errorf("bufpool: buffer size must be > 0, got %d", bufferSize)
	}
	if bufferSize > MaxBufferSize {
		return nil, fmt.Errorf("bufpool: buffer size %d exceeds the kernel limit %d", bufferSize, MaxBufferSize)
	}
	if bufferCount <= 0 {
		return nil, fmt.Errorf("bufpool: buffer count must be > 0, got %d", bufferCount)
	}
	if bufferCount > MaxBufferCount {
		return nil, fmt.Errorf("bufpool: buffer count %d exceeds %d (indices are uint16)", bufferCount, MaxBufferCount)
	}
	page := os.Getpagesize()
	stride := (bufferSize + page - 1) / page * page
	total := stride * bufferCount
	if total/bufferCount != stride {
		return nil, fmt.Errorf("bufpool: %d buffers of %d bytes overflow", bufferCount, bufferSize)
	}
	var arena []byte
	if heap {
		mem := make([]byte, total+page)
		skip := (page - int(uintptr(unsafe.Pointer(&mem[0]))%uintptr(page))) % page
		arena = mem[skip : skip+total : skip+total]
	} else {
		var err error
		arena, err = unix.Mmap(-1, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return nil, fmt.Errorf("bufpool: mmap %d bytes: %w", total, err)
		}
	}
	p := &Pool{
		reg:   r,
		heap:  heap,
		arena: arena,
		bufs:  make([][]byte, bufferCount),
		size:  bufferSize,
		state: make([]bufState, bufferCount),
		free:  make([]uint16, bufferCount),
		n:     bufferCount,
	}
	for i := range p.bufs {
		off := i * stride
		p.bufs[i] = arena[off : off+bufferSize : off+bufferSize]
		p.free[i] = uint16(i)
	}
	if err := r.RegisterBuffers(p.bufs); err != nil {
		if !heap {
			_ = unix.Munmap(arena)
		}
		return nil, fmt.Errorf("bufpool: register %d x %d bytes: %w", bufferCount, bufferSize, err)
	}
	return p, nil
}

// popLocked takes the oldest free buffer.
func (p *Pool) popLocked() (uint16, []byte, bool) {
	if p.n == 0 {
		return 0, nil, false
	}
	idx := p.free[p.head]
	p.head++
	if p.head == len(p.free) {
		p.head = 0
	}
	p.n--
	p.state[idx].acquired = true
	p.acquired++
	p.acquisitions++
	return idx, p.bufs[idx], true
}

// Acquire takes a free buffer. It returns ErrPoolExhausted (and counts an
// exhaustion) when none is free, and ErrClosed after Close.
func (p *Pool) Acquire() (uint16, []byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, nil, ErrClosed
	}
	idx, buf, ok := p.popLocked()
	if !ok {
		p.exhaustions++
		return 0, nil, ErrPoolExhausted
	}
	return idx, buf, nil
}

// TryAcquire takes a free buffer, reporting ok=false (and counting an
// exhaustion) when none is free or the pool is closed.
func (p *Pool) TryAcquire() (idx uint16, buf []byte, ok bool) {
	idx, buf, err := p.Acquire()
	return idx, buf, err == nil
}

// AcquireWait takes a free buffer, blocking until one is released when none
// is. It returns ctx.Err() when ctx ends first and ErrClosed if the pool is
// closed. A call that has to wait counts one exhaustion.
func (p *Pool) AcquireWait(ctx context.Context) (uint16, []byte, error) {
	counted := false
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return 0, nil, ErrClosed
		}
		if idx, buf, ok := p.popLocked(); ok {
			p.mu.Unlock()
			return idx, buf, nil
		}
		if !counted {
			p.exhaustions++
			counted = true
		}
		if p.waitCh == nil {
			p.waitCh = make(chan struct{})
		}
		ch := p.waitCh
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
}

// checkLocked validates idx for an operation on an acquired buffer.
func (p *Pool) checkLocked(idx uint16) error {
	if p.closed {
		return ErrClosed
	}
	if int(idx) >= len(p.bufs) {
		return fmt.Errorf("%w: %d (pool has %d buffers)", ErrInvalidIndex, idx, len(p.bufs))
	}
	if !p.state[idx].acquired {
		return fmt.Errorf("%w: %d", ErrNotAcquired, idx)
	}
	return nil
}

// Release returns an acquired buffer to the back of the free list. It refuses,
// leaving the pool exactly as it was, an invalid index (ErrInvalidIndex), a
// buffer that is already free (ErrNotAcquired) and a buffer in flight
// (ErrInFlight).
func (p *Pool) Release(idx uint16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkLocked(idx); err != nil {
		return err
	}
	if n := p.state[idx].inFlight; n > 0 {
		return fmt.Errorf("%w: %d (%d ops pending)", ErrInFlight, idx, n)
	}
	p.state[idx].acquired = false
	p.acquired--
	tail := p.head + p.n
	if tail >= len(p.free) {
		tail -= len(p.free)
	}
	p.free[tail] = idx
	p.n++
	if p.waitCh != nil {
		close(p.waitCh)
		p.waitCh = nil
	}
	return nil
}

// MarkInFlight records that an op on the acquired buffer idx was handed to
// the kernel. Each mark must be matched by one CompleteInFlight.
func (p *Pool) MarkInFlight(idx uint16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkLocked(idx); err != nil {
		return err
	}
	if p.state[idx].inFlight == 0 {
		p.inFlight++
	}
	p.state[idx].inFlight++
	return nil
}

// CompleteInFlight records that the completion of one op on buffer idx
// arrived. It refuses a buffer with nothing in flight (ErrNotInFlight).
func (p *Pool) CompleteInFlight(idx uint16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkLocked(idx); err != nil {
		return err
	}
	if p.state[idx].inFlight == 0 {
		return fmt.Errorf("%w: %d", ErrNotInFlight, idx)
	}
	p.state[idx].inFlight--
	if p.state[idx].inFlight == 0 {
		p.inFlight--
	}
	return nil
}

// IsInFlight reports whether the kernel may still be using buffer idx.
func (p *Pool) IsInFlight(idx uint16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int(idx) < len(p.state) && p.state[idx].inFlight > 0
}

// Get returns buffer idx, free or not. The slice is the whole buffer
// (len == cap == BufferSize()).
func (p *Pool) Get(idx uint16) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if int(idx) >= len(p.bufs) {
		return nil, fmt.Errorf("%w: %d (pool has %d buffers)", ErrInvalidIndex, idx, len(p.bufs))
	}
	return p.bufs[idx], nil
}

// BufferSize is the size of every buffer in bytes.
func (p *Pool) BufferSize() int { return p.size }

// TotalCount is the number of buffers.
func (p *Pool) TotalCount() int { return len(p.bufs) }

// AvailableCount is the number of free buffers.
func (p *Pool) AvailableCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// AcquiredCount is the number of buffers not free (acquired, in flight or not).
func (p *Pool) AcquiredCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acquired
}

// InFlightCount is the number of buffers with an op the kernel has not
// completed.
func (p *Pool) InFlightCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inFlight
}

// IsExhausted reports whether no buffer is free.
func (p *Pool) IsExhausted() bool { return p.AvailableCount() == 0 }

// Stats is a snapshot of the pool's counters.
type Stats struct {
	TotalCount     int
	AvailableCount int
	AcquiredCount  int
	InFlightCount  int
	BufferSize     int
	TotalBytes     uint64
	Acquisitions   uint64 // successful acquisitions since New
	Exhaustions    uint64 // acquisitions that found no free buffer
}

// String formats the stats on one line, e.g.
// "BufferPool(16 available/16 total, 4.1 kB each, 66 kB total)".
func (s Stats) String() string {
	return fmt.Sprintf("BufferPool(%d available/%d total, %s each, %s total)",
		s.AvailableCount, s.TotalCount, humanize.Bytes(uint64(s.BufferSize)), humanize.Bytes(s.TotalBytes))
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		TotalCount:     len(p.bufs),
		AvailableCount: p.n,
		AcquiredCount:  p.acquired,
		InFlightCount:  p.inFlight,
		BufferSize:     p.size,
		TotalBytes:     uint64(p.size) * uint64(len(p.bufs)),
		Acquisitions:   p.acquisitions,
		Exhaustions:    p.exhaustions,
	}
}

// String is Stats().String().
func (p *Pool) String() string { return p.Stats().String() }

// Close unregisters the buffers and unmaps their memory (a NewHeap pool's
// memory is left to the garbage collector). It refuses with
// ErrBusy while any buffer is acquired or in flight, and returns ErrClosed
// when called again. Waiters in AcquireWait return ErrClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.acquired > 0 || p.inFlight > 0 {
		return fmt.Errorf("%w: %d acquired, %d in flight", ErrBusy, p.acquired, p.inFlight)
	}
	if err := p.reg.UnregisterBuffers(); err != nil {
		return fmt.Errorf("bufpool: close: %w", err)
	}
	if !p.heap {
		if err := unix.Munmap(p.arena); err != nil {
			return fmt.Errorf("bufpool: close: munmap: %w", err)
		}
	}
	p.closed = true
	p.arena, p.bufs = nil, nil
	if p.waitCh != nil {
		close(p.waitCh)
		p.waitCh = nil
	}
	return nil
}
