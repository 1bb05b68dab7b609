package wal

import (
	"fmt"
	"io"
	"os"

	"github.com/ringwal/ringwal/internal/fsys"
	"github.com/ringwal/ringwal/segment"
)

// TruncateFront drops whole segments all of whose records are below lsn
// (typically a checkpoint: every record before it was applied elsewhere), and
// syncs the directory. Records below lsn that share a segment with lsn stay;
// FirstLSN reports what is left. The active segment is never dropped, nor
// (with the segments after it) one that a rescued chain still in the
// kernel writes to (Stats.Rescues): a later call drops it. lsn must be at
// most LastLSN()+1.
func (w *WAL) TruncateFront(lsn uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if last := w.LastLSN(); lsn > last+1 {
		return fmt.Errorf("%w: TruncateFront(%d) past the end %d", ErrOutOfRange, lsn, last)
	}
	n := 0
	for n < len(w.segs)-1 && w.segs[n+1].base() <= lsn {
		if w.inflight > 0 && w.infSeg == w.segs[n] {
			break // its last chains are still being written
		}
		if w.abandonedOn[w.segs[n]] > 0 {
			break // a rescued chain on it is still in the kernel
		}
		n++
	}
	if n == 0 {
		return nil
	}
	// The log's new start is published before any file goes, so that a
	// read that finds its segment's file closed (ErrNotFound) already sees
	// FirstLSN past its record.
	dropped := w.segs[:n:n]
	w.segs = append(w.segs[:0:0], w.segs[n:]...)
	w.firstLSN.Store(w.segs[0].base())
	// Oldest first: a crash in between leaves a shorter, still contiguous
	// log. After a failed removal none newer is removed (the files left
	// are a contiguous older part, back in the log at the next Open).
	// Files the preparer takes for reuse (Options.RecycleSegments) are
	// renamed instead of removed: out of the segment names, which for the
	// log is a removal. They are closed first, so no read through the
	// log's own handle sees them reused.
	var err error
	for _, s := range dropped {
		size, serr := s.size()
		_ = s.close()
		if err != nil {
			continue
		}
		kept := false
		if serr == nil {
			kept, err = w.prep.offerRecycle(s.path, s.hdr.Salt, size)
		}
		if err == nil && !kept {
			err = os.Remove(s.path)
		}
		if err != nil {
			err = fmt.Errorf("wal: TruncateFront: %w", err)
		}
	}
	if err != nil {
		return err
	}
	return w.syncDir()
}

// maxBackCuts is how many TruncateBacks the log remembers for its Readers.
const maxBackCuts = 1024

