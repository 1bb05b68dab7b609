package wal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/ringwal/ringwal/internal/ring"
	"github.com/ringwal/ringwal/segment"
)

// maxPieces bounds how many pool buffers one batch may span, so that one
// batch cannot hold the whole pool while others wait.
const maxPieces = 4

// piece is one contiguous part of a batch: a registered buffer, or a heap
// buffer for a record (or atomic batch) larger than a pool buffer.
type piece struct {
	idx   uint16
	fixed bool
	buf   []byte
	n     int // bytes used
}

// batch is the unit of group commit: contiguous frames of one segment,
// written and synced as one chain.
type batch struct {
	seg      *segFile
	offset   int64
	pieces   []piece
	firstLSN uint64
	lastLSN  uint64
	nrec     int
	calls    int   // Append / AppendBatch calls waiting for these records
	bytes    int64 // payload bytes
	header   []byte
	syncDir  bool
	// needSync: an appender waits for these records to be durable. A
	// batch nobody waits for (AppendAsync only) is written without an
	// fdatasync unless a Sync, a rotation or a drain asks for one.
	needSync bool
	sync     bool // the chain ends in fdatasync: its completion makes lastLSN durable
	// inline: the appender that laid the batch runs its chain itself
	// (runInline), not a flusher and the completer.
	inline bool

	ops      []ring.Op
	comp     ring.Completion
	submitAt time.Time

	// The frames are laid with their checksums deferred (newEncoder):
	// checksum fills them in before the chain writes them, on a flusher
	// goroutine of the pwrite backend (prep, its method value, made once
	// per pooled batch), on the io_uring feeder for chains that only
	// write, inline before submission otherwise.
	bufs    [][]byte // pieces' bytes, for segment.ChecksumFrames
	prep    func() error
	prepErr error // set by checksum before the chain's writes run

	// Completion, guarded by mu: appenders wait on cond until finished.
	// Whoever sees the batch finished with no waiter left (finish or wait)
	// puts it back in batchPool, so batches cost no allocation in
	// steady state.
	mu       sync.Mutex
	cond     sync.Cond
	finished bool
	waiters  int
	err      error
}

var batchPool = sync.Pool{New: func() any {
	b := &batch{}
	b.cond.L = &b.mu
	b.prep = b.checksum
	return b
}}

// newEncoder returns the encoder of a segment the log appends to: its
// frames' checksums are deferred to batch.checksum, off the log's lock.
func newEncoder(salt uint32, epoch uint16, maxRecordSize int) *segment.Encoder {
	e := segment.NewEncoder(salt, epoch, maxRecordSize)
	e.DeferChecksums()
	return e
}

// checksum fills in the checksums of b's frames (segment.ChecksumFrames).
// It runs once per chain, before its writes: nobody lays frames into b
// once it is sealed. An error means the log laid frames wrong, a bug: the
// chain is not written and the log fails (prepErr).
func (b *batch) checksum() error {
	bufs := b.bufs[:0]
	for _, p := range b.pieces {
		bufs = append(bufs, p.buf[:p.n])
	}
	b.bufs = bufs
	if err := segment.ChecksumFrames(b.seg.hdr.Salt, bufs); err != nil {
		b.prepErr = fmt.Errorf("wal: checksum frames of %s: %w", b, err)
	}
	clear(b.bufs)
	return b.prepErr
}

// finish records the outcome and wakes the batch's waiters. The caller must
// not touch b afterwards: its last waiter recycles it.
func (b *batch) finish(err error) {
	b.mu.Lock()
	b.err = err
	b.finished = true
	b.cond.Broadcast()
	unused := b.waiters == 0 // every appender went on without waiting
	if unused {
		b.reset()
	}
	b.mu.Unlock()
	if unused {
		batchPool.Put(b)
	}
}

// wait blocks until b finished and returns its error.
func (b *batch) wait() error {
	b.mu.Lock()
	for !b.finished {
		b.cond.Wait()
	}
	err := b.err
	b.waiters--
	last := b.waiters == 0
	if last {
		b.reset()
	}
	b.mu.Unlock()
	if last {
		batchPool.Put(b)
	}
	return err
}

// String names the chain in errors: segment, offset and LSNs of a batch, or
// the LSNs a sync-only chain makes durable.
func (b *batch) String() string {
	if b.nrec == 0 {
		return fmt.Sprintf("segment %s, fdatasync for lsn %d-%d", b.seg.name, b.firstLSN, b.lastLSN)
	}
	return fmt.Sprintf("segment %s, batch at offset %d (lsn %d-%d)", b.seg.name, b.offset, b.firstLSN, b.lastLSN)
}

// reset clears b for reuse, under b.mu. It must not touch mu or cond: the
// goroutine that finished b may still be inside b.mu.Unlock.
func (b *batch) reset() {
	clear(b.pieces)
	clear(b.ops)
	b.seg, b.offset, b.pieces = nil, 0, b.pieces[:0]
	b.firstLSN, b.lastLSN, b.nrec, b.calls, b.bytes = 0, 0, 0, 0, 0
	b.header, b.syncDir, b.needSync, b.sync, b.inline = nil, false, false, false, false
	b.ops, b.comp, b.submitAt = b.ops[:0], nil, time.Time{}
	b.bufs, b.prepErr = b.bufs[:0], nil
	b.finished, b.waiters, b.err = false, 0, nil
}

