package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"

	"github.com/ringwal/ringwal/internal/fsys"
	"github.com/ringwal/ringwal/segment"
)

// Record is one record read from the log.
type Record struct {
	LSN uint64
	// Data is valid until the next call to Next or Close: copy to keep.
	// Past that it stays readable, with stale bytes, but must not be
	// written: its memory may be another Reader's window by then.
	Data    []byte
	Segment string // file name of the segment holding the record
	Offset  int64  // offset of the record's frame in that segment
}

// Read returns a copy of the record at lsn, verifying its checksum. It finds
// the record through the in-memory index (rebuilt by Open) with one read.
func (w *WAL) Read(lsn uint64) ([]byte, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, ErrClosed
	}
	if lsn < w.FirstLSN() || lsn > w.LastLSN() {
		first, last := w.FirstLSN(), w.LastLSN()
		w.mu.Unlock()
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrNotFound, lsn, first, last)
	}
	s := w.findSegLocked(lsn)
	if s != nil && s.lazy.Load() {
		// A sealed segment Open did not read: index it (verifying every
		// record) without holding up appends, then look again.
		w.mu.Unlock()
		if err := w.indexSeg(s); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, fmt.Errorf("%w: %d (truncated)", ErrNotFound, lsn)
			}
			return nil, fmt.Errorf("wal: read lsn %d: %w", lsn, err)
		}
		return w.Read(lsn)
	}
	var off int64
	var n int
	ok := false
	if s != nil {
		off, n, ok = s.locate(lsn)
	}
	w.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, lsn)
	}
	// The read runs without the log's lock: appends go on. The segment's
	// own lock keeps TruncateFront from closing the file under us.
	buf := make([]byte, segment.FrameSize(n))
	salt, name := s.hdr.Salt, s.name
	if _, err := s.ReadAt(buf, off); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: %d (truncated)", ErrNotFound, lsn)
		}
		return nil, fmt.Errorf("wal: read lsn %d at %s:%d: %w", lsn, name, off, err)
	}
	fh, payload, err := segment.VerifyFrame(salt, buf)
	if err == nil && fh.LSN != lsn {
		err = fmt.Errorf("%w: frame carries lsn %d", segment.ErrCorrupt, fh.LSN)
	}
	if err != nil {
		return nil, &segment.CorruptionError{Segment: name, Offset: off, LSN: lsn, Reason: err.Error()}
	}
	return payload, nil
}

// A Reader on the pwrite backend reads every segment in place, through
// mapped windows of mapWindow bytes (mapread.go), whether it is in the page
// cache or not: from the disk, the windows' page faults read ahead as a
// read does (a cold segment's windows are advised sequential), and nothing
// is copied. Where a mapping is refused, a segment in the page cache is
// read in replayBuffer-byte windows, the size that reads best from it, and
// one that is not (or where the kernel cannot tell) in
// coldReplayBuffer-byte windows: larger reads from the disk cost less CPU
// per byte. Cold segments on io_uring without the cold ring are read in
// coldReplayBuffer-byte preads too. PERFORMANCE.md, "Cold replay" and
// "Warm replay", has the figures.
const (
	replayBuffer     = 1 << 20
	coldReplayBuffer = 4 << 20
)

// cachedEnough is the fraction of a segment's pages in the page cache from
// which a Reader reads it as cached. Not 1: the kernel evicts a few pages of
// a segment just read now and then (on the VM measured, up to 12 of 2048
// within milliseconds, with gigabytes free), and faulting those few in
// through the mapping costs less than reading the rest with copies.
const cachedEnough = 0.9

