package wal

import (
	"errors"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ringwal/ringwal/internal/fsys"
	"github.com/ringwal/ringwal/internal/ring"
)

// fileIO is the set of syscalls the pwrite backend makes. Tests replace it to
// inject short writes, EIO, ENOSPC and simulated power loss.
type fileIO interface {
	Pwrite(fd int, p []byte, off int64) (int, error)
	Fdatasync(fd int) error
	Fsync(fd int) error
	// SyncRange starts writeback of [off, off+n); it promises nothing
	// about durability.
	SyncRange(fd int, off, n int64) error
}

type osFileIO struct{}

func (osFileIO) Pwrite(fd int, p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pwrite(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		return n, err
	}
}

func (osFileIO) Fdatasync(fd int) error { return fsys.Fdatasync(fd) }
func (osFileIO) Fsync(fd int) error     { return unix.Fsync(fd) }
func (osFileIO) SyncRange(fd int, off, n int64) error {
	return fsys.StartWriteback(fd, off, n)
}

// pwriteSubmitter runs chains with ordinary syscalls on a fixed set of
// flusher goroutines, so that several chains overlap like io_uring chains
// do. It implements ring.Submitter with the same semantics: ops of a chain
// run in order, and the first failed or short op cancels the rest
// (-ECANCELED).
type pwriteSubmitter struct {
	io   fileIO
	jobs chan *pwriteJob
	wg   sync.WaitGroup

	mu     sync.Mutex
	closed bool
	free   []*pwriteJob // released jobs, for reuse
}

// pwriteJob is one chain. Jobs are recycled: the completer calls Release
// once it has read the results. The completer waits through wait, on a
// channel the job keeps across uses, so a chain allocates nothing; Done
// makes a channel to close only when someone asks for it (tests that watch
// a chain beside the completer), so any number of goroutines may wait on it.
type pwriteJob struct {
	s    *pwriteSubmitter
	ops  []ring.Op
	prep func() error // runs before the ops; an error cancels them all
	res  []int32
	wake chan struct{} // one value per use, for wait; never closed

	mu       sync.Mutex
	finished bool
	done     chan struct{} // made by Done, closed on completion
}

func (j *pwriteJob) Done() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done == nil {
		j.done = make(chan struct{})
		if j.finished {
			close(j.done)
		}
	}
	return j.done
}

func (j *pwriteJob) Results() []int32 { return j.res }

// wait blocks until the chain completed. Only one goroutine (the
// completer) may call it, once per use of the job.
func (j *pwriteJob) wait() { <-j.wake }

// finish marks the chain complete and wakes its waiters.
// All of it happens under the job's lock, so that Release (which takes the
// lock) cannot recycle the job while this is still touching it.
func (j *pwriteJob) finish() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.finished = true
	if j.done != nil {
		close(j.done)
	}
	j.wake <- struct{}{} // room for it: one value per use, drained by wait or Release
}

func (j *pwriteJob) Release() {
	clear(j.ops)
	j.ops, j.res, j.prep = j.ops[:0], j.res[:0], nil
	// Under the lock: finish sends the wake-up under it too, so a caller
	// that saw Done closed cannot get here before the value is sent.
	j.mu.Lock()
	select {
	case <-j.wake: // a completion nobody waited for through wait
	default:
	}
	j.finished, j.done = false, nil
	j.mu.Unlock()
	j.s.mu.Lock()
	j.s.free = append(j.s.free, j)
	j.s.mu.Unlock()
}

func newPwriteSubmitter(io fileIO, workers int) *pwriteSubmitter {
	if io == nil {
		io = osFileIO{}
	}
	s := &pwriteSubmitter{io: io, jobs: make(chan *pwriteJob, workers*4)}
	for range workers {
		s.wg.Add(1)
		go s.run()
	}
	return s
}

var errSubmitterClosed = errors.New("wal: backend closed")

// preparingSubmitter is a Submitter that can run a step of the caller's
// before a chain's ops, on the goroutine that runs them: the log fills in
// the checksums of a batch's frames there, off its lock and in parallel
// with the appenders laying the next batch.
type preparingSubmitter interface {
	SubmitPrepared(ops []ring.Op, prep func() error) (ring.Completion, error)
}

func (s *pwriteSubmitter) Submit(ops []ring.Op) (ring.Completion, error) {
	return s.SubmitPrepared(ops, nil)
}

// SubmitPrepared is Submit with prep run first, on the flusher goroutine
// that runs the chain: if it fails, every op is cancelled (-ECANCELED) and
// nothing is written.
func (s *pwriteSubmitter) SubmitPrepared(ops []ring.Op, prep func() error) (ring.Completion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errSubmitterClosed
	}
	var j *pwriteJob
	if n := len(s.free); n > 0 {
		j, s.free = s.free[n-1], s.free[:n-1]
	} else {
		j = &pwriteJob{s: s, wake: make(chan struct{}, 1)}
	}
	j.ops, j.prep = append(j.ops[:0], ops...), prep
	j.res = append(j.res[:0], make([]int32, len(ops))...)
	s.jobs <- j
	return j, nil
}

func (s *pwriteSubmitter) run() {
	defer s.wg.Done()
	for j := range s.jobs {
		s.exec(j)
		j.finish()
	}
}

func (s *pwriteSubmitter) exec(j *pwriteJob) {
	execPrepared(s.io, j.ops, j.prep, j.res)
}

// execPrepared runs prep (if any) and then the chain (execOps); if prep
// fails, every op is cancelled (-ECANCELED) and nothing is written.
func execPrepared(io fileIO, ops []ring.Op, prep func() error, res []int32) {
	if prep != nil && prep() != nil {
		for i := range res {
			res[i] = -int32(syscall.ECANCELED)
		}
		return
	}
	execOps(io, ops, res)
}

// execOps runs a chain with ordinary syscalls, putting each op's result in
// res as io_uring would report it: the first failed or short op cancels
// the ops after it (-ECANCELED).
func execOps(io fileIO, ops []ring.Op, res []int32) {
	failed := false
	for i, op := range ops {
		if failed {
			res[i] = -int32(syscall.ECANCELED)
			continue
		}
		var (
			r    int32
			err  error
			want int32 // the result that lets the chain go on
		)
		switch op.Kind {
		case ring.Write, ring.WriteFixed:
			// One pwrite, like the single SQE: a short count is reported,
			// not retried, so that both backends fail the same way.
			var n int
			n, err = io.Pwrite(op.Fd, op.Buf, op.Offset)
			r, want = int32(n), int32(len(op.Buf))
		case ring.Fdatasync:
			err = io.Fdatasync(op.Fd)
		case ring.Fsync:
			err = io.Fsync(op.Fd)
		case ring.SyncRange:
			err = io.SyncRange(op.Fd, op.Offset, int64(op.Size))
		default:
			err = syscall.EINVAL
		}
		if err != nil {
			r = -int32(errnoOf(err))
		}
		failed = r != want
		res[i] = r
	}
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// close stops the flushers after the queued chains ran.
func (s *pwriteSubmitter) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.jobs)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// noRegistrar lets the pwrite backend use the same page-aligned pool without
// a ring.
type noRegistrar struct{}

func (noRegistrar) RegisterBuffers([][]byte) error { return nil }
func (noRegistrar) UnregisterBuffers() error       { return nil }