// Append writes p as the next record and returns its LSN once the record is
// durable. p may be reused when Append returns. An empty record is valid.
func (w *WAL) Append(p []byte) (uint64, error) {
	one := [1][]byte{p}
	return w.append(one[:])
}

// AppendBatch writes recs as consecutive records in one durable unit and
// returns the LSN of the first. Either every record survives a crash or none
// does: the records are written in one chain and marked as one atomic batch
// on disk, so recovery drops a batch whose last record is missing. The batch
// must fit in one segment (ErrBatchTooLarge).
func (w *WAL) AppendBatch(recs [][]byte) (uint64, error) {
	if len(recs) == 0 {
		return 0, ErrEmptyBatch
	}
	return w.append(recs)
}

// AppendAsync writes p as the next record and returns its LSN without
// waiting for it to be durable: it goes out with the next batch, as group
// commit decides, and Sync makes it durable. A batch of AppendAsync records
// alone is written without an fdatasync; the next Sync, Append, segment
// rotation or Close syncs it. p may be reused when AppendAsync
// returns. Until a Sync (or an Append) that follows it returns, a crash may
// lose the record, and with it every record after it: never a record before
// it, and never leaving a gap. Bulk loads use it: many AppendAsync, one Sync.
func (w *WAL) AppendAsync(p []byte) (uint64, error) {
	one := [1][]byte{p}
	first, _, err := w.enqueue(one[:], false)
	return first, err
}

// Sync blocks until every record appended before the call is durable,
// issuing an fdatasync if records were written without one. It
// returns the log's error if the log failed, and ErrClosed after Close (a
// Close that races with Sync drains everything first, so Sync then returns
// nil unless the log failed).
func (w *WAL) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	target := w.nextLSN - 1
	if w.durable.Load() < target {
		w.wantSync = max(w.wantSync, target)
		w.pumpLocked()
	}
	for w.durable.Load() < target {
		switch {
		case w.failed != nil:
			return w.failed
		case w.closed && w.inflight == 0 && len(w.pending) == 0:
			return ErrClosed
		}
		w.cond.Wait() // every completion broadcasts
	}
	return nil
}

func (w *WAL) append(recs [][]byte) (uint64, error) {
	first, b, err := w.enqueue(recs, true)
	if err != nil {
		return 0, err
	}
	if b.inline { // set by this goroutine under w.mu (submitLocked)
		w.runInline(b)
	}
	if err := b.wait(); err != nil {
		return 0, err
	}
	w.stats.appends.Add(uint64(len(recs)))
	return first, nil
}

// enqueue lays recs into the open batch (starting one, or rotating, as
// needed) and returns the first LSN and the batch to wait for. durable says
// the caller will wait for the records to be durable.
func (w *WAL) enqueue(recs [][]byte, durable bool) (uint64, *batch, error) {
	total := 0
	for _, p := range recs {
		if len(p) > w.opts.MaxRecordSize {
			return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrRecordTooLarge, len(p), w.opts.MaxRecordSize)
		}
		total += segment.FrameSize(len(p))
	}
	if int64(total) > w.opts.SegmentSize-segment.DataOffset {
		return 0, nil, fmt.Errorf("%w: %d bytes of frames, segment holds %d", ErrBatchTooLarge, total, w.opts.SegmentSize-segment.DataOffset)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		switch {
		case w.closed:
			return 0, nil, ErrClosed
		case w.failed != nil:
			return 0, nil, w.failed
		case w.truncBusy || w.rotating:
			w.cond.Wait()
			continue
		}
		if w.tail+int64(total) > w.active.hdr.Size || w.enc.Epoch() == maxEpoch {
			if err := w.rotateLocked(); err != nil {
				if errors.Is(err, errRetry) {
					continue
				}
				return 0, nil, err
			}
			continue
		}
		if total > w.opts.BufferSize {
			return w.layHeapLocked(recs, total, durable)
		}
		ok, err := w.reserveLocked(total)
		if err == errNoBufferComing {
			return w.layHeapLocked(recs, total, durable)
		}
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			continue // state may have changed while we waited
		}
		return w.layLocked(recs, durable)
	}
}

// errNoBufferComing: no pool buffer is free and none can be given back
// (rescued chains hold them): the batch is written from a heap buffer.
var errNoBufferComing = errors.New("wal: no registered buffer will come back")

// bufferRecheck is how often an appender waiting for a pool buffer looks
// again whether one can still come back.
const bufferRecheck = 100 * time.Millisecond

