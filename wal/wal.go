// Package wal is a durable, append-only log with group commit.
//
// Many goroutines append concurrently. Each record is framed (segment
// format version 2) straight into a registered buffer and given the next LSN; the
// frames' checksums are filled in once the batch is sealed, off the log's
// lock where a goroutine other than the appenders writes the batch (the
// pwrite flushers; on io_uring, a feeder for chains of AppendAsync
// records), before its bytes are written. A batch of records is sealed
// when its buffers are full, as soon as no chain is in flight (but, when
// the chain that just completed woke appenders, only once they are back or
// half that chain's time, at most 10 ms, passed), once it holds half of the
// waiting appenders while one chain is in flight, or (a batch of
// AppendAsync records only) once it holds half a buffer while others are in
// flight, and written as one chain:
// IORING_OP_WRITE_FIXED linked to an fdatasync at the batch's segment
// offset. A batch whose chain syncs ends on a page boundary, padded with
// zeros, when the padding is at most a quarter of its bytes
// (Options.NoPadding), so the next batch does not write its last page
// again. Up to MaxInFlight chains are in flight at once. Append returns
// only once its record is durable: its batch's write and fdatasync
// succeeded, and so did those of every batch before it.
//
// A batch that holds only AppendAsync records (nobody waits for them) is
// written without the fdatasync; the next chain that syncs (an Append's, a
// Sync's, a rotation's or Close's) is submitted only after those writes
// completed, on the same file, so its fdatasync covers them. Bulk loads thus
// pay one fdatasync per Sync, not one per batch.
//
// Where io_uring is unavailable (or BackendPwrite is asked for), the same
// format is written with pwrite + fdatasync from MaxInFlight flushers, with
// the same group commit and the same guarantees; an appender that waits
// alone, with nothing in flight, writes and syncs its batch itself unless
// the batch opens a segment (Stats.Inline).
//
// Guarantees:
//   - A record whose Append returned nil survives a crash of the process or
//     the machine (to the extent fdatasync does: a disk that lies about
//     flushes loses data under every log).
//   - A crash may lose records whose Append had not returned; it never
//     reorders records, never leaves a gap, and never resurrects records cut
//     by recovery or TruncateBack. An AppendBatch survives whole or not at
//     all.
//   - A failed write or fdatasync stops the log (fail-stop): the failed
//     batch and everything after it return the error, nothing is retried,
//     Close still works, and reopening recovers every acknowledged record.
package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringwal/ringwal/bufpool"
	"github.com/ringwal/ringwal/internal/ring"
	"github.com/ringwal/ringwal/segment"
)

// Errors returned by the log. Errors from a failed write or sync wrap both
// ErrFailed and the cause.
var (
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("wal: closed")
	// ErrLocked: another process (or another WAL in this one) holds the
	// directory.
	ErrLocked = errors.New("wal: directory is locked by another writer")
	// ErrStalled: TruncateBack found a write the completer had to rescue
	// (the kernel did not complete it; Stats.Rescues) still pending in the
	// kernel after waiting for it. Retry later, or Close and reopen.
	ErrStalled = errors.New("wal: a rescued write is still pending in the kernel")
	// ErrFailed: a write or fdatasync failed earlier; the log accepts no more
	// appends. Reopen it to recover.
	ErrFailed = errors.New("wal: log failed")
	// ErrRecordTooLarge: a record exceeds Options.MaxRecordSize.
	ErrRecordTooLarge = segment.ErrRecordTooLarge
	// ErrBatchTooLarge: an AppendBatch cannot fit in one segment.
	ErrBatchTooLarge = errors.New("wal: batch larger than a segment")
	// ErrEmptyBatch: AppendBatch without records.
	ErrEmptyBatch = errors.New("wal: empty batch")
	// ErrOutOfRange: an LSN outside [FirstLSN, LastLSN] (or, for readers
	// and truncation, outside the range they accept).
	ErrOutOfRange = errors.New("wal: lsn out of range")
	// ErrNotFound: the LSN is not in the log.
	ErrNotFound = errors.New("wal: lsn not found")
	// ErrTruncated: a Reader was positioned past the records a TruncateBack
	// kept (it may have returned records that are no longer in the log).
	// Create a new Reader.
	ErrTruncated = errors.New("wal: the log was truncated back before the reader's position")
)

// LockFileName is the file in a log directory that a writer holds an
// exclusive flock on (ErrLocked for a second writer). Tools that modify a
// log take the same lock.
const LockFileName = "LOCK"

