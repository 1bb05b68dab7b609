package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/ringwal/ringwal/segment"
)

// Options configures Scan. The zero value scans everything and reports
// through the returned Log only.
type Options struct {
	// MaxRecordSize is the largest payload accepted, as in
	// segment.ReaderOptions: zero means segment.DefaultMaxRecordSize. It
	// must be at least the limit the log was written with, or longer
	// records read as damage.
	MaxRecordSize int
	// DirOnly refuses a path that is not a directory.
	DirOnly bool
	// From and To bound the records passed to Record (inclusive; To 0 means
	// no bound). Segments that cannot hold records at or above From, going
	// by the next segment's file name, are not read (their headers are),
	// and the scan stops at the first record above To. The Log's counts
	// then cover only what was read.
	From, To uint64
	// Resync makes the scan read past damage inside a segment: it looks for
	// the next frame that is valid on its own (checksum, type, flags, lag)
	// with an LSN at least the one expected, and goes on from there. The
	// Problem's ResumeOffset says where. Without it, a segment's reading
	// ends at its first damage (the next segment is read either way).
	Resync bool

	// Record, if set, is called for every record that is part of the log
	// (every record of a complete atomic batch) within [From, To], in log
	// order. rec.Payload is valid only during the call. An error stops the
	// scan and is returned.
	Record func(s *Segment, rec segment.Record) error
	// Problem, if set, is called for every problem as it is found, in log
	// order, between the records around it; notes about directory entries
	// that are not segments come last. An error stops the scan and is
	// returned.
	Problem func(p Problem) error
	// Progress, if set, is called now and then with the bytes read so far
	// and the total size of the segment files.
	Progress func(done, total int64)
}

// Log is what Scan found.
type Log struct {
	// Path is the path scanned.
	Path string
	// Dir is true when Path is a directory; false for one segment file.
	Dir bool
	// Segments are the segment files in log order (base LSN order).
	Segments []*Segment
	// Others are the directory entries that are not segments (the lock
	// file excluded), sorted.
	Others []string
	// Problems are all problems found, in the order Options.Problem saw
	// them.
	Problems []Problem
}

// Segment is what Scan found about one segment file.
type Segment struct {
	// Name is the file name, Path the path it was read from.
	Name, Path string
	// FileSize is the size of the file.
	FileSize int64
	// Header is the segment header; valid when HeaderOK.
	Header   segment.Header
	HeaderOK bool
	// Records is the number of records read that are part of the log,
	// FirstLSN and LastLSN the first and last of them (0 when none),
	// PayloadBytes the sum of their lengths, and PadBytes the padding
	// after their frames (segment.FlagPadToPage).
	Records           int
	FirstLSN, LastLSN uint64
	PayloadBytes      int64
	PadBytes          int64
	// End is the offset after the last record that is part of the log:
	// where the next frame would go after a clean end, or the cut of a torn
	// tail or of damage. segment.DataOffset when the segment has no record.
	End int64
	// Last is true for the last segment of the log as recovery sees it: the
	// last file, or the last one before the files at the end whose header
	// never reached the disk (wal.Open removes those). A torn tail is a
	// note only there. (On a live log, a file at the end whose header
	// arrived during the scan is last too.) Active is true for the last
	// segment with a readable header: the wal appends to it after Open.
	Last, Active bool
	// Skipped is true when the records were not read (Options.From).
	Skipped bool
	// Problems are the problems found in this segment, in order.
	Problems []Problem

	base     uint64 // from the file name; 0 when the name is not a segment name
	trailing bool   // one of the header-less files at the end of the log
}

// Unfinished reports whether the segment is one of the files at the end of
// the log whose header never reached the disk: a rotation a crash left
// unfinished. It holds no record, and wal.Open removes it.
func (s *Segment) Unfinished() bool { return s.trailing && !s.HeaderOK }

// Damaged reports whether the segment has a problem that is more than a
// note, and returns the first.
func (s *Segment) Damaged() (Problem, bool) {
	for _, p := range s.Problems {
		if p.Damage() {
			return p, true
		}
	}
	return Problem{}, false
}

// Torn returns the note about a torn tail in this (last) segment, if any.
func (s *Segment) Torn() (Problem, bool) {
	for _, p := range s.Problems {
		if p.Kind == Note && p.End > 0 {
			return p, true
		}
	}
	return Problem{}, false
}