// reserveLocked makes sure the open batch can take total more bytes,
// starting a batch or adding a buffer to it. It returns false when it had to
// wait (the caller re-evaluates everything).
func (w *WAL) reserveLocked(total int) (bool, error) {
	if w.open != nil && w.enc.Available() >= total {
		return true, nil
	}
	if w.open != nil && len(w.open.pieces) >= maxPieces {
		w.sealLocked()
	}
	if len(w.spare) == 0 {
		idx, _, ok := w.pool.TryAcquire()
		if !ok {
			// Everything is in batches: get them moving, then wait for one
			// to complete and give its buffer back.
			if w.open != nil && w.open.nrec > 0 {
				w.sealLocked()
			}
			w.pumpLocked()
			if w.inflight == 0 && len(w.pending) == 0 && w.abandonedBufs > 0 {
				// The missing buffers are all held by rescued chains the
				// kernel has not completed: none may ever come back.
				if !w.heapWarned {
					w.heapWarned = true
					w.log.Warn("every free buffer is held by rescued chains still in the kernel: writing batches from heap buffers", "buffers", w.abandonedBufs)
				}
				return false, errNoBufferComing
			}
			w.mu.Unlock()
			// Look again now and then: chains in flight may be rescued
			// meanwhile, keeping their buffers.
			ctx, cancel := context.WithTimeout(w.closeCtx, bufferRecheck)
			idx, _, err := w.pool.AcquireWait(ctx)
			cancel()
			w.mu.Lock()
			if errors.Is(err, context.DeadlineExceeded) {
				return false, nil // the caller re-evaluates everything
			}
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return false, ErrClosed
				}
				return false, fmt.Errorf("wal: acquire buffer: %w", err)
			}
			w.spare = append(w.spare, idx)
			return false, nil
		}
		w.spare = append(w.spare, idx)
	}
	if w.open == nil {
		b := w.newBatchLocked()
		w.addPieceLocked(b)
		w.enc.Reset(b.pieces[0].buf, b.offset, w.nextLSN)
		w.open = b
		return w.enc.Available() >= total, nil
	}
	return true, nil // the open batch continues into the spare buffer
}

func (w *WAL) newBatchLocked() *batch {
	b := batchPool.Get().(*batch)
	b.seg, b.offset, b.firstLSN = w.active, w.tail, w.nextLSN
	if w.active.hdrPending != nil {
		// First batch of a new segment: its chain writes the header and
		// syncs the directory entry made by the rename.
		b.header, b.syncDir = w.active.hdrPending, true
		w.active.hdrPending = nil
	}
	return b
}

func (w *WAL) addPieceLocked(b *batch) []byte {
	idx := w.spare[len(w.spare)-1]
	w.spare = w.spare[:len(w.spare)-1]
	buf, _ := w.pool.Get(idx)
	b.pieces = append(b.pieces, piece{idx: idx, fixed: true, buf: buf})
	return buf
}

// layLocked encodes recs into the open batch, which has room for them.
func (w *WAL) layLocked(recs [][]byte, durable bool) (uint64, *batch, error) {
	b := w.open
	b.needSync = b.needSync || durable
	if durable {
		w.segWaited += uint64(len(recs))
	} else {
		w.segAsync += uint64(len(recs))
	}
	first := w.nextLSN
	watermark := w.durable.Load()
	for i, p := range recs {
		flags := uint8(0)
		if i < len(recs)-1 {
			flags = segment.FlagBatchContinues
		}
		_, off, err := w.enc.AppendSplit(p, watermark, flags)
		if err != nil {
			// Sizes were checked; this is a bug, not an input error.
			panic(fmt.Sprintf("wal: encoder refused a reserved record: %v", err))
		}
		if w.enc.Pending() > 0 {
			b.pieces[len(b.pieces)-1].n = w.enc.Len()
			w.enc.Continue(w.addPieceLocked(b))
		}
		w.active.addIndex(off, len(p))
		b.bytes += int64(len(p))
	}
	b.pieces[len(b.pieces)-1].n = w.enc.Len()
	// A waiter is counted before the batch can be sealed (w.mu), under b.mu
	// because waiters of a finished batch count down under it. AppendAsync
	// callers are not counted: they never touch the batch again.
	if durable {
		b.mu.Lock()
		b.waiters++
		b.mu.Unlock()
		b.calls++
		w.waiting++
	}
	if durable {
		w.inlineFor = b
	}
	w.commitLaidLocked(b, len(recs))
	w.inlineFor = nil
	return first, b, nil
}

// layHeapLocked writes recs, too large for a pool buffer, as a batch of its
// own from a heap buffer.
func (w *WAL) layHeapLocked(recs [][]byte, total int, durable bool) (uint64, *batch, error) {
	w.closeOpenLocked()
	b := w.newBatchLocked()
	buf := make([]byte, total)
	b.pieces = append(b.pieces, piece{buf: buf})
	w.enc.Reset(buf, b.offset, w.nextLSN)
	w.open = b
	return w.layLocked(recs, durable)
}

// commitLaidLocked accounts for n records just laid into b and flushes it
// right away when the disk has room for another chain.
func (w *WAL) commitLaidLocked(b *batch, n int) {
	b.nrec += n
	w.nextLSN += uint64(n)
	b.lastLSN = w.nextLSN - 1
	if w.segT0.IsZero() {
		// The first records since Open: the active segment's fill rate,
		// which paces the next segment's zero-fill, is measured from
		// here, not from Open (a replay may have come between).
		w.markSegStartLocked()
	}
	w.tail = w.enc.Offset()
	w.maybePrepareLocked()
	if !b.pieces[0].fixed {
		w.sealLocked()
		return
	}
	w.pumpLocked()
}

// maybePrepareLocked asks for the next segment once the active one is a
// quarter full, with the zero-fill paced to finish when about three
// quarters of the rest is filled, at the rate the active segment has been
// filling (see fillControl.rate).
//
// With PreallocZero, a segment filled mostly by AppendAsync records is
// followed by a fallocated one: zero-filled space makes each fdatasync
// cheaper, which matters to appenders that wait for one, while a bulk load
// syncs rarely and would pay the zeros in device bytes. So is a segment
// whose durable batches were large (largeSyncsLocked).
func (w *WAL) maybePrepareLocked() {
	size := w.active.hdr.Size
	if w.prepKicked || w.tail < size/4 {
		return
	}
	w.prepKicked = true
	mode := w.opts.Prealloc
	if mode == PreallocZero && (w.segAsync > w.segWaited || w.largeSyncsLocked()) {
		mode = PreallocFallocate
	}
	w.prep.mode.Store(int32(mode))
	w.prep.rate.Store(zeroRate(size, w.tail-w.segOff0, size-w.tail, time.Since(w.segT0)))
	w.prep.kick()
}