// Reader iterates over the log's records in LSN order. Next returns io.EOF
// once it has returned every durable record; records appended later are
// returned by later calls. A Reader is not safe for concurrent use; many
// Readers may run at once, alongside appends and truncations. On the pwrite
// backend a Reader maps a window of 4 MiB of a segment at a time, and
// verifies and returns its records in place, without copying them; a
// segment not in the page cache (any segment before Linux 6.5, where the
// kernel cannot tell) is read in from the disk by the windows' page faults,
// advised sequential. On io_uring it reads through the log's shared read
// buffers, and a segment not in the page cache through one 4 MiB registered
// buffer set up for as long as such a segment is read; when RLIMIT_MEMLOCK
// does not allow it or another reader has it, with 4 MiB preads into a
// buffer of its own.
type Reader struct {
	w    *WAL
	next uint64

	seg  *segFile
	f    *os.File
	pf   *prefetchReader // READ_FIXED read-ahead (io_uring backend)
	rr   *readRing
	size int64
	sr   *segment.Reader
	rec  segment.Record // the segment reader's last record
	err  error

	buf     []byte        // window buffer shared by the segment readers (pread)
	mr      *mappedReader // the current segment's mapping, when it is read in place
	hold    *mapHold      // mr, for the cleanup of a Reader never closed
	mapped  int           // windows mapped by earlier segments' mr (tests: mappedWindows)
	cold    bool          // the current segment was not all in the page cache when opened
	fresh   uint64        // the durable end (LastLSN) when sr was opened: its window holds every record up to it
	retries int           // records read again after the segment reader failed on them (tests)
	viaMap  bool          // sr reads through mr
	backSeq uint64        // TruncateBacks seen (WAL.backN)
	cr      *readRing     // the cold ring, held while reading a cold segment (io_uring)
}

// NewReader returns a reader positioned at lsn, which must lie in
// [FirstLSN, LastLSN+1]. It reads only the segments from the one holding
// lsn on.
func (w *WAL) NewReader(lsn uint64) (*Reader, error) {
	// The first reader on io_uring sets up the replay ring, outside the
	// log's lock: appends go on meanwhile.
	rr := w.holdReadRing()
	fail := func(err error) (*Reader, error) {
		if rr != nil {
			if err2 := rr.release(); err2 != nil {
				err = errors.Join(err, err2)
			}
		}
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fail(ErrClosed)
	}
	if lsn < w.FirstLSN() || lsn > w.LastLSN()+1 {
		return fail(fmt.Errorf("%w: reader at %d, log holds [%d, %d]", ErrOutOfRange, lsn, w.FirstLSN(), w.LastLSN()))
	}
	return &Reader{w: w, next: lsn, rr: rr, backSeq: w.backN.Load()}, nil
}

// Next returns the next record. It returns io.EOF when the reader has caught
// up with the durable end of the log (a later call may return more), a
// sticky error wrapping segment.ErrCorrupt if a record fails verification,
// and a sticky ErrTruncated once a TruncateBack dropped records at or
// after its position (records it may have returned).
func (r *Reader) Next() (Record, error) {
	for {
		if r.err != nil {
			return Record{}, r.err
		}
		// The durable end first, then the count of TruncateBacks: a
		// record durable in the log as it is after a truncation is read
		// only once the reader has seen that truncation (TruncateBack
		// counts it before it changes any file), and so reads the
		// replaced files.
		last := r.w.LastLSN()
		seen := r.w.backN.Load()
		if seen != r.backSeq {
			if err := r.truncatedBack(seen); err != nil {
				r.err = err
				return Record{}, err
			}
		}
		if r.next > last {
			return Record{}, io.EOF
		}
		err := r.read()
		if r.w.backN.Load() != seen {
			// A TruncateBack ran while the record was read: what it
			// was read from may be gone or replaced. Look again.
			continue
		}
		if err != nil {
			if err != io.EOF {
				r.err = err
			}
			return Record{}, err
		}
		r.next++
		return Record{LSN: r.rec.LSN, Data: r.rec.Payload, Segment: r.seg.name, Offset: r.rec.Offset}, nil
	}
}

// read reads the record at r.next into r.rec (Next makes the Record: one
// copy of it per record, not two). It returns io.EOF when the log no longer
// reaches r.next (a TruncateBack since Next read the durable end).
func (r *Reader) read() error {
	// Past fresh, the record was made durable after the segment reader
	// read its window (a reader that caught up with the active segment's
	// end): open it again rather than let it find a stale end in its
	// window and classify it, which reads the segment's tail.
	if r.sr == nil || r.next > r.seg.last() || r.next < r.seg.base() || (r.next > r.fresh && !r.liveWindow()) {
		if err := r.open(); err != nil {
			return err
		}
	}
	rec := &r.rec
	err := r.sr.NextInto(rec)
	if err != nil {
		// The reader's window may hold bytes read before this record was
		// written (the active segment): read again from this position.
		r.retries++
		if err := r.open(); err != nil {
			return err
		}
		err = r.sr.NextInto(rec)
	}
	if err == nil && rec.LSN != r.next {
		err = &segment.CorruptionError{Segment: r.seg.name, Offset: rec.Offset, LSN: r.next,
			Reason: fmt.Sprintf("read lsn %d where %d was expected", rec.LSN, r.next)}
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = &segment.CorruptionError{Segment: r.seg.name, LSN: r.next, Reason: "durable record missing"}
		}
		return fmt.Errorf("wal: read lsn %d: %w", r.next, err)
	}
	return nil
}

