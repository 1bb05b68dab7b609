package wal

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/ringwal/ringwal/bufpool"
	"github.com/ringwal/ringwal/internal/ring"
)

// Replay reads through io_uring: IORING_OP_READ_FIXED into buffers of a pool
// registered with a ring of its own (so readers never take buffers from
// appenders), several reads in flight ahead of the reader.

// The read pool is 3 MiB: with the default write pool (4 MiB) and the
// rings, locked memory stays under 8 MiB, a common RLIMIT_MEMLOCK for
// unprivileged processes (with 8 read buffers, Open failed there before the
// ring became optional). One reader uses readDepth buffers; others reading
// at the same time share the rest and fall back to pread without one.
const (
	readChunk   = 512 << 10 // one READ_FIXED
	readBuffers = 6         // registered read buffers shared by all readers (3 MiB)
	readDepth   = 4         // chunks one reader keeps in flight or held
)

// A segment that is not in the page cache is read through a ring of its own
// with one 4 MiB buffer, one READ_FIXED at a time: on the VM measured, 4
// MiB reads from the disk ran twice as fast as 512 KiB ones, while in the
// page cache 512 KiB chunks are faster (PERFORMANCE.md, "Cold replay"). The
// cold ring exists only while a reader holds it; when its 4 MiB cannot be
// locked (RLIMIT_MEMLOCK) or another reader has it, that reader reads cold
// segments with 4 MiB preads (512 KiB READ_FIXED chunks were half as fast).
// Setting it up costs a few milliseconds, once per run of cold segments.
const (
	coldChunk = 4 << 20
	coldDepth = 1
)

// readRing is a ring and pool that replay reads through. The shared one is
// held by the log and its readers and closed when the last of them lets go
// (a reader may outlive Close); the cold one is held by one reader.
type readRing struct {
	ring  *ring.Ring
	pool  *bufpool.Pool
	depth int // chunks one reader keeps in flight or held
	refs  atomic.Int32

	ctr *readCounters // shared by the log's read rings
}

// readCounters count the READ_FIXED reads of every read ring of a log.
type readCounters struct {
	reads atomic.Uint64 // READ_FIXED ops completed
	bytes atomic.Uint64 // bytes they read
}

func newReadRing() (*readRing, error) { return newReadRingOf(readChunk, readBuffers, readDepth) }

func newColdRing() (*readRing, error) { return newReadRingOf(coldChunk, 1, coldDepth) }

func newReadRingOf(chunk, n, depth int) (*readRing, error) {
	r, err := ring.New(64)
	if err != nil {
		return nil, err
	}
	// Go memory, not a mapping: a reader's window is the pool's buffer, and
	// a caller that keeps a record's Data after Close reads stale bytes
	// instead of faulting on unmapped memory.
	p, err := bufpool.NewHeap(r, chunk, n)
	if err != nil {
		r.Close()
		return nil, err
	}
	rr := &readRing{ring: r, pool: p, depth: depth, ctr: new(readCounters)}
	rr.refs.Store(1)
	return rr, nil
}

func (rr *readRing) hold() { rr.refs.Add(1) }

// readRingSlot is the log's replay ring, made by the first reader that
// needs one (NewReader, or Open's scan with VerifyOnOpen), so that a log
// that only appends neither locks its buffers nor sets it up. The ring is a
// convenience, not the log: when it cannot be set up (its buffers, locked on
// top of the write pool's, can pass a short RLIMIT_MEMLOCK), that is logged
// once and readers read with pread.
type readRingSlot struct {
	mu     sync.Mutex
	rr     *readRing
	tried  bool // made, or failed: not tried again
	closed bool // the log let go of its reference
}

// holdReadRing returns the replay ring with a reference for the caller to
// release, making it on first use; nil on the pwrite backend, after close,
// or when it cannot be set up.
func (w *WAL) holdReadRing() *readRing {
	if w.backend != BackendURing {
		return nil
	}
	s := &w.reads
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if !s.tried {
		s.tried = true
		newRR := newReadRing
		if w.opts.newReadRing != nil {
			newRR = w.opts.newReadRing
		}
		rr, err := newRR()
		if err != nil {
			w.log.Warn("io_uring read ring unavailable, replay reads with pread", "err", err)
		} else {
			rr.ctr = &w.readCtr
		}
		s.rr = rr
	}
	if s.rr == nil {
		return nil
	}
	s.rr.hold()
	return s.rr
}

// close drops the log's reference (readers still open keep the ring).
func (s *readRingSlot) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.rr == nil {
		return nil
	}
	return s.rr.release()
}

// release drops a reference; the last one closes the ring.
func (rr *readRing) release() error {
	if rr.refs.Add(-1) != 0 {
		return nil
	}
	err := rr.pool.Close()
	if err2 := rr.ring.Close(); err == nil {
		err = err2
	}
	return err
}