// largeSync: after a segment whose durable batches average this many bytes
// or more, the next new segment file is fallocated, not zero-filled.
// Writing into fallocated (unwritten) space costs each fdatasync a journal
// commit (the extents it wrote become written); a zero-filled segment costs
// its size in zeros written once. With small batches the journal commits
// cost more: about twice the device bytes per 1 KiB append and half the
// syncs per second. With large ones the zeros do: they double the bytes
// written, and at hundreds of MB/s they take the disk's bandwidth from the
// log's own writes. Side by side (bench/compare, 16 KiB records, 64
// writers, batches of about 900 KiB) fallocated segments ran 1.10-1.22x
// the appends per second of zero-filled ones, with 38-45% fewer device
// bytes and a lower p99; at batches of 64-256 KiB they still wrote about
// half the bytes, but a fresh log ran 0.74-0.90x with them (PERFORMANCE.md,
// the design row "Large durable batches"). Recycled segment files are
// reused first either way.
const largeSync = 512 << 10

// largeSyncsLocked tells whether the batches synced in the active segment so
// far, the open one among them if appenders wait for it, average largeSync
// bytes or more.
func (w *WAL) largeSyncsLocked() bool {
	n, bytes := w.segSyncs, w.segSyncBytes
	if b := w.open; b != nil && w.countsAsSyncLocked(b) {
		n++
		bytes += uint64(w.tail - b.offset)
	}
	return n > 0 && bytes >= largeSync*n
}

// minZeroRate is the slowest a zero-fill is paced (bytes/s): a log that
// fills slowly still gets its next segment in bounded time.
const minZeroRate = 4 << 20

// zeroRate is the pace for zeroing a segment of size bytes while the active
// one, which took elapsed to fill filled bytes, has left bytes to go: done
// after three quarters of that time, and never slower than minZeroRate. A
// pace too fast for an int64 (a sample of nanoseconds, such as the first
// batch after Open) is no pace: 0, as fast as the disk takes the zeros.
func zeroRate(size, filled, left int64, elapsed time.Duration) int64 {
	if filled <= 0 || elapsed <= 0 {
		return 0
	}
	secs := elapsed.Seconds() * float64(left) / float64(filled) * 3 / 4
	if secs <= 0 {
		return 0
	}
	rate := float64(size) / secs
	if rate >= math.MaxInt64 {
		return 0
	}
	return max(int64(rate), minZeroRate)
}

// markSegStartLocked starts measuring the active segment's fill rate.
func (w *WAL) markSegStartLocked() {
	w.segT0, w.segOff0 = time.Now(), w.tail
}

// closeOpenLocked ends the open batch: queued if it holds records, its
// buffers kept as spares if not.
func (w *WAL) closeOpenLocked() {
	switch {
	case w.open == nil:
	case w.open.nrec > 0:
		w.sealLocked()
	default:
		w.dropOpenLocked()
	}
}

// drainLocked ends the open batch and waits until every batch accepted so
// far completed (became durable or failed).
func (w *WAL) drainLocked() {
	w.endGatherLocked()
	w.requestSyncLocked()
	w.closeOpenLocked()
	w.pumpLocked()
	for w.inflight > 0 || len(w.pending) > 0 {
		w.cond.Wait()
	}
}

// requestSyncLocked asks for every record accepted so far to be made
// durable: the chains that carry them end in fdatasync, or, when they are
// already written, a chain of only an fdatasync follows them.
func (w *WAL) requestSyncLocked() {
	if w.nextLSN > 0 {
		w.wantSync = max(w.wantSync, w.nextLSN-1)
	}
}

// dropOpenLocked gives the buffers of an empty open batch back as spares.
func (w *WAL) dropOpenLocked() {
	for _, p := range w.open.pieces {
		w.spare = append(w.spare, p.idx)
	}
	if w.open.header != nil {
		w.open.seg.hdrPending = w.open.header
	}
	w.open = nil
}

// sealLocked closes the open batch to new records and queues it.
func (w *WAL) sealLocked() {
	b := w.open
	w.endBatchLocked(b)
	w.open = nil
	w.pending = append(w.pending, b)
	w.pumpLocked()
}

// endBatchLocked ends b, the open batch, about to be sealed: pads it
// (padLocked) and counts it in the active segment's synced batches
// (largeSyncsLocked) if its chain syncs.
func (w *WAL) endBatchLocked(b *batch) {
	w.padLocked(b)
	if w.countsAsSyncLocked(b) {
		w.segSyncs++
		w.segSyncBytes += uint64(w.tail - b.offset)
	}
}

// countsAsSyncLocked: b, open or being sealed, is a batch of the active
// segment's records whose chain syncs (largeSyncsLocked averages them).
func (w *WAL) countsAsSyncLocked(b *batch) bool {
	return b.seg == w.active && b.offset >= 0 && w.syncsLocked(b)
}