// Records returns the number of records in all segments.
func (l *Log) Records() int {
	n := 0
	for _, s := range l.Segments {
		n += s.Records
	}
	return n
}

// FirstLSN returns the LSN of the first record found, 0 when none.
func (l *Log) FirstLSN() uint64 {
	for _, s := range l.Segments {
		if s.Records > 0 {
			return s.FirstLSN
		}
	}
	return 0
}

// LastLSN returns the LSN of the last record found, 0 when none.
func (l *Log) LastLSN() uint64 {
	for i := len(l.Segments) - 1; i >= 0; i-- {
		if s := l.Segments[i]; s.Records > 0 {
			return s.LastLSN
		}
	}
	return 0
}

// Count returns the number of problems of kind k.
func (l *Log) Count(k Kind) int {
	n := 0
	for _, p := range l.Problems {
		if p.Kind == k {
			n++
		}
	}
	return n
}

// Intact reports whether the log has no problem other than notes.
func (l *Log) Intact() bool {
	return l.Count(Corruption) == 0 && l.Count(Unsupported) == 0
}

// FileBytes returns the total size of the segment files.
func (l *Log) FileBytes() int64 {
	var n int64
	for _, s := range l.Segments {
		n += s.FileSize
	}
	return n
}

// errStop ends a scan early without an error (Options.To reached).
var errStop = errors.New("inspect: stop")

// progressEvery is how many records pass between Progress and context
// checks.
const progressEvery = 4096

// Scan reads the log directory or segment file at path and reports every
// segment, record and problem. It opens files read-only and takes no lock.
//
// The error is an *InputError for a path that cannot be inspected (missing,
// unreadable, empty directory, no segment files, a file that is not a
// segment), an I/O error, ctx's error, or an error returned by a callback;
// damage is not an error but Problems in the Log.
func Scan(ctx context.Context, path string, opts Options) (*Log, error) {
	if opts.MaxRecordSize < 0 || opts.MaxRecordSize > segment.MaxRecordSizeLimit {
		return nil, fmt.Errorf("inspect: MaxRecordSize %d outside [0, %d]", opts.MaxRecordSize, segment.MaxRecordSizeLimit)
	}
	if opts.MaxRecordSize == 0 {
		opts.MaxRecordSize = segment.DefaultMaxRecordSize
	}
	t, err := resolve(path, opts.DirOnly)
	if err != nil {
		return nil, err
	}
	sc := &scanner{ctx: ctx, opts: opts, log: &Log{Path: path, Dir: t.dir, Segments: t.segs, Others: t.others}}
	err = sc.run()
	if errors.Is(err, errStop) {
		err = nil
	}
	return sc.log, err
}

type scanner struct {
	ctx   context.Context
	opts  Options
	log   *Log
	done  int64
	total int64
}

func (sc *scanner) run() error {
	segs := sc.log.Segments
	for _, s := range segs {
		if fi, err := os.Stat(s.Path); err == nil {
			s.FileSize = fi.Size()
		}
		sc.total += s.FileSize
	}
	// Header-less files at the end of the log are what a crash during
	// rotation leaves; recovery removes them, and the segment before them is
	// the last one.
	last := len(segs) - 1
	for last >= 0 && headerAllZero(segs[last].Path) {
		segs[last].trailing = true
		last--
	}
	for i, s := range segs {
		if err := sc.ctx.Err(); err != nil {
			return err
		}
		// On a live log the header of a trailing file can arrive between
		// the look above and this read: such a segment is the new last one
		// (the wal writes it only once every chain before it completed).
		s.Last = i >= last
		var prev *Segment
		if i > 0 {
			prev = segs[i-1]
		}
		skip := sc.opts.From > 0 && i+1 < len(segs) && segs[i+1].base != 0 && segs[i+1].base <= sc.opts.From
		if err := sc.segment(s, prev, skip); err != nil {
			return err
		}
		sc.done += s.FileSize
		sc.progress(0)
	}
	for i := len(segs) - 1; i >= max(last, 0); i-- {
		if segs[i].HeaderOK {
			segs[i].Active = true
			break
		}
	}
	for _, o := range sc.log.Others {
		if err := sc.problem(nil, foreignNote(sc.log.Path, o)); err != nil {
			return err
		}
	}
	return nil
}

// headerAllZero reports whether the header bytes of the file at path are
// all zero (or the file is empty): segment.ErrNoHeader. An error reads as
// false; reading the segment reports it.
func headerAllZero(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [segment.HeaderSize]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	for _, c := range b[:n] {
		if c != 0 {
			return false
		}
	}
	return true
}