// WAL is an open log. All methods are safe for concurrent use.
type WAL struct {
	dir  string
	opts Options
	log  *slog.Logger

	lockFile *os.File
	dirFile  *os.File

	backend   Backend // the one actually used
	ring      *ring.Ring
	submitter ring.Submitter
	pwrite    *pwriteSubmitter
	pool      *bufpool.Pool
	reads     readRingSlot // READ_FIXED replay (io_uring), made on first need
	cold      coldRingSlot // READ_FIXED of segments not in the page cache
	readCtr   readCounters // READ_FIXED reads of both
	closeCtx  context.Context
	cancel    context.CancelFunc

	prep *preparer

	noFalloc sync.Once // logs, once, that the file system refuses fallocate
	noMap    sync.Once // logs, once, that a replay could not map a segment

	mu   sync.Mutex
	cond *sync.Cond // signalled when inflight drops or state changes

	failed error
	closed bool

	segs     []*segFile // in LSN order; the last is active
	active   *segFile
	enc      *segment.Encoder
	nextLSN  uint64
	nextSeq  uint64
	durable  atomic.Uint64 // every LSN <= durable is acknowledged
	firstLSN atomic.Uint64
	open     *batch   // being filled
	pending  []*batch // sealed, not yet submitted (FIFO)
	inflight int      // submitted chains not yet completed
	infSeg   *segFile // segment of the chains in flight
	infHdr   bool     // the chain in flight carries its segment's header: it is alone
	// Write-only chains (records nobody waits for yet, see batch.needSync).
	writtenTo      uint64        // lastLSN of the newest submitted chain
	syncedTo       uint64        // lastLSN of the newest submitted chain that syncs
	wantSync       uint64        // records up to here must be made durable (Sync, rotation, drain)
	unsyncedSeg    *segFile      // segment of written records no submitted sync covers yet
	nosyncInflight int           // write-only chains in flight
	spare          []uint16      // acquired buffers not yet in a batch
	truncBusy      bool          // TruncateBack in progress: appends wait
	backCuts       []uint64      // the lsn of each of the last TruncateBacks that dropped records, in order (Reader.Next)
	backBase       uint64        // TruncateBacks before backCuts[0] (their lsns no longer kept)
	backN          atomic.Uint64 // backBase + len(backCuts), read without the lock
	rotating       bool          // an appender is switching segments: others wait
	prepKicked     bool          // the next segment was asked for
	segAsync       uint64        // records laid in the active segment by AppendAsync
	segWaited      uint64        // ... and by appenders that wait (Append, AppendBatch)
	segSyncs       uint64        // batches sealed in the active segment whose chains sync
	segSyncBytes   uint64        // ... and their bytes
	inlineFor      *batch        // the batch a waiting appender just laid records into (layLocked)
	inlineBusy     bool          // a chain run by its appender is in flight (inlineLocked)
	inlineRes      []int32       // its results
	tail           int64         // segment offset where the next frame goes
	waiting        int           // Append / AppendBatch calls in batches not yet completed
	waitAvg        int           // recent average of waiting at completions, times waitScale (pipelineLocked)
	gathering      bool          // appenders a completion woke are coming back: the open batch waits (gatherLocked)
	gatherEnd      time.Time     // ... until then at most (gatheredLocked)
	gatherTimer    *time.Timer   // ends a gathering nobody came back to end (gatherTimeout)
	segT0          time.Time     // when the active segment became active (or, after Open, took its first records; zero until then)
	segOff0        int64         // tail then: the active segment's fill rate is measured from here

	submitted chan *batch // FIFO of submitted chains, read by the completer
	feed      chan *batch // io_uring: write-only chains for the feeder
	feedDone  chan struct{}
	kickTimer *time.Timer // the completer's (awaitChain)
	compDone  chan struct{}

	// Rescued chains still in the kernel (abandon), counted per segment
	// (TruncateFront keeps such a segment's file open), guarded by mu;
	// giveUp is closed by Close when it stops waiting for them.
	abandonedOn map[*segFile]int
	// abandonedBufs counts the pool buffers those chains hold; heapWarned
	// is set once appends had to use heap buffers for want of them.
	abandonedBufs int
	heapWarned    bool
	abandonWG     sync.WaitGroup
	giveUp        chan struct{}

	stats stats
}