// TruncateBack drops every record after lsn, durably: when it returns, no
// crash can bring them back. Appends wait while it runs. The next record
// appended gets lsn+1. A Reader positioned at or before lsn+1 then returns
// the records appended after it; one positioned further returns
// ErrTruncated. lsn must be at least FirstLSN()-1 (which empties the
// log). While a rescued chain is still pending in the kernel it waits for
// it, up to 5 s, and then returns ErrStalled, changing nothing.
func (w *WAL) TruncateBack(lsn uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.truncBusy || w.rotating {
		w.cond.Wait()
	}
	if w.closed {
		return ErrClosed
	}
	if w.failed != nil {
		return w.failed
	}
	if first := w.FirstLSN(); lsn < first-1 { // not lsn+1 < first: lsn may be MaxUint64
		return fmt.Errorf("%w: TruncateBack(%d) before the start %d", ErrOutOfRange, lsn, first)
	}
	w.truncBusy = true
	defer func() {
		w.truncBusy = false
		w.cond.Broadcast()
	}()
	// Everything accepted so far becomes durable (or fails) first.
	w.drainLocked()
	if w.failed != nil {
		return w.failed
	}
	if lsn >= w.LastLSN() {
		return nil
	}
	if err := w.waitAbandonedLocked(); err != nil {
		return err
	}
	if w.closed {
		return ErrClosed
	}

	// Readers learn of the cut before any file changes (Reader.Next):
	// those past lsn+1 stop, the others read the replaced files again.
	if len(w.backCuts) == maxBackCuts {
		// A reader that has not looked since the oldest of these stops
		// (ErrTruncated): its cuts are no longer known.
		n := copy(w.backCuts, w.backCuts[maxBackCuts/2:])
		w.backCuts = w.backCuts[:n]
		w.backBase += maxBackCuts / 2
	}
	w.backCuts = append(w.backCuts, lsn)
	w.backN.Store(w.backBase + uint64(len(w.backCuts)))

	// The segment that will hold lsn as its last record (or, when lsn is
	// below the first segment's base, the first segment, emptied).
	k := len(w.segs) - 1
	for k > 0 && w.segs[k].base() > lsn {
		k--
	}
	// Newest first, so a crash in between leaves a contiguous log.
	for i := len(w.segs) - 1; i > k; i-- {
		s := w.segs[i]
		if err := os.Remove(s.path); err != nil {
			return w.truncFailLocked(err)
		}
		_ = s.close()
		w.segs = w.segs[:i]
		if err := w.syncDir(); err != nil {
			return w.truncFailLocked(err)
		}
	}
	s := w.segs[k]
	if s.lazy.Load() {
		// A sealed segment Open did not read: index it first. Appends
		// and other truncations wait (truncBusy); readers go on.
		w.mu.Unlock()
		err := w.indexSeg(s)
		w.mu.Lock()
		switch {
		case w.closed:
			return ErrClosed
		case err != nil:
			return fmt.Errorf("wal: TruncateBack: %w", err)
		}
	}
	keep := int(min(lsn+1-s.base(), uint64(len(s.index))))
	end, lastOff, lastLen := int64(segment.DataOffset), int64(-1), 0
	if keep > 0 {
		lastOff, lastLen, _ = s.locate(s.base() + uint64(keep) - 1)
		end = lastOff + int64(segment.FrameSize(lastLen))
	}
	if err := w.rewriteSegment(s, end, lastOff, lastLen); err != nil {
		return w.truncFailLocked(err)
	}
	s.setIndex(s.index[:keep])
	w.active = s
	w.nextSeq = s.hdr.Seq + 1
	w.nextLSN = lsn + 1
	w.durable.Store(lsn)
	w.writtenTo, w.syncedTo, w.wantSync, w.unsyncedSeg = lsn, lsn, lsn, nil
	w.tail = end
	w.markSegStartLocked()
	w.enc = newEncoder(s.hdr.Salt, min(s.maxEpoch, maxEpoch-1)+1, w.opts.MaxRecordSize)
	w.log.Info("wal truncated back", "lsn", lsn, "segment", s.name)
	return nil
}

// truncFailLocked stops the log after a TruncateBack step failed half-way:
// memory no longer matches the disk. Reopening recovers a consistent log.
func (w *WAL) truncFailLocked(err error) error {
	err = fmt.Errorf("TruncateBack: %w", err)
	w.failLocked(err)
	return w.failed
}

// rewriteSegment replaces s by a copy that keeps its bytes [0, end) and reads
// as zeros after: a new file is written and synced, then renamed over s in
// one atomic step. A crash leaves either the old segment or the new one.
//
// The frame at lastOff (payload lastLen bytes; lastOff < 0 for none) becomes
// the last one: if it was marked as continuing an atomic batch, the mark is
// cleared (and the checksum recomputed), or recovery would take the kept
// part of that batch for an incomplete batch and drop it; so is a padding
// mark (FlagPadToPage), because appends go on right after the frame.
func (w *WAL) rewriteSegment(s *segFile, end, lastOff int64, lastLen int) error {
	tmp := s.path + segment.TempFileSuffix
	f, err := createPrepared(tmp, w.opts.SegmentSize, w.opts.Prealloc, fillControl{noFallocate: w.noteNoFallocate})
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(io.NewOffsetWriter(f, 0), io.NewSectionReader(s.f, 0, end)); err != nil {
		return fmt.Errorf("copy %s: %w", s.name, err)
	}
	if lastOff >= 0 {
		frame := make([]byte, segment.FrameSize(lastLen))
		if _, err := f.ReadAt(frame, lastOff); err != nil {
			return fmt.Errorf("read back %s:%d: %w", tmp, lastOff, err)
		}
		fh, payload, err := segment.VerifyFrame(s.hdr.Salt, frame)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", s.name, lastOff, err)
		}
		if fh.Flags != 0 { // BatchContinues, PadToPage: neither holds for a last frame
			fh.Flags = 0
			segment.EncodeFrameHeader(frame, s.hdr.Salt, fh, payload)
			if _, err := f.WriteAt(frame[:segment.FrameHeaderSize], lastOff); err != nil {
				return fmt.Errorf("rewrite %s:%d: %w", tmp, lastOff, err)
			}
		}
	}
	if err := fsys.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	ok = true
	s.fileMu.Lock()
	old := s.f
	s.f, s.fd = f, int(f.Fd())
	s.fileMu.Unlock()
	if old != nil {
		old.Close()
	}
	return w.syncDir()
}