// open positions a segment reader at r.next.
func (r *Reader) open() error {
	w := r.w
	fresh := w.LastLSN() // durable, so on the file before anything below reads it
	w.mu.Lock()
	s := w.findSegLocked(r.next)
	var off int64
	ok := false
	end := int64(-1) // end of the segment's last record laid (-1: the file's end)
	switch {
	case s == nil:
	case s.lazy.Load() && r.next == s.base():
		off, ok = segment.DataOffset, true // no index needed
	case s.lazy.Load():
		w.mu.Unlock()
		if err := w.indexSeg(s); err != nil {
			return fmt.Errorf("wal: index %s: %w", s.name, err)
		}
		return r.open()
	default:
		off, _, ok = s.locate(r.next)
		if o, n, ok := s.locate(s.last()); ok {
			end = o + int64(segment.FrameSize(n))
		}
	}
	past := !ok && r.next > w.LastLSN()
	w.mu.Unlock()
	if past {
		// A TruncateBack since Next read the durable end: the log ends
		// before r.next now (Next reports it, or the cut, next time).
		return io.EOF
	}
	if !ok {
		return fmt.Errorf("%w: lsn %d is no longer in the log", ErrOutOfRange, r.next)
	}
	if r.pf != nil {
		// Drop read-ahead: it may hold bytes read before they were written.
		r.pf.Close()
		r.pf = nil
	}
	switched := false // a new segment file
	if s != r.seg || r.f == nil {
		if err := r.closeFile(); err != nil {
			return err
		}
		f, err := os.Open(s.path)
		if err != nil {
			return fmt.Errorf("wal: open %s: %w", s.name, err)
		}
		r.seg, r.f = s, f
		// Replay reads a segment front to back: a larger read-ahead
		// window for the page cache.
		fsys.AdviseSequential(int(f.Fd()))
		switched = true
	}
	fi, err := r.f.Stat()
	if err != nil {
		return err
	}
	if end < 0 || end > fi.Size() {
		end = fi.Size()
	}
	if switched {
		// Where the kernel cannot tell (before Linux 6.5): cold.
		probe := fsys.Cached
		if w.opts.cacheProbe != nil {
			probe = w.opts.cacheProbe
		}
		frac, known := probe(int(r.f.Fd()), off, end-off)
		r.cold = !known || frac < cachedEnough
	}
	opts := segment.ReaderOptions{
		MaxRecordSize: w.opts.MaxRecordSize,
		Name:          s.name,
		BufferSize:    replayBuffer,
	}
	if r.cold {
		opts.BufferSize = coldReplayBuffer
	}
	rr := r.rr // nil: mapped windows (pwrite backend, or no replay ring)
	if rr != nil {
		switch {
		case r.cold && r.cr == nil:
			r.cr = w.holdColdRing()
		case !r.cold && r.cr != nil:
			err := w.releaseColdRing(r.cr)
			r.cr = nil
			if err != nil {
				return err
			}
		}
		if r.cold {
			// Without the cold ring (its 4 MiB not lockable, or another
			// reader has it), 4 MiB preads: they ran twice as fast as
			// 512 KiB READ_FIXED chunks from the disk.
			rr = r.cr
		}
	}
	var ra io.ReaderAt = r.f
	switch {
	case rr != nil:
		r.pf = newPrefetchReader(rr, r.f, fi.Size())
		// Read ahead no further than the records laid when the segment
		// was opened: past them the active segment holds zeros, and a
		// reader that follows the log opens it again for later records
		// (Next).
		r.pf.limit = end
		ra = r.pf
	case !r.cold || r.rr == nil:
		// The pwrite backend (or io_uring without its replay ring), or a
		// segment in the page cache: read in place through a mapping.
		if r.mr == nil {
			r.mr = newMappedReader(r.f, fi.Size(), r.buf, w.noteMapError, w.opts.refuseMap)
			if r.hold == nil {
				r.hold = &mapHold{}
				runtime.AddCleanup(r, (*mapHold).release, r.hold)
			}
			r.hold.mr = r.mr
		}
		r.mr.size, r.mr.dataEnd = fi.Size(), end
		r.mr.readSize, r.mr.seq = replayBuffer, r.cold
		r.mr.huge = r.cold && w.opts.ReplayHugePages
		if r.cold {
			r.mr.readSize = coldReplayBuffer
		}
		opts.BufferSize = mapWindow
		ra = r.mr
	default:
		if n := int(min(int64(opts.BufferSize), fi.Size())); cap(r.buf) < n {
			r.buf = make([]byte, n)
		}
		opts.Buffer = r.buf
	}
	sr, err := segment.NewReader(ra, fi.Size(), opts)
	if err != nil {
		return err
	}
	if err := sr.Seek(segment.Position{Offset: off, LSN: r.next}); err != nil {
		return err
	}
	viaMap := ra == r.mr
	if viaMap && r.mr.huge && switched {
		// The kernel reads a 2 MiB folio in only where no page of it is
		// cached, and then goes on reading ahead in folios of the size it
		// started with. Open's header read left a few small pages at the
		// start of the file: drop the clean ones of the 2 MiB where the
		// reader starts (the header was read above), so that its first
		// fault reads in 2 MiB folios.
		fsys.DropCached(int(r.f.Fd()), off&^(mapAlign-1), mapAlign)
	}
	r.sr, r.size, r.fresh, r.viaMap = sr, fi.Size(), fresh, viaMap
	return nil
}

