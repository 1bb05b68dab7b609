package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringwal/ringwal/internal/fsys"
	"github.com/ringwal/ringwal/segment"
)

// recover scans the directory and restores the in-memory state: segments,
// per-segment indexes, the next LSN and the write position.
//
// Rules (see segment/doc.go for how one segment's end is classified):
//  1. Leftover prepared files (*.tmp) are removed; files that are not
//     segments are ignored (and logged).
//  2. Segments are read in base-LSN order. Each must continue the previous:
//     sequence number +1 and base LSN = previous last LSN + 1; otherwise a
//     segment is missing or foreign: corruption.
//  3. A last segment whose header never reached disk (all zeros), or whose
//     header is damaged with nothing written after it (a header write cut
//     short), holds no record (its first batch carries the header): it is
//     removed, and so, in turn, is every such segment before it at the end
//     of the log (rotation may have renamed several prepared files into
//     place before their first batches went out).
//  4. A torn tail is cut only in the last segment: its bytes are zeroed and
//     synced before anything new is written, so they can never reappear.
//     Anywhere else it is corruption (rotation waits for every chain of a
//     segment before writing the next).
//  5. Corruption stops Open (RecoverStrict) or cuts the log at the last good
//     record (RecoverTruncate).
func (w *WAL) recover() error {
	bases, others, err := segment.List(w.dir)
	if err != nil {
		return fmt.Errorf("wal: list %s: %w", w.dir, err)
	}
	removed := false
	for _, name := range others {
		switch {
		case strings.HasSuffix(name, segment.TempFileSuffix):
			if err := os.Remove(filepath.Join(w.dir, name)); err != nil {
				return fmt.Errorf("wal: remove leftover %s: %w", name, err)
			}
			removed = true
		case name == LockFileName:
		default:
			w.log.Warn("ignoring file that is not a segment", "file", name)
		}
	}
	// Rule 3 first, for every trailing segment: rotation renames the next
	// prepared file while chains of the segment before it may still be in
	// flight, and a segment's header goes out with its first chain, which is
	// submitted only after every chain before it completed. So header-less
	// segments can only trail the log, hold nothing acknowledged, and the
	// segment before them is the real last one: its torn tail is cut, not
	// reported as corruption.
	firstBase := uint64(0)
	if len(bases) > 0 {
		firstBase = bases[0]
	}
	for len(bases) > 0 {
		name := segment.FileName(bases[len(bases)-1])
		why, err := holdsNothing(filepath.Join(w.dir, name))
		if err != nil {
			return fmt.Errorf("wal: recover %s: %w", name, err)
		}
		if why == "" {
			break
		}
		w.log.Warn("removing trailing segment that holds no record", "segment", name, "reason", why)
		if err := os.Remove(filepath.Join(w.dir, name)); err != nil {
			return fmt.Errorf("wal: remove %s: %w", name, err)
		}
		bases = bases[:len(bases)-1]
		removed = true
	}
	if removed {
		if err := w.syncDir(); err != nil {
			return err
		}
	}

	var prev *segFile
	for i, base := range bases {
		last := i == len(bases)-1
		full := last || w.opts.VerifyOnOpen || w.opts.Recovery == RecoverTruncate
		s, stop, err := w.recoverSegment(base, prev, last, full)
		if err != nil {
			return err
		}
		if s != nil {
			w.segs = append(w.segs, s)
			prev = s
		}
		if stop {
			// RecoverTruncate cut the log inside this segment: set the rest
			// aside.
			if err := w.setAside(bases[i+1:]); err != nil {
				return err
			}
			break
		}
	}

	if n := len(w.segs); n > 0 && w.segs[n-1].lazy.Load() {
		// The segment after it was removed (defensive: rule 3 leaves a
		// last segment that holds records): this one is the last now and
		// is read whole, its torn tail cut.
		s := w.segs[n-1]
		w.segs = w.segs[:n-1]
		_ = s.close()
		var pp *segFile
		if n > 1 {
			pp = w.segs[n-2]
		}
		s, _, err := w.recoverSegment(s.base(), pp, true, true)
		if err != nil {
			return err
		}
		if s != nil {
			w.segs = append(w.segs, s)
		}
	}
	if len(w.segs) == 0 {
		base := uint64(1)
		if firstBase != 0 {
			base = firstBase // a first segment whose header never made it
		}
		s, err := w.createSegment(1, base)
		if err != nil {
			return err
		}
		w.segs = append(w.segs, s)
	}
	w.active = w.segs[len(w.segs)-1]
	w.tail = max(w.active.end, segment.DataOffset)
	w.segT0 = time.Time{} // the fill rate is measured from the first append (commitLaidLocked)
	w.nextSeq = w.active.hdr.Seq + 1
	w.nextLSN = w.active.last() + 1
	w.durable.Store(w.nextLSN - 1)
	w.writtenTo, w.syncedTo, w.wantSync = w.nextLSN-1, w.nextLSN-1, w.nextLSN-1
	w.firstLSN.Store(w.segs[0].base())
	// A resumed segment gets a new writer epoch, so nothing this writer
	// leaves can be confused with an earlier incarnation's bytes. A segment
	// whose epochs are used up is not resumed: enqueue rotates first.
	var epoch uint16
	if len(w.active.index) > 0 || w.active.maxEpoch > 0 {
		epoch = min(w.active.maxEpoch, maxEpoch-1) + 1
	}
	w.enc = newEncoder(w.active.hdr.Salt, epoch, w.opts.MaxRecordSize)
	return nil
}