// Open opens the log in dir, creating the directory and a first segment if
// needed, and recovers it: every segment's header and its continuity with
// the one before are checked, the last segment is read whole, a torn tail in
// it is cut (and zeroed, so its bytes can never reappear), and corruption is
// reported as an error naming segment and offset (or cut, with
// RecoverTruncate). The records of sealed segments are verified when read,
// or here with Options.VerifyOnOpen. The directory is locked against other
// writers (ErrLocked).
func Open(dir string, opts Options) (*WAL, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("wal: %s is not a directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	w := &WAL{dir: dir, opts: o, log: o.Logger}
	w.cond = sync.NewCond(&w.mu)
	w.closeCtx, w.cancel = context.WithCancel(context.Background())
	w.gatherTimer = time.AfterFunc(time.Hour, w.gatherTimeout)
	w.gatherTimer.Stop()
	ok := false
	defer func() {
		if !ok {
			w.cancel()
			w.releaseResources()
		}
	}()

	if err := w.lock(); err != nil {
		return nil, err
	}
	if w.dirFile, err = os.Open(dir); err != nil {
		return nil, fmt.Errorf("wal: open directory: %w", err)
	}
	if err := w.startBackend(); err != nil {
		return nil, err
	}
	if err := w.recover(); err != nil {
		return nil, err
	}
	// The next segment is asked for by the first records appended, not
	// here: a log opened to be read (a restart's replay, a tool) writes
	// no segment's worth of zeros beside its reads.
	w.prep = newPreparer(w)
	w.submitted = make(chan *batch, o.MaxInFlight+1)
	w.compDone = make(chan struct{})
	w.giveUp = make(chan struct{})
	w.abandonedOn = map[*segFile]int{}
	if w.ring != nil {
		w.feed = make(chan *batch, o.MaxInFlight)
		w.feedDone = make(chan struct{})
		go w.feeder()
	}
	go w.completer()
	ok = true
	w.log.Info("wal opened", "dir", dir, "backend", w.backend, "first_lsn", w.FirstLSN(), "last_lsn", w.LastLSN(), "segments", len(w.segs))
	return w, nil
}

func (w *WAL) lock() error {
	f, err := os.OpenFile(filepath.Join(w.dir, LockFileName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("wal: open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s", ErrLocked, w.dir)
		}
		return fmt.Errorf("wal: lock %s: %w", w.dir, err)
	}
	w.lockFile = f
	return nil
}

// startBackend sets up io_uring (or pwrite) and the buffer pool.
func (w *WAL) startBackend() error {
	o := w.opts
	if o.Backend != BackendPwrite {
		r, err := ring.New(128)
		if err == nil {
			w.pool, err = bufpool.New(r, o.BufferSize, o.BufferCount)
			if err != nil {
				_ = r.Close()
			}
		}
		switch {
		case err == nil:
			w.ring, w.submitter, w.backend = r, r, BackendURing
		case o.Backend == BackendURing:
			return fmt.Errorf("wal: io_uring backend unavailable: %w", err)
		default:
			w.log.Warn("io_uring unavailable, using pwrite", "err", err)
		}
	}
	if w.submitter == nil {
		pool, err := bufpool.New(noRegistrar{}, o.BufferSize, o.BufferCount)
		if err != nil {
			return fmt.Errorf("wal: %w", err)
		}
		w.pool = pool
		w.pwrite = newPwriteSubmitter(o.fileIO, o.MaxInFlight)
		w.submitter, w.backend = w.pwrite, BackendPwrite
	}
	if o.wrapSubmitter != nil {
		w.submitter = o.wrapSubmitter(w.submitter)
	}
	return nil
}

// noteNoFallocate logs, once per log, that the file system refused
// fallocate(2) and segments are zero-filled instead.
func (w *WAL) noteNoFallocate() {
	w.noFalloc.Do(func() {
		w.log.Warn("file system does not support fallocate: segments are prepared by writing zeros", "dir", w.dir)
	})
}

// Backend reports the backend in use: BackendURing or BackendPwrite.
func (w *WAL) Backend() Backend { return w.backend }

// Dir is the log's directory.
func (w *WAL) Dir() string { return w.dir }

// FirstLSN is the LSN of the oldest record stored, or LastLSN()+1 when the log
// is empty.
func (w *WAL) FirstLSN() uint64 { return w.firstLSN.Load() }

// LastLSN is the LSN of the newest durable (acknowledged) record, or
// FirstLSN()-1 when the log is empty.
func (w *WAL) LastLSN() uint64 { return w.durable.Load() }

// Close stops accepting appends, waits until every batch in flight completed
// (records already accepted become durable, or fail), and releases files,
// buffers and the lock. Appends racing with Close either complete or return
// ErrClosed. Calling Close again returns ErrClosed.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed = true
	w.cancel() // wakes appenders waiting for a buffer
	w.drainLocked()
	w.mu.Unlock()

	if w.feed != nil {
		close(w.feed) // idle: every chain completed
		<-w.feedDone
	}
	close(w.submitted)
	<-w.compDone
	w.prep.stop()
	w.stopAbandoned()

	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	if w.open != nil {
		w.releasePieces(w.open)
		w.open = nil
	}
	for _, idx := range w.spare {
		_ = w.pool.Release(idx)
	}
	w.spare = nil
	errs = append(errs, w.releaseResources())
	return errors.Join(errs...)
}

