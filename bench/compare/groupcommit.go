package main

import (
	"errors"
	"sync"
)

// groupCommit is the simple user-side group commit: appenders queue their
// record and wait; one flusher goroutine takes everything queued, hands it to
// the sink as one durable write (one sync), and wakes the waiters. While the
// flusher is busy, the next batch accumulates. It is what a user writes
// around a log whose write call syncs every time.
//
// The sink sees either the payloads themselves (recs, the appenders' own
// slices, which stay valid because their Append has not returned) or, when
// frame is set, one contiguous buffer of framed records (the raw baseline).
type groupCommit struct {
	mu      sync.Mutex
	waiters *sync.Cond // broadcast when a batch becomes durable
	work    *sync.Cond // signalled when the queue gets a record

	cur, next *gcBatch
	gen       uint64 // generation of cur
	durable   uint64 // every generation <= durable is durable
	err       error
	closed    bool
	done      chan struct{}

	frame func(dst, p []byte) []byte // optional: frame p into dst
	sink  func(b *gcBatch) error

	batches, records uint64
}

// gcBatch is one flush: the records queued while the previous one ran.
type gcBatch struct {
	recs [][]byte
	buf  []byte // framed records, when the group commit frames
}

var errGCClosed = errors.New("group commit: closed")

func newGroupCommit(sink func(*gcBatch) error, frame func(dst, p []byte) []byte) *groupCommit {
	g := &groupCommit{cur: &gcBatch{}, next: &gcBatch{}, gen: 1, sink: sink, frame: frame, done: make(chan struct{})}
	g.waiters = sync.NewCond(&g.mu)
	g.work = sync.NewCond(&g.mu)
	go g.flusher()
	return g
}

// Append queues p and waits until the batch holding it is durable.
func (g *groupCommit) Append(p []byte) error {
	g.mu.Lock()
	if g.err != nil || g.closed {
		err := g.err
		g.mu.Unlock()
		if err == nil {
			err = errGCClosed
		}
		return err
	}
	if g.frame != nil {
		g.cur.buf = g.frame(g.cur.buf, p)
	}
	g.cur.recs = append(g.cur.recs, p)
	my := g.gen
	g.work.Signal()
	for g.durable < my && g.err == nil {
		g.waiters.Wait()
	}
	err := g.err
	g.mu.Unlock()
	return err
}

func (g *groupCommit) flusher() {
	defer close(g.done)
	g.mu.Lock()
	for {
		for len(g.cur.recs) == 0 && !g.closed {
			g.work.Wait()
		}
		if len(g.cur.recs) == 0 && g.closed {
			g.mu.Unlock()
			return
		}
		b, gen := g.cur, g.gen
		g.cur, g.next = g.next, nil
		g.gen++
		g.mu.Unlock()

		err := g.sink(b)

		g.mu.Lock()
		g.batches++
		g.records += uint64(len(b.recs))
		clear(b.recs) // drop references to the appenders' slices
		b.recs, b.buf = b.recs[:0], b.buf[:0]
		g.next = b
		if err != nil && g.err == nil {
			g.err = err // fail-stop: nothing after a failed sync is acknowledged
		}
		if err == nil {
			g.durable = gen
		}
		g.waiters.Broadcast()
	}
}

// Close waits for queued records to be flushed and stops the flusher.
func (g *groupCommit) Close() error {
	g.mu.Lock()
	g.closed = true
	g.work.Signal()
	g.mu.Unlock()
	<-g.done
	return g.err
}

// syncPerAppend drives a library without group commit the plain way: one
// mutex, and every append is one durable write (one sync).
type syncPerAppend struct {
	mu    sync.Mutex
	one   [1][]byte
	write func(recs [][]byte) error
}

func (s *syncPerAppend) Append(p []byte) error {
	s.mu.Lock()
	s.one[0] = p
	err := s.write(s.one[:])
	s.one[0] = nil
	s.mu.Unlock()
	return err
}