// coldRingSlot is the cold ring (see coldChunk): one reader at a time holds
// it, from the first segment it opens that is not in the page cache until
// it opens one that is, or closes.
type coldRingSlot struct {
	mu     sync.Mutex
	held   bool // a reader has it
	failed bool // it could not be set up once: not tried again
}

// holdColdRing sets up the cold ring for the caller, who releases it with
// releaseColdRing; nil when another reader has it or it cannot be set up.
func (w *WAL) holdColdRing() *readRing {
	s := &w.cold
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held || s.failed {
		return nil
	}
	newCR := newColdRing
	if w.opts.newColdRing != nil {
		newCR = w.opts.newColdRing
	}
	rr, err := newCR()
	if err != nil {
		s.failed = true
		w.log.Info("io_uring cold-replay buffer unavailable, segments not in the page cache are read with pread", "err", err)
		return nil
	}
	rr.ctr = &w.readCtr
	s.held = true
	return rr
}

// releaseColdRing closes the cold ring the caller held.
func (w *WAL) releaseColdRing(rr *readRing) error {
	err := rr.release()
	s := &w.cold
	s.mu.Lock()
	s.held = false
	s.mu.Unlock()
	return err
}

// chunk is one READ_FIXED of [off, off+n) into pool buffer idx.
type chunk struct {
	off  int64
	n    int
	idx  uint16
	buf  []byte
	ops  [1]ring.Op
	c    ring.Completion
	got  int // bytes read, once waited
	err  error
	done bool
}

func (c *chunk) wait(pool *bufpool.Pool) error {
	if c.done {
		return c.err
	}
	<-c.c.Done()
	c.done = true
	res := c.c.Results()[0]
	_ = pool.CompleteInFlight(c.idx)
	switch {
	case res < 0:
		c.err = &ring.OpError{Kind: ring.ReadFixed, Offset: c.off, Len: c.n, Res: res}
	default:
		c.got = int(res) // short only at the end of the file
	}
	return c.err
}

func (p *prefetchReader) note(c *chunk) {
	p.rr.ctr.reads.Add(1)
	p.rr.ctr.bytes.Add(uint64(c.got))
}

// prefetchReader is an io.ReaderAt for one file that serves a reader moving
// forward through it (the segment reader refills its window from the start
// of the first frame it could not finish, so consecutive reads overlap a
// little) from chunks read ahead with READ_FIXED. Any other access pattern
// restarts the read-ahead at the requested offset; a request that goes
// backwards (recovery looks for the end of the written region from the end
// of the file) reads only what it asks for. When no registered buffer is
// free it falls back to pread. Not safe for concurrent use.
type prefetchReader struct {
	segmentFile
	rr    *readRing
	size  int64
	limit int64    // no chunk reaches past it (size, or the end of the data the reader was opened for)
	q     []*chunk // consecutive chunks in file order
	prev  int64    // offset of the previous request (-1: none yet)

	scratch []byte // View's copy of a range across chunks
}

func newPrefetchReader(rr *readRing, f *os.File, size int64) *prefetchReader {
	return &prefetchReader{segmentFile: segmentFile{f}, rr: rr, size: size, limit: size, prev: -1}
}

// segmentFile is the file under a reader that serves a segment.Reader from
// buffers or mappings (prefetchReader, mappedReader). It answers for the
// file what the segment reader asks the file itself: where its data ends,
// from its extents (SyscallConn) or with lseek (Seek), so that what follows
// the last record need not be read. ReadAt does not use the offset Seek
// moves.
type segmentFile struct {
	f *os.File
}

// SyscallConn is the file's.
func (s segmentFile) SyscallConn() (syscall.RawConn, error) { return s.f.SyscallConn() }

// Seek seeks the file.
func (s segmentFile) Seek(off int64, whence int) (int64, error) { return s.f.Seek(off, whence) }

// Both readers pass the file's answers on.
var (
	_ interface {
		syscall.Conn
		io.Seeker
	} = (*prefetchReader)(nil)
	_ interface {
		syscall.Conn
		io.Seeker
	} = (*mappedReader)(nil)
)

// end is the file offset after the last chunk issued.
func (p *prefetchReader) end() int64 {
	if len(p.q) == 0 {
		return -1
	}
	c := p.q[len(p.q)-1]
	return c.off + int64(c.n)
}