// padLocked ends b, the open batch, about to be sealed, on a page boundary
// when its chain will sync (segment.Encoder.PadToPage): the next batch
// starts on a page of its own instead of writing this batch's last page
// again. Only where the padding is at most a quarter of the batch's bytes
// (maxPadShare), so padding never takes more than a fifth of a segment;
// not with Options.NoPadding, in a segment of format version 1, or where
// the padding would not fit in b's buffer or the segment.
func (w *WAL) padLocked(b *batch) {
	pad := segment.PadToPage(w.tail) - w.tail
	if w.opts.NoPadding || b.nrec == 0 || b.seg.hdr.Version < 2 || !w.syncsLocked(b) ||
		pad*maxPadShare > w.tail-b.offset || w.tail+pad > b.seg.hdr.Size {
		return
	}
	n, ok := w.enc.PadToPage()
	if !ok {
		return
	}
	b.pieces[len(b.pieces)-1].n = w.enc.Len()
	w.tail = w.enc.Offset()
	w.stats.padBytes.Add(uint64(n))
}

// maxPadShare: a batch is padded only when its padding is at most
// 1/maxPadShare of its bytes.
const maxPadShare = 4

// pumpLocked submits queued batches while chains may be added: at most
// MaxInFlight in flight, and never a chain of a new segment while chains of
// the previous one are in flight (so a torn tail can only be in the last
// segment), nor any chain while the one carrying a new segment's header is
// in flight (so a header write cut short leaves nothing written after it,
// and recovery can tell that segment from a damaged one). When nothing is
// queued and the disk has room, the open batch is sealed and submitted:
// group commit never waits for a buffer to fill.
func (w *WAL) pumpLocked() {
	for w.failed == nil {
		if len(w.pending) == 0 && (w.open == nil || w.open.nrec == 0) {
			// Nothing to write. Records written without a sync that
			// somebody now wants durable get a chain of their own.
			if w.wantSync <= w.syncedTo || w.unsyncedSeg == nil {
				return
			}
			b := batchPool.Get().(*batch)
			b.seg, b.offset = w.unsyncedSeg, -1
			b.firstLSN, b.lastLSN = w.syncedTo+1, w.writtenTo
			w.pending = append(w.pending, b)
		}
		if len(w.pending) == 0 {
			if !w.canSubmitLocked(w.open) {
				return
			}
			// While a chain is in flight, an open batch that somebody
			// waits for, or a small one, waits for it to complete and
			// grows meanwhile: one sync carrying many records beats
			// several carrying few, whatever the records' size (16 KiB
			// records from 64 appenders made chains of 10 records a half
			// buffer at a time, where waiting makes 22). Two exceptions:
			// batches of AppendAsync records go out at once from half a
			// buffer on (bulk traffic pipelines), and so does a batch that
			// holds its share of the appenders (pipelineLocked).
			small := w.tail-w.open.offset < int64(w.opts.BufferSize/2)
			if w.inflight > 0 && (small || w.open.needSync) && !w.pipelineLocked() {
				return
			}
			if w.gathering && w.open.needSync {
				if !w.gatheredLocked() {
					return // woken appenders are still coming back
				}
				w.endGatherLocked()
			}
			w.endBatchLocked(w.open)
			w.pending = append(w.pending, w.open)
			w.open = nil
		}
		b := w.pending[0]
		if !w.canSubmitLocked(b) {
			return
		}
		// Shift in place (the queue is short) so appending never
		// reallocates.
		n := copy(w.pending, w.pending[1:])
		w.pending[n] = nil
		w.pending = w.pending[:n]
		if err := w.submitLocked(b); err != nil {
			w.finishLocked(b, fmt.Errorf("%w: %w", ErrFailed, err))
			w.failLocked(err)
			return
		}
	}
}

// pipelineLocked reports whether the open batch may go out while one chain
// is in flight: it holds at least half of the appenders that have been
// waiting (waitAvg).
//
// Appenders that each wait for their own record settle into two cohorts:
// one waits in the chain in flight while the other fills the open batch. At
// depth 1 each appender waits for two fdatasyncs in a row (the chain ahead,
// then its own); with the open cohort's chain submitted as soon as the
// cohort is complete, it waits for about one, and two fdatasyncs overlap.
// Splitting a batch further (a chain per few records) loses: at 64 writers,
// chains of 8 records ran at half the rate of chains of 32.
func (w *WAL) pipelineLocked() bool {
	if w.inflight != 1 || w.open.calls == 0 || w.waitAvg == 0 {
		return false
	}
	return 2*w.open.calls*waitScale >= w.waitAvg
}

// gatherLocked reports whether the completer, having completed b and left
// nothing in flight, should let the appenders b's completion wakes come
// back before the open batch is sealed: b carried appenders that wait,
// usually at least two wait, and the open batch holds fewer than usually
// wait.
//
// Without it, the first appender back finds nothing in flight and its
// batch goes at once, with the few who beat it there; the rest wait in the
// next batch for that chain as well as their own. With it the cohort goes
// as one chain: at 16 appenders of 1 KiB records, chains that found nothing
// in flight carried 2.5-3 records before and 15 after, and the log ran
// 1.2-1.5x faster (both backends, side by side in the harness).
func (w *WAL) gatherLocked(b *batch) bool {
	return !w.opts.noGather && w.inflight == 0 && b.calls > 0 && w.failed == nil &&
		w.waitAvg >= 2*waitScale && (w.open == nil || w.open.calls*waitScale < w.waitAvg)
}