// truncatedBack catches up with the TruncateBacks up to the n-th: an error
// if one cut before the reader's position, else the reader drops its file
// and window (the segment it reads may have been replaced by a copy, or
// removed) and opens it again at its next record.
func (r *Reader) truncatedBack(n uint64) error {
	w := r.w
	w.mu.Lock()
	forgotten := r.backSeq < w.backBase
	cut := uint64(0) // cuts the log no longer remembers: any, as far as it knows
	if !forgotten {
		cut = slices.Min(w.backCuts[r.backSeq-w.backBase : n-w.backBase])
	}
	w.mu.Unlock()
	r.backSeq = n
	switch {
	case cut+1 >= r.next:
	case forgotten:
		return fmt.Errorf("%w: reader at lsn %d, more than %d TruncateBacks since its last read", ErrTruncated, r.next, maxBackCuts/2)
	default:
		return fmt.Errorf("%w: reader at lsn %d, TruncateBack(%d)", ErrTruncated, r.next, cut)
	}
	r.seg = nil
	return r.closeFile()
}

// liveWindow says whether the segment reader's window shows the file as it
// is now: a mapped window does, up to the end laid when the segment was
// opened (past it, a view fails and Next opens the segment again); one read
// into a buffer does not (the mapping refused, pread, READ_FIXED).
func (r *Reader) liveWindow() bool { return r.viaMap && r.mr.err == nil }

// mappedWindows returns the windows the reader has mapped (tests).
func (r *Reader) mappedWindows() int {
	n := r.mapped
	if r.mr != nil {
		n += r.mr.maps
	}
	return n
}

// closeFile drops the read-ahead, unmaps and closes the current segment
// file.
func (r *Reader) closeFile() error {
	var err error
	if r.pf != nil {
		r.pf.Close()
		r.pf = nil
	}
	if r.mr != nil {
		r.mr.Close(r.rec.Payload)
		r.buf = r.mr.buf // the buffer of reads when a mapping was refused
		r.mapped += r.mr.maps
		r.mr, r.hold.mr = nil, nil
	}
	if r.f != nil {
		if err2 := r.f.Close(); err == nil {
			err = err2
		}
		r.f, r.sr = nil, nil
	}
	return err
}

// Close releases the reader's file and read buffers. Later calls to Next
// return ErrClosed.
func (r *Reader) Close() error {
	if r.err == ErrClosed {
		return nil
	}
	err := r.closeFile()
	if r.cr != nil {
		if err2 := r.w.releaseColdRing(r.cr); err == nil {
			err = err2
		}
		r.cr = nil
	}
	if r.rr != nil {
		if err2 := r.rr.release(); err == nil {
			err = err2
		}
		r.rr = nil
	}
	r.err = ErrClosed
	return err
}