// holdsNothing says why the segment file at path cannot hold a record, or
// "" if it may: its header is all zero (it never reached the disk), or the
// header is damaged and every byte after it is zero (the header write was
// cut short and the rest of its chain cancelled: a short write, or a crash
// that tore it).
func holdsNothing(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	_, err = segment.NewReader(f, fi.Size(), segment.ReaderOptions{})
	switch {
	case errors.Is(err, segment.ErrNoHeader):
		return "header never written", nil
	case !errors.Is(err, segment.ErrCorrupt):
		return "", nil // a good header, or one of another version: keep
	}
	buf := make([]byte, 1<<20)
	for off := int64(segment.HeaderSize); off < fi.Size(); off += int64(len(buf)) {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), fi.Size()-off)], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		for _, b := range buf[:n] {
			if b != 0 {
				return "", nil
			}
		}
	}
	return fmt.Sprintf("damaged header (%v) and nothing written after it", err), nil
}

// recoverSegment opens and scans one segment (only its header unless full:
// then it is lazy, see Options.VerifyOnOpen). It returns the segment (nil
// when it was removed) and whether recovery must stop after it.
func (w *WAL) recoverSegment(base uint64, prev *segFile, last, full bool) (*segFile, bool, error) {
	name := segment.FileName(base)
	path := filepath.Join(w.dir, name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, false, fmt.Errorf("wal: open segment: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("wal: stat segment: %w", err)
	}
	var ra io.ReaderAt = f
	if full {
		if rr := w.holdReadRing(); rr != nil {
			defer rr.release()
			pf := newPrefetchReader(rr, f, fi.Size())
			defer pf.Close()
			ra = pf
		}
	}
	r, err := segment.NewReader(ra, fi.Size(), segment.ReaderOptions{
		MaxRecordSize: w.opts.MaxRecordSize,
		FileBaseLSN:   base,
		Name:          name,
	})
	if errors.Is(err, segment.ErrNoHeader) && last {
		w.log.Warn("removing last segment whose header was never written", "segment", name)
		f.Close()
		if err := os.Remove(path); err != nil {
			return nil, false, fmt.Errorf("wal: remove %s: %w", name, err)
		}
		return nil, true, w.syncDir()
	}
	if err != nil {
		return w.onCorrupt(name, base, err)
	}
	s := &segFile{name: name, path: path, hdr: r.Header(), f: f, fd: int(f.Fd())}
	if prev != nil {
		if prev.lazy.Load() {
			prev.lazyLast = base - 1 // its records are checked when read
		}
		switch {
		case s.hdr.Seq != prev.hdr.Seq+1:
			return w.onCorrupt(name, base, &segment.CorruptionError{Segment: name, Offset: 0, LSN: base,
				Reason: fmt.Sprintf("segment sequence %d does not follow %d (%s): a segment is missing", s.hdr.Seq, prev.hdr.Seq, prev.name)})
		case base != prev.last()+1:
			return w.onCorrupt(name, base, &segment.CorruptionError{Segment: name, Offset: 0, LSN: base,
				Reason: fmt.Sprintf("base lsn %d does not follow lsn %d, the last of %s: records are missing", base, prev.last(), prev.name)})
		}
	}
	if !full {
		s.lazy.Store(true)
		keep = true
		return s, false, nil
	}
	// The first frame of an atomic batch whose last frame has not been
	// read yet: a cut must not keep part of a batch.
	batchOff, batchLSN := int64(-1), uint64(0)
	for {
		rec, err := r.Next()
		if err == nil {
			s.addIndex(rec.Offset, len(rec.Payload))
			switch {
			case !rec.BatchContinues():
				batchOff = -1
			case batchOff < 0:
				batchOff, batchLSN = rec.Offset, rec.LSN
			}
			continue
		}
		s.maxEpoch = r.LastEpoch()
		s.end = r.Offset()
		var torn *segment.TornTailError
		switch {
		case errors.Is(err, io.EOF):
		case errors.As(err, &torn) && last:
			if err := w.cutTail(s, torn); err != nil {
				return nil, false, err
			}
			s.end = torn.Offset
		case errors.As(err, &torn):
			err = sealedTornError(name, torn)
			fallthrough
		default:
			if !errors.Is(err, segment.ErrCorrupt) || w.opts.Recovery != RecoverTruncate {
				return nil, false, fmt.Errorf("wal: recover %s: %w", name, err)
			}
			var ce *segment.CorruptionError
			errors.As(err, &ce)
			cutOff, cutLSN := ce.Offset, ce.LSN
			if batchOff >= 0 && batchOff < cutOff {
				cutOff, cutLSN = batchOff, batchLSN
			}
			w.log.Warn("corruption: truncating the log at the last good record", "segment", name,
				"offset", ce.Offset, "reason", ce.Reason, "cut_offset", cutOff, "cut_lsn", cutLSN)
			s.end = cutOff
			if n := int(cutLSN - s.base()); cutLSN >= s.base() && n < len(s.index) {
				s.setIndex(s.index[:n])
			}
			// Keep the bytes for an operator before dropping them.
			if err := w.keepCopy(s); err != nil {
				return nil, false, err
			}
			if err := w.zeroRange(s, cutOff, fi.Size()); err != nil {
				return nil, false, err
			}
			keep = true
			return s, true, nil
		}
		break
	}
	keep = true
	return s, false, nil
}

// onCorrupt handles corruption found before a segment could be read: strict
// mode fails; truncate mode stops the log before this segment.
func (w *WAL) onCorrupt(name string, base uint64, err error) (*segFile, bool, error) {
	if w.opts.Recovery != RecoverTruncate || !errors.Is(err, segment.ErrCorrupt) {
		return nil, false, fmt.Errorf("wal: recover %s: %w", name, err)
	}
	w.log.Warn("corruption: setting this and later segments aside", "segment", name, "err", err)
	if err := w.setAside([]uint64{base}); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}

// setAside renames segments to *.broken so the log opens without them, and
// keeps their bytes for an operator.
func (w *WAL) setAside(bases []uint64) error {
	for _, b := range bases {
		name := segment.FileName(b)
		from := filepath.Join(w.dir, name)
		if _, err := os.Stat(from); errors.Is(err, os.ErrNotExist) {
			continue
		}
		to := from + ".broken"
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("wal: set aside %s: %w", name, err)
		}
	}
	return w.syncDir()
}