// startGatherLocked starts gathering after a chain that took lat: until it
// is over (gatheredLocked), nobody seals the open batch if somebody waits
// for it; it grows instead, up to maxPieces buffers. The appender that finds
// the gathering over seals the batch, or gatherTimeout does if none comes
// back in time. The completer itself does not wait: a completer that
// yielded until the appenders were back handed the processor to whatever
// else was runnable, and with the processors busy elsewhere a durable
// append took 20 ms instead of 0.5 (8 appenders and a CPU-bound goroutine
// per processor, GOMAXPROCS 1 and 2).
func (w *WAL) startGatherLocked(lat time.Duration) {
	d := min(lat/2, maxGatherWait)
	w.gathering = true
	w.gatherEnd = time.Now().Add(d)
	w.gatherTimer.Reset(d)
}

// maxGatherWait caps how long a gathering lasts when appenders do not come
// back: a chain that stalled (or was rescued after rescueAfter) must not
// hold the next batch for half its time.
const maxGatherWait = 10 * time.Millisecond

// gatheredLocked reports whether gathering is over: the open batch holds
// as many appenders as usually wait, or the gathering has lasted half as
// long as the chain that started it (at most maxGatherWait). Gathering
// took 2-29 µs (medians; 5-118 µs at the 99th percentile) at 4 to 64
// appenders of 1 KiB records here, next to chains of 150-250 µs.
func (w *WAL) gatheredLocked() bool {
	return w.open != nil && w.open.calls*waitScale >= w.waitAvg || !time.Now().Before(w.gatherEnd)
}

// endGatherLocked ends gathering.
func (w *WAL) endGatherLocked() {
	w.gathering = false
	w.gatherTimer.Stop()
}

// gatherTimeout runs when a gathering is over by the clock and nobody came
// back to find it over: pumpLocked finds it over and lets the open batch go.
func (w *WAL) gatherTimeout() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pumpLocked()
}

// waitScale is waitAvg's fixed-point scale.
const waitScale = 16

// noteWaitingLocked folds the number of appenders waiting now into waitAvg,
// an average over about the last 8 chains (scaled by waitScale). The
// completer calls it as each chain completes, when every appender that waits
// is in a chain or the open batch.
func (w *WAL) noteWaitingLocked() {
	if w.waitAvg == 0 {
		w.waitAvg = w.waiting * waitScale // the first sample
		return
	}
	w.waitAvg += (w.waiting*waitScale - w.waitAvg) / 8
}

// canSubmitLocked: at most MaxInFlight chains, one segment at a time, a
// header chain alone, and a chain that syncs only once no write-only chain
// is in flight (an fdatasync covers only writes that completed before it
// started; chains in flight are not ordered).
func (w *WAL) canSubmitLocked(b *batch) bool {
	if w.inlineBusy {
		return false // nothing goes beside a chain its appender runs
	}
	if w.syncsLocked(b) && w.nosyncInflight > 0 {
		return false
	}
	return w.inflight < w.opts.MaxInFlight && (w.inflight == 0 || w.infSeg == b.seg && !w.infHdr)
}

// syncsLocked reports whether b's chain must end in fdatasync: somebody
// waits for its records, it opens a segment, it is a sync-only chain, or a
// Sync, rotation or drain wants records up to at least its first one (a
// later batch would do for records beyond it, but b comes first).
func (w *WAL) syncsLocked(b *batch) bool {
	return b.needSync || b.header != nil || b.nrec == 0 || w.wantSync > w.syncedTo
}

// submitLocked hands b's chain to the backend: [header write], the data
// writes, fdatasync, [directory fsync].
func (w *WAL) submitLocked(b *batch) error {
	fd := b.seg.fd
	ops := b.ops[:0]
	if b.header != nil {
		ops = append(ops, ring.Op{Kind: ring.Write, Fd: fd, Buf: b.header, Offset: 0})
	}
	off := b.offset
	for _, p := range b.pieces {
		op := ring.Op{Kind: ring.Write, Fd: fd, Buf: p.buf[:p.n], Offset: off}
		if p.fixed {
			op.Kind, op.BufIndex = ring.WriteFixed, p.idx
			if err := w.pool.MarkInFlight(p.idx); err != nil {
				return err
			}
		}
		ops = append(ops, op)
		off += int64(p.n)
	}
	b.sync = w.syncsLocked(b)
	switch {
	case b.sync:
		ops = append(ops, ring.Op{Kind: ring.Fdatasync, Fd: fd})
	case off > b.offset:
		// Write-only: start writeback now, so the fdatasync that will
		// cover these pages (a Sync's, the rotation's) has little left to
		// write and bulk data streams to the disk as it is appended.
		ops = append(ops, ring.Op{Kind: ring.SyncRange, Fd: fd, Offset: b.offset, Size: uint32(off - b.offset)})
	}
	if b.syncDir {
		ops = append(ops, ring.Op{Kind: ring.Fsync, Fd: int(w.dirFile.Fd())})
	}
	b.ops = ops
	b.submitAt = time.Now()
	var (
		c   ring.Completion
		err error
	)
	fed := w.feed != nil && !b.sync && len(b.pieces) > 0
	inline := w.inlineLocked(b)
	switch ps, ok := w.submitter.(preparingSubmitter); {
	case inline:
		// The appender runs it (runInline) once it lets go of w.mu.
		b.inline, w.inlineBusy = true, true
	case fed:
		// The feeder checksums and submits it (see feeder).
	case ok && len(b.pieces) > 0:
		c, err = ps.SubmitPrepared(ops, b.prep)
	default:
		if len(b.pieces) > 0 {
			err = b.checksum()
		}
		if err == nil {
			c, err = w.submitter.Submit(ops)
		}
	}
	if err != nil {
		for _, p := range b.pieces {
			if p.fixed {
				_ = w.pool.CompleteInFlight(p.idx)
			}
		}
		return fmt.Errorf("submit %s: %w", b, err)
	}
	b.comp = c
	w.inflight++
	if b.sync {
		w.syncedTo, w.writtenTo, w.unsyncedSeg = b.lastLSN, b.lastLSN, nil
	} else {
		w.nosyncInflight++
		w.writtenTo, w.unsyncedSeg = b.lastLSN, b.seg
	}
	w.infSeg = b.seg
	w.infHdr = b.header != nil
	w.stats.noteInFlight(w.inflight)
	switch {
	case inline:
	case fed:
		w.feed <- b // room for it: at most MaxInFlight chains in flight
	default:
		w.submitted <- b
	}
	return nil
}