// releaseResources closes whatever Open set up. Safe on a partial Open.
func (w *WAL) releaseResources() error {
	var errs []error
	if w.pwrite != nil {
		w.pwrite.close()
	}
	switch {
	case w.pool == nil:
	case len(w.abandonedOn) > 0:
		// The kernel may still read these buffers: leave the pool mapped
		// (closing the ring below makes the kernel cancel the ops).
		w.log.Warn("rescued chains still in the kernel at close: their buffers stay mapped", "segments", len(w.abandonedOn))
	default:
		if err := w.pool.Close(); err != nil && !errors.Is(err, bufpool.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if w.ring != nil {
		if err := w.ring.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := w.reads.close(); err != nil {
		errs = append(errs, err)
	}
	for _, s := range w.segs {
		if err := s.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if w.dirFile != nil {
		w.dirFile.Close()
	}
	if w.lockFile != nil {
		_ = unix.Flock(int(w.lockFile.Fd()), unix.LOCK_UN)
		w.lockFile.Close()
	}
	return errors.Join(errs...)
}

// stopAbandoned waits up to kickAfter for rescued chains still in the
// kernel to complete, then stops waiting for them.
func (w *WAL) stopAbandoned() {
	done := make(chan struct{})
	go func() { w.abandonWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(kickAfter):
		close(w.giveUp)
		<-done
	}
}

// waitAbandonedLocked waits up to rescueAfter until no rescued chain is
// still in the kernel. Such a chain's write, if the kernel runs it late,
// writes its bytes again where they already are; were the log cut back and
// new records written there first, it would overwrite them. Each one that
// completes broadcasts on cond (abandon), and so does a timer at the
// deadline.
func (w *WAL) waitAbandonedLocked() error {
	if len(w.abandonedOn) == 0 {
		return nil
	}
	deadline := time.Now().Add(w.opts.rescueAfter)
	t := time.AfterFunc(w.opts.rescueAfter, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer t.Stop()
	for len(w.abandonedOn) > 0 {
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: rescued chains still in the kernel on %d segment(s)", ErrStalled, len(w.abandonedOn))
		}
		w.cond.Wait()
	}
	return nil
}

// syncDir makes the directory's entries durable.
func (w *WAL) syncDir() error {
	if err := w.dirFile.Sync(); err != nil {
		return fmt.Errorf("wal: sync directory: %w", err)
	}
	return nil
}

// failLocked puts the log into the failed state (once).
func (w *WAL) failLocked(err error) {
	if w.failed != nil {
		return
	}
	w.failed = fmt.Errorf("%w: %w", ErrFailed, err)
	w.log.Error("wal failed", "err", err)
	// Nothing sealed after the failure may be written: fail the queued
	// batches and the open one now.
	for _, b := range w.pending {
		w.finishLocked(b, w.failed)
	}
	w.pending = nil
	if w.open != nil {
		b := w.open
		w.open = nil
		w.finishLocked(b, w.failed)
	}
	w.cond.Broadcast()
}

// finishLocked completes a batch that will never be (or was never) written.
func (w *WAL) finishLocked(b *batch, err error) {
	w.releasePieces(b)
	b.finish(err)
}

func (w *WAL) releasePieces(b *batch) {
	for _, p := range b.pieces {
		if p.fixed {
			if err := w.pool.Release(p.idx); err != nil {
				w.log.Error("release buffer", "idx", p.idx, "err", err)
			}
		}
	}
	b.pieces = b.pieces[:0]
}