// issue queues the next chunk at off. It returns false when no buffer is
// free or off is at the limit (the callers then read with pread).
func (p *prefetchReader) issue(off int64) bool {
	if off >= p.limit {
		return false
	}
	idx, buf, ok := p.rr.pool.TryAcquire()
	if !ok {
		return false
	}
	n := int(min(int64(len(buf)), p.limit-off))
	c := &chunk{off: off, n: n, idx: idx, buf: buf}
	c.ops[0] = ring.Op{Kind: ring.ReadFixed, Fd: int(p.f.Fd()), Buf: buf[:n], BufIndex: idx, Offset: off}
	if err := p.rr.pool.MarkInFlight(idx); err != nil {
		_ = p.rr.pool.Release(idx)
		return false
	}
	comp, err := p.rr.ring.Submit(c.ops[:])
	if err != nil {
		_ = p.rr.pool.CompleteInFlight(idx)
		_ = p.rr.pool.Release(idx)
		return false
	}
	c.c = comp
	p.q = append(p.q, c)
	return true
}

// dropFront releases the oldest chunk, after its read completed.
func (p *prefetchReader) dropFront() {
	c := p.q[0]
	if c.wait(p.rr.pool) == nil {
		p.note(c)
	}
	_ = p.rr.pool.Release(c.idx)
	p.q[0] = nil
	p.q = p.q[1:]
}

// dropBefore releases the chunks that end at or before off.
func (p *prefetchReader) dropBefore(off int64) {
	for len(p.q) > 0 && p.q[0].off+int64(p.q[0].n) <= off {
		p.dropFront()
	}
}

// reset drops every chunk (waiting for reads in flight).
func (p *prefetchReader) reset() {
	for len(p.q) > 0 {
		p.dropFront()
	}
}

// smallRead is the largest ReadAt that does not start read-ahead where no
// chunk holds it: it is read with pread.
const smallRead = 4 << 10

// ReadAt implements io.ReaderAt.
func (p *prefetchReader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("wal: read at negative offset %d", off)
	}
	if off >= p.size {
		return 0, io.EOF
	}
	want := b[:min(int64(len(b)), p.size-off)]
	backwards := off < p.prev
	p.prev = off
	// Keep only chunks from the one holding off on; restart elsewhere.
	p.dropBefore(off)
	if (len(p.q) == 0 || p.q[0].off > off) && len(b) <= smallRead {
		// A segment's header, read once when the segment is opened:
		// starting read-ahead there would read what a reader positioned
		// further on never asks for.
		return p.f.ReadAt(b, off)
	}
	if len(p.q) == 0 || p.q[0].off > off {
		p.reset()
		if !p.issue(off) {
			return p.f.ReadAt(b, off)
		}
	}
	// Issue what the request needs, then read ahead.
	stop := off + int64(len(want))
	for p.end() < stop && p.issue(p.end()) {
	}
	if p.end() < stop {
		p.reset()
		return p.f.ReadAt(b, off)
	}
	n := 0
	for _, c := range p.q {
		if n == len(want) {
			break
		}
		if err := c.wait(p.rr.pool); err != nil {
			return n, err
		}
		pos := off + int64(n) - c.off
		if pos >= int64(c.got) {
			break // the file shrank under us
		}
		n += copy(want[n:], c.buf[pos:c.got])
	}
	for !backwards && len(p.q) < p.rr.depth && p.issue(p.end()) {
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// View implements segment.Viewer: the segment reader takes its window
// straight from the chunk holding off when [off, off+least) lies inside it,
// so replay copies each byte once (the kernel's copy into the registered
// buffer). A range across chunks (a frame over a chunk boundary) is copied
// into a scratch buffer, least bytes of it; so is every range when no
// registered buffer is free (read with pread).
func (p *prefetchReader) View(off int64, least, most int) ([]byte, error) {
	if off < 0 || least < 0 || least > most {
		return nil, fmt.Errorf("wal: view of [%d, %d] bytes at offset %d", least, most, off)
	}
	if off >= p.size {
		return nil, io.EOF
	}
	backwards := off < p.prev
	p.dropBefore(off)
	if len(p.q) > 0 && p.q[0].off <= off {
		c := p.q[0]
		if err := c.wait(p.rr.pool); err != nil {
			return nil, err
		}
		pos := int(off - c.off)
		if pos+least <= c.got {
			p.prev = off
			for !backwards && len(p.q) < p.rr.depth && p.issue(p.end()) {
			}
			return c.buf[pos:min(c.got, pos+most)], nil
		}
	} else if !backwards {
		p.reset()
		if p.issue(off) {
			return p.View(off, least, most) // p.q[0] now holds off
		}
	}
	if cap(p.scratch) < least {
		p.scratch = make([]byte, max(least, readChunk))
	}
	n, err := p.ReadAt(p.scratch[:least], off)
	return p.scratch[:n], err
}

// Close waits for reads in flight and gives the buffers back.
func (p *prefetchReader) Close() error {
	p.reset()
	return nil
}