// inlineLocked reports whether b's chain is run by the appender that laid
// it instead of a flusher and the completer: on the pwrite backend, when
// that appender is the only one waiting (b holds its call alone), nothing
// else is in flight and no gathering is under way, and the chain is only
// data writes and an fdatasync. Through a flusher and the completer each
// such append costs three goroutine wake-ups around its fdatasync; run by
// its appender, none. While it runs nothing else is submitted
// (canSubmitLocked): appenders that come meanwhile fill the open batch, as
// they would behind any chain in flight, and its completion submits it.
func (w *WAL) inlineLocked(b *batch) bool {
	return w.inlineFor == b && w.pwrite != nil && w.submitter == w.pwrite && !w.opts.noInline &&
		w.inflight == 0 && w.waiting == 1 && b.calls == 1 && !w.gathering &&
		b.sync && b.header == nil && !b.syncDir && len(b.pieces) > 0
}

// runInline runs b's chain on the appender's goroutine (inlineLocked) and
// completes it as the completer does (chainDone).
func (w *WAL) runInline(b *batch) {
	if cap(w.inlineRes) < len(b.ops) {
		w.inlineRes = make([]int32, len(b.ops))
	}
	res := w.inlineRes[:len(b.ops)]
	execPrepared(w.pwrite.io, b.ops, b.prep, res)
	w.stats.inline.Add(1)
	w.chainDone(b, res, false)
}

// feeder fills in the checksums of io_uring chains that only write
// (AppendAsync batches) and submits them, off the log's lock and beside the
// appenders, then passes them to the completer in the order it got them. A
// chain that syncs is submitted under the lock as before: none is while a
// write-only chain is in flight (canSubmitLocked), so the completer still
// sees every chain in submission order. A chain the feeder cannot submit
// reaches the completer with its error (prepErr) and fails the log.
func (w *WAL) feeder() {
	defer close(w.feedDone)
	for b := range w.feed {
		err := b.checksum()
		if err == nil {
			var c ring.Completion
			if c, err = w.submitter.Submit(b.ops); err == nil {
				b.comp = c
			} else {
				b.prepErr = fmt.Errorf("submit %s: %w", b, err)
			}
		}
		if err != nil {
			b.comp = notSubmitted(len(b.ops))
		}
		b.submitAt = time.Now()
		w.submitted <- b
	}
}

// notSubmitted is the completion of a chain that never reached the kernel:
// done, every op cancelled.
func notSubmitted(n int) ring.Completion {
	c := &failedChain{done: make(chan struct{}), res: make([]int32, n)}
	for i := range c.res {
		c.res[i] = -int32(syscall.ECANCELED)
	}
	close(c.done)
	return c
}

type failedChain struct {
	done chan struct{}
	res  []int32
}

func (c *failedChain) Done() <-chan struct{} { return c.done }
func (c *failedChain) Results() []int32      { return c.res }

// kickAfter is how long a chain may be in flight before the completer kicks
// the ring (see awaitChain).
const kickAfter = time.Second

// rescueAfter is how long a chain may be in flight on the io_uring backend
// before the completer stops waiting for the kernel and performs it itself
// (see rescue).
const rescueAfter = 5 * time.Second

// awaitChain waits for b's chain to complete and returns its results. On
// the io_uring backend it kicks the ring (a no-op submission) each kickAfter
// the chain is still in flight: a completion whose wake-up went missing in
// the ring library's eventfd/epoll reaper is then picked up. A chain still
// in flight after rescueAfter is rescued (rescued true): its ops are run
// with pwrite and fdatasync and those results are returned. A slow disk
// costs a no-op per second and, past rescueAfter, one more write and sync
// of the same bytes; a chain the kernel never completes no longer leaves
// its appenders waiting forever.
func (w *WAL) awaitChain(b *batch) (res []int32, rescued bool) {
	if j, ok := b.comp.(interface{ wait() }); ok {
		j.wait() // a pwrite job: no channel made per chain
		return b.comp.Results(), false
	}
	done := b.comp.Done()
	if w.ring == nil {
		<-done
		return b.comp.Results(), false
	}
	select {
	case <-done:
		return b.comp.Results(), false
	default:
	}
	rescueAt := w.opts.rescueAfter
	for {
		wait := kickAfter
		if left := rescueAt - time.Since(b.submitAt); left < wait {
			wait = max(left, 0)
		}
		if w.kickTimer == nil {
			w.kickTimer = time.NewTimer(wait)
		} else {
			w.kickTimer.Reset(wait)
		}
		select {
		case <-done:
			w.kickTimer.Stop()
			return b.comp.Results(), false
		case <-w.kickTimer.C:
		}
		inFlight := time.Since(b.submitAt)
		if inFlight >= rescueAt {
			return w.rescue(b, inFlight), true
		}
		w.stats.kicks.Add(1)
		w.log.Info("chain in flight for long: kicking the ring", "segment", b.seg.name,
			"offset", b.offset, "in_flight", inFlight)
		if err := w.ring.Kick(); err != nil {
			w.log.Warn("kick failed", "err", err)
		}
	}
}

