package bufpool

import (
	"fmt"
	"sync"

	"github.com/ringwal/ringwal/internal/ring"
)

// Pending is a fixed read or write handed to the kernel. The buffer stays in
// flight, and cannot be released, until Wait has seen its completion.
type Pending struct {
	ID     uint64 // identifies this completion among the pool's submissions
	Index  uint16 // the buffer
	Offset int64  // file offset
	Len    int    // bytes to transfer

	pool *Pool
	c    ring.Completion
	ops  [1]ring.Op

	once sync.Once
	res  int
	err  error
}

// Done is closed when the completion has arrived.
func (p *Pending) Done() <-chan struct{} { return p.c.Done() }

// Wait blocks until the completion arrives, marks the buffer no longer in
// flight, and returns the byte count. The error is an *ring.OpError (wrapping
// the errno, or ring.ErrShortIO for a short transfer) unless exactly Len bytes
// moved. Wait may be called more than once.
func (p *Pending) Wait() (int, error) {
	<-p.c.Done()
	p.once.Do(func() {
		res := p.c.Results()
		p.res = int(res[0])
		p.err = ring.Check(p.ops[:], res)
		if err := p.pool.CompleteInFlight(p.Index); err != nil && p.err == nil {
			p.err = err
		}
	})
	return p.res, p.err
}

// SubmitWriteFixed queues an IORING_OP_WRITE_FIXED of the first length bytes
// of acquired buffer idx to fd at offset, and marks the buffer in flight.
func (p *Pool) SubmitWriteFixed(r Submitter, fd int, idx uint16, offset int64, length int) (*Pending, error) {
	return p.submitFixed(r, ring.WriteFixed, fd, idx, offset, length)
}

// SubmitReadFixed queues an IORING_OP_READ_FIXED of length bytes at offset of
// fd into acquired buffer idx, and marks the buffer in flight.
func (p *Pool) SubmitReadFixed(r Submitter, fd int, idx uint16, offset int64, length int) (*Pending, error) {
	return p.submitFixed(r, ring.ReadFixed, fd, idx, offset, length)
}

func (p *Pool) submitFixed(r Submitter, kind ring.Kind, fd int, idx uint16, offset int64, length int) (*Pending, error) {
	if r == nil {
		return nil, fmt.Errorf("bufpool: %v: nil ring", kind)
	}
	if length <= 0 || length > p.size {
		return nil, fmt.Errorf("bufpool: %v: length %d out of range (1..%d)", kind, length, p.size)
	}
	if offset < 0 {
		return nil, fmt.Errorf("bufpool: %v: negative offset %d", kind, offset)
	}
	p.mu.Lock()
	if err := p.checkLocked(idx); err != nil {
		p.mu.Unlock()
		return nil, err
	}
	buf := p.bufs[idx][:length]
	p.nextID++
	id := p.nextID
	p.mu.Unlock()

	if err := p.MarkInFlight(idx); err != nil {
		return nil, err
	}
	pd := &Pending{ID: id, Index: idx, Offset: offset, Len: length, pool: p}
	pd.ops[0] = ring.Op{Kind: kind, Fd: fd, Buf: buf, BufIndex: idx, Offset: offset}
	c, err := r.Submit(pd.ops[:])
	if err != nil {
		// Nothing reached the kernel: undo the mark.
		_ = p.CompleteInFlight(idx)
		return nil, fmt.Errorf("bufpool: %v: %w", kind, err)
	}
	pd.c = c
	return pd, nil
}