// keepCopy copies segment s, whole, to a new *.broken file next to it.
func (w *WAL) keepCopy(s *segFile) error {
	to := s.path + ".broken"
	for i := 1; ; i++ {
		if _, err := os.Lstat(to); errors.Is(err, os.ErrNotExist) {
			break
		}
		to = fmt.Sprintf("%s.%d.broken", s.path, i)
	}
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("wal: keep a copy of %s: %w", s.name, err)
	}
	_, err = io.Copy(dst, io.NewSectionReader(s.f, 0, 1<<62))
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(to)
		return fmt.Errorf("wal: keep a copy of %s: %w", s.name, err)
	}
	return w.syncDir()
}

// cutTail zeroes a torn tail and syncs, before anything new is written.
func (w *WAL) cutTail(s *segFile, torn *segment.TornTailError) error {
	w.log.Warn("cutting torn tail", "segment", s.name, "offset", torn.Offset, "end", torn.End, "lsn", torn.LSN, "reason", torn.Reason)
	// Records of an incomplete atomic batch were indexed before the reader
	// saw it was incomplete: drop them.
	if torn.LSN >= s.base() && torn.LSN <= s.last() {
		s.setIndex(s.index[:torn.LSN-s.base()])
	}
	return w.zeroRange(s, torn.Offset, torn.End)
}

// zeroRange writes zeros over [from, to) and syncs.
func (w *WAL) zeroRange(s *segFile, from, to int64) error {
	if to <= from {
		return nil
	}
	if err := segment.ZeroRange(s.f, from, to); err != nil {
		return fmt.Errorf("wal: zero %s [%d,%d): %w", s.name, from, to, err)
	}
	if err := fsys.Fdatasync(s.fd); err != nil {
		return fmt.Errorf("wal: sync %s: %w", s.name, err)
	}
	return nil
}

// createSegment creates a segment synchronously (used when the log is new).
func (w *WAL) createSegment(seq, base uint64) (*segFile, error) {
	name := segment.FileName(base)
	path := filepath.Join(w.dir, name)
	tmp := path + segment.TempFileSuffix
	f, err := createPrepared(tmp, w.opts.SegmentSize, w.opts.Prealloc, fillControl{noFallocate: w.noteNoFallocate})
	if err != nil {
		return nil, fmt.Errorf("wal: create segment: %w", err)
	}
	h := segment.Header{Version: segment.Version, Seq: seq, BaseLSN: base, Size: w.opts.SegmentSize,
		Salt: randomSalt(), Created: time.Now().UnixNano()}
	hb := make([]byte, segment.HeaderSize)
	h.MarshalTo(hb)
	err = writeHeaderRegion(f, hb)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = w.syncDir()
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("wal: create segment %s: %w", name, err)
	}
	return &segFile{name: name, path: path, hdr: h, f: f, fd: int(f.Fd())}, nil
}