// rescue runs the ops of b's chain, which the kernel has not completed in
// rescueAfter, with ordinary syscalls (pwrite, fdatasync), and returns their
// results in the chain's form. A write the kernel runs later writes the
// same bytes to the same place; its registered buffers stay out of the pool
// until then (abandon), so they are never reused under it.
func (w *WAL) rescue(b *batch, inFlight time.Duration) []int32 {
	w.stats.rescues.Add(1)
	w.log.Warn("chain not completed by the kernel: writing and syncing it with pwrite and fdatasync",
		"segment", b.seg.name, "offset", b.offset, "ops", len(b.ops), "in_flight", inFlight)
	io := w.opts.fileIO
	if io == nil {
		io = osFileIO{}
	}
	res := make([]int32, len(b.ops))
	execOps(io, b.ops, res)
	return res
}

// abandon keeps what a rescued chain still uses in the kernel (its ops,
// their heap buffers, its registered buffers) until the kernel completes it,
// then gives the buffers back to the pool. Close stops waiting after a
// while; the buffers then stay mapped (see Close).
func (w *WAL) abandon(b *batch) {
	ops := slices.Clone(b.ops)
	var fixed []uint16
	kept := b.pieces[:0]
	for _, p := range b.pieces {
		if p.fixed {
			fixed = append(fixed, p.idx)
		} else {
			kept = append(kept, p)
		}
	}
	b.pieces = kept
	comp, seg, off := b.comp, b.seg, b.offset
	w.mu.Lock()
	w.abandonedOn[seg]++
	w.abandonedBufs += len(fixed)
	w.mu.Unlock()
	w.abandonWG.Add(1)
	go func() {
		defer w.abandonWG.Done()
		select {
		case <-comp.Done():
		case <-w.giveUp:
			runtime.KeepAlive(ops)
			return
		}
		err := ring.Check(ops, comp.Results())
		w.log.Info("rescued chain completed by the kernel", "segment", seg.name, "offset", off, "result", err)
		// The kernel is done with it: no longer pending for the
		// truncations, then (so that a buffer back in the pool means
		// that) its buffers go back.
		w.mu.Lock()
		if w.abandonedOn[seg]--; w.abandonedOn[seg] == 0 {
			delete(w.abandonedOn, seg)
		}
		w.abandonedBufs -= len(fixed)
		w.cond.Broadcast() // TruncateBack may wait (waitAbandonedLocked)
		w.mu.Unlock()
		for _, idx := range fixed {
			_ = w.pool.CompleteInFlight(idx)
			if err := w.pool.Release(idx); err != nil {
				w.log.Error("release buffer", "idx", idx, "err", err)
			}
		}
		if r, ok := comp.(ring.Releaser); ok {
			r.Release()
		}
		runtime.KeepAlive(ops)
	}()
}

// completer receives chains in submission order and acknowledges them in
// that order: a chain's records are durable only when its own write and sync
// and those of every chain before it succeeded.
func (w *WAL) completer() {
	defer close(w.compDone)
	for b := range w.submitted {
		res, rescued := w.awaitChain(b)
		w.chainDone(b, res, rescued)
	}
}

// chainDone completes b's chain, whose ops returned res (rescued: the
// kernel still has it, see awaitChain): its records are durable if it
// synced and nothing failed, its buffers go back, the next chains go, and
// its waiters are woken. The completer calls it for every chain it is
// handed, an appender for the chain it ran itself (runInline).
func (w *WAL) chainDone(b *batch, res []int32, rescued bool) {
	err := ring.Check(b.ops, res)
	if b.prepErr != nil {
		err = b.prepErr // nothing was written
	}
	lat := time.Since(b.submitAt)
	if rescued {
		w.abandon(b) // still in the kernel: keeps its buffers
	} else {
		if r, ok := b.comp.(ring.Releaser); ok {
			r.Release() // no one holds b.comp past this point
		}
		for _, p := range b.pieces {
			if p.fixed {
				_ = w.pool.CompleteInFlight(p.idx)
			}
		}
	}
	b.comp = nil

	w.mu.Lock()
	if b.inline {
		w.inlineBusy = false
	}
	w.noteWaitingLocked()
	w.waiting -= b.calls
	w.inflight--
	if !b.sync {
		w.nosyncInflight--
	}
	if err != nil {
		w.failLocked(fmt.Errorf("%s: %w", b, err))
	}
	var berr error
	if w.failed != nil {
		berr = w.failed
	} else {
		if b.sync {
			w.durable.Store(b.lastLSN)
		}
		w.stats.noteBatch(b, lat)
	}
	w.releasePieces(b)
	if w.gatherLocked(b) {
		w.startGatherLocked(lat)
	}
	w.pumpLocked()
	w.cond.Broadcast()
	w.mu.Unlock()
	b.finish(berr)
}