func (sc *scanner) progress(cur int64) {
	if sc.opts.Progress != nil {
		sc.opts.Progress(min(sc.done+cur, sc.total), sc.total)
	}
}

func (sc *scanner) problem(s *Segment, p Problem) error {
	if s != nil {
		s.Problems = append(s.Problems, p)
	}
	sc.log.Problems = append(sc.log.Problems, p)
	if sc.opts.Problem != nil {
		return sc.opts.Problem(p)
	}
	return nil
}

// segment reads one segment file.
func (sc *scanner) segment(s *Segment, prev *Segment, skip bool) error {
	s.End = segment.DataOffset
	f, err := os.Open(s.Path)
	if errors.Is(err, fs.ErrNotExist) && sc.log.Dir {
		// A live log's TruncateFront removed it after the listing.
		return sc.problem(s, Problem{Kind: Note, Segment: s.Name, Offset: -1, Cut: -1,
			Reason: "removed while the scan ran (the live log was truncated)"})
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	s.FileSize = fi.Size()
	r, err := segment.NewReader(f, s.FileSize, segment.ReaderOptions{
		MaxRecordSize: sc.opts.MaxRecordSize,
		FileBaseLSN:   s.base,
		Name:          s.Name,
	})
	if err != nil {
		p, ok := headerProblem(s, err)
		if !ok {
			return err
		}
		return sc.problem(s, p)
	}
	s.Header, s.HeaderOK = r.Header(), true
	if p, ok := continuity(prev, s); ok {
		if err := sc.problem(s, p); err != nil {
			return err
		}
	}
	if skip {
		s.Skipped = true
		return nil
	}
	return sc.records(s, f, r)
}

// headerProblem classifies an error of segment.NewReader; ok is false for
// I/O errors.
func headerProblem(s *Segment, err error) (Problem, bool) {
	p := Problem{Kind: Corruption, Segment: s.Name, Cut: 0}
	var ce *segment.CorruptionError
	switch {
	case errors.Is(err, segment.ErrNoHeader) && s.trailing:
		p.Kind, p.Reason = Note, "no header (all zero): a rotation the crash left unfinished; wal.Open removes this segment, which holds no record"
	case errors.Is(err, segment.ErrNoHeader):
		p.Reason = "no header (all zero) in a segment that segments with a header follow"
	case errors.Is(err, segment.ErrUnsupportedVersion):
		const versionOffset = 8 // of the version field in the header
		p.Kind, p.Offset = Unsupported, versionOffset
		p.Reason = strings.TrimPrefix(err.Error(), "segment: "+s.Name+": ")
	case errors.As(err, &ce):
		p.Offset, p.Reason = ce.Offset, ce.Reason
	default:
		return Problem{}, false
	}
	return p, true
}

// continuity checks that s continues prev: the next sequence number, and the
// base LSN after prev's last record when prev was read to a clean end.
func continuity(prev, s *Segment) (Problem, bool) {
	if prev == nil || !prev.HeaderOK {
		return Problem{}, false
	}
	_, damaged := prev.Damaged()
	// A header that arrived during the scan (a live log rotated) belongs to
	// a segment the wal began after the one before it was complete, which
	// may have been after that one was read: its end says nothing.
	clean := !damaged && !prev.Skipped && !s.trailing
	want := prev.Header.BaseLSN
	if prev.Records > 0 {
		want = prev.LastLSN + 1
	}
	seq, base := s.Header.Seq, s.Header.BaseLSN
	seqOK := seq == prev.Header.Seq+1
	lsnOK := !clean || base == want
	if seqOK && lsnOK {
		return Problem{}, false
	}
	p := Problem{Kind: Corruption, Segment: s.Name, Offset: 0, Cut: 0, CutLSN: base}
	if clean {
		p.LSN = want
	}
	switch {
	case !seqOK && !lsnOK && seq > prev.Header.Seq+1 && base > want:
		p.Reason = fmt.Sprintf("does not continue %s: sequence %d after %d, base lsn %d after lsn %d: a segment is missing (lsn %d-%d)",
			prev.Name, seq, prev.Header.Seq, base, want-1, want, base-1)
	case !seqOK && !lsnOK:
		p.Reason = fmt.Sprintf("does not continue %s: sequence %d after %d, base lsn %d where %d was expected",
			prev.Name, seq, prev.Header.Seq, base, want)
	case !seqOK:
		p.Reason = fmt.Sprintf("segment sequence %d does not follow %d (%s)", seq, prev.Header.Seq, prev.Name)
	case base > want:
		p.Reason = fmt.Sprintf("lsn gap between segments: %s ends before lsn %d, this segment starts at %d", prev.Name, want, base)
	default:
		p.Reason = fmt.Sprintf("lsn overlap between segments: %s ends before lsn %d, this segment starts at %d", prev.Name, want, base)
	}
	return p, true
}

// records reads the frames of s. Records of an atomic batch are held back
// until the batch's last record arrives, so that an incomplete batch is
// never reported as part of the log.
func (sc *scanner) records(s *Segment, f *os.File, r *segment.Reader) error {
	var held []segment.Record
	heldOff := int64(-1)
	n := 0
	for {
		rec, err := r.Next()
		if err == nil {
			if n++; n%progressEvery == 0 {
				if err := sc.ctx.Err(); err != nil {
					return err
				}
				sc.progress(rec.Offset)
			}
			if rec.BatchContinues() {
				if len(held) == 0 {
					heldOff = rec.Offset
				}
				rec.Payload = append([]byte(nil), rec.Payload...)
				held = append(held, rec)
				continue
			}
			for _, h := range held {
				if err := sc.record(s, h); err != nil {
					return err
				}
			}
			held = held[:0]
			if err := sc.record(s, rec); err != nil {
				return err
			}
			s.End = r.Offset()
			continue
		}
		var torn *segment.TornTailError
		var ce *segment.CorruptionError
		var p Problem
		switch {
		case errors.Is(err, io.EOF):
			s.End = r.Offset()
			return nil
		case errors.As(err, &torn):
			s.End = torn.Offset
			p = Problem{Kind: Note, Segment: s.Name, Offset: torn.Offset, LSN: torn.LSN, Cut: torn.Offset, CutLSN: torn.LSN, End: torn.End,
				Reason: fmt.Sprintf("torn tail: %s (cut [%d,%d), first lost lsn %d); wal.Open cuts it", torn.Reason, torn.Offset, torn.End, torn.LSN)}
			if !s.Last {
				p.Kind, p.End = Corruption, 0
				p.Reason = fmt.Sprintf("torn tail in a sealed segment (segments with records follow): %s (first lost lsn %d)", torn.Reason, torn.LSN)
			}
		case errors.As(err, &ce):
			p = Problem{Kind: Corruption, Segment: s.Name, Offset: ce.Offset, LSN: ce.LSN, Cut: ce.Offset, CutLSN: ce.LSN, Reason: ce.Reason}
			if len(held) > 0 {
				p.Cut, p.CutLSN = heldOff, held[0].LSN
				p.Reason += fmt.Sprintf("; the atomic batch from lsn %d at offset %d is incomplete", held[0].LSN, heldOff)
			}
			s.End = p.Cut
		default:
			return err
		}
		held = held[:0]
		if !sc.opts.Resync || p.Kind == Note {
			return sc.problem(s, p)
		}
		pos := r.Position()
		off, fh, err := findFrame(f, s.FileSize, s.Header.Salt, sc.opts.MaxRecordSize, pos.Offset+1, pos.LSN, pos.Epoch)
		if err != nil {
			return err
		}
		if off >= 0 {
			p.ResumeOffset, p.ResumeLSN = off, fh.LSN
		}
		if err := sc.problem(s, p); err != nil {
			return err
		}
		if off < 0 {
			return nil
		}
		if err := r.Seek(segment.Position{Offset: off, LSN: fh.LSN, Epoch: fh.Epoch}); err != nil {
			return err
		}
	}
}

func (sc *scanner) record(s *Segment, rec segment.Record) error {
	if sc.opts.To > 0 && rec.LSN > sc.opts.To {
		return errStop
	}
	if s.Records == 0 {
		s.FirstLSN = rec.LSN
	}
	s.Records++
	s.LastLSN = rec.LSN
	s.PayloadBytes += int64(len(rec.Payload))
	// Padding that would run past the file's end (a file cut short)
	// ends with it.
	s.PadBytes += min(rec.Padding(), s.FileSize-rec.Offset-int64(segment.FrameSize(len(rec.Payload))))
	if sc.opts.Record != nil && rec.LSN >= sc.opts.From {
		return sc.opts.Record(s, rec)
	}
	return nil
}
