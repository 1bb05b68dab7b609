package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ringwal/ringwal/internal/fsys"
	"github.com/ringwal/ringwal/segment"
)

// RepairOptions configures Repair.
type RepairOptions struct {
	// DryRun plans the repair without changing anything (and without
	// taking the lock).
	DryRun bool
	// MaxRecordSize is as in Options.
	MaxRecordSize int
}

// ActionKind is what one repair step does.
type ActionKind int

const (
	// CutTail cuts a torn tail in the last segment: the bytes
	// [Offset, End) are copied to Backup, then zeroed and synced, as
	// wal.Open would (without the copy).
	CutTail ActionKind = iota
	// CutDamage cuts a segment at the first damage: the whole segment is
	// copied to Backup, then [Offset, End) is zeroed and synced, so the
	// segment ends cleanly after its last good record.
	CutDamage
	// SetAside renames a damaged segment, or one after the damage, to
	// Backup, so the log no longer reads it.
	SetAside
)

// String returns "cut tail", "cut damage" or "set aside".
func (k ActionKind) String() string {
	switch k {
	case CutTail:
		return "cut tail"
	case CutDamage:
		return "cut damage"
	case SetAside:
		return "set aside"
	}
	return "action(" + strconv.Itoa(int(k)) + ")"
}

// Action is one step of a repair.
type Action struct {
	Kind ActionKind
	// Segment is the file name of the segment acted on.
	Segment string
	// Offset and End bound the bytes zeroed (CutTail, CutDamage).
	Offset, End int64
	// Backup is the name of the file in the log directory that keeps the
	// bytes: the torn tail's bytes (CutTail), a copy of the whole segment
	// (CutDamage), the segment itself (SetAside).
	Backup string
	// Why is the problem that calls for the step. For a SetAside of a
	// segment after the damage it is that damage.
	Why Problem
}

// RepairResult is what Repair did, or would do.
type RepairResult struct {
	Dir    string
	DryRun bool
	// Actions are the steps, in the order they are (or would be) taken.
	Actions []Action
	// Before is the scan the plan was made from.
	Before *Log
	// Segments, Records, FirstLSN and LastLSN describe the log as it is
	// after the repair (FirstLSN and LastLSN are 0 when it holds no
	// record).
	Segments, Records int
	FirstLSN, LastLSN uint64
	// After is a scan of the log after the repair; nil for a dry run.
	After *Log
}

// ErrLocked is returned by Repair when another process holds the log's
// lock: a writer is running.
var ErrLocked = errors.New("the log is locked by another process (stop its writer first)")

// Repair makes the log in dir open again with wal.Open while keeping every
// byte it takes out of the log:
//
//   - a torn tail in the last segment is copied to NAME.tail-OFFSET.broken,
//     then zeroed;
//   - at the first damage (corruption, a missing segment, a segment that is
//     not the last without a header), a segment damaged after its first
//     frame is copied whole to NAME.broken and cut at the start of the
//     atomic batch the damage falls in; a segment damaged in its header, or
//     that does not continue the one before it, is renamed NAME.broken; and
//     every later segment is renamed NAME.broken.
//
// Names that are taken get a number: NAME.1.broken. The log afterwards holds
// every record before the damage. A segment of an unsupported format
// version before any damage is refused: an upgrade, not a repair, is needed.
//
// Without DryRun, Repair locks the directory as the wal does (ErrLocked if a
// writer holds it) and syncs every file and directory it changes, in an
// order that leaves a log Repair can finish if it is interrupted.
func Repair(ctx context.Context, dir string, opts RepairOptions) (*RepairResult, error) {
	if !opts.DryRun {
		// Fail on a bad path before creating a lock file in it.
		if _, err := resolve(dir, true); err != nil {
			return nil, err
		}
		unlock, err := lockDir(dir)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	before, err := Scan(ctx, dir, Options{MaxRecordSize: opts.MaxRecordSize, DirOnly: true})
	if err != nil {
		return nil, err
	}
	res, err := PlanRepair(before)
	if err != nil {
		return nil, err
	}
	res.DryRun = opts.DryRun
	if opts.DryRun {
		return res, nil
	}
	for _, a := range res.Actions {
		if err := apply(dir, a); err != nil {
			return res, err
		}
	}
	res.After, err = Scan(ctx, dir, Options{MaxRecordSize: opts.MaxRecordSize, DirOnly: true})
	if ie := (*InputError)(nil); errors.As(err, &ie) {
		// Every segment was set aside: wal.Open starts a new log.
		res.After, err = nil, nil
	}
	return res, err
}

// PlanRepair works out what Repair would do to the log directory l was
// scanned from (without Options.From or Resync), without changing anything:
// the result is that of a dry run.
func PlanRepair(l *Log) (*RepairResult, error) {
	if !l.Dir {
		return nil, &InputError{Path: l.Path, Reason: "not a directory (repair takes a log directory)"}
	}
	res := &RepairResult{Dir: l.Path, Before: l}
	taken := map[string]bool{}
	backup := func(name, suffix string) string {
		b := freeName(l.Path, name, suffix, taken)
		taken[b] = true
		return b
	}
	segs := l.Segments
	cut := len(segs) // index of the first segment not kept whole
	var damage Problem
	for i, s := range segs {
		if p, ok := s.Damaged(); ok {
			cut, damage = i, p
			break
		}
	}
	if cut < len(segs) && damage.Kind == Unsupported {
		return nil, &InputError{Path: filepath.Join(l.Path, damage.Segment),
			Reason: damage.Reason + ": this walctl cannot read it, so it cannot tell what to keep; use a walctl that reads it (nothing was changed)"}
	}
	for i := len(segs) - 1; i > cut; i-- {
		res.Actions = append(res.Actions, Action{Kind: SetAside, Segment: segs[i].Name, Backup: backup(segs[i].Name, ""), Why: damage})
	}
	keep := cut
	switch {
	case cut < len(segs) && damage.Cut >= segment.DataOffset:
		s := segs[cut]
		end, err := fileWrittenEnd(s.Path, damage.Cut)
		if err != nil {
			return nil, err
		}
		res.Actions = append(res.Actions, Action{Kind: CutDamage, Segment: s.Name, Offset: damage.Cut, End: max(end, damage.Cut),
			Backup: backup(s.Name, ""), Why: damage})
		keep++
	case cut < len(segs):
		res.Actions = append(res.Actions, Action{Kind: SetAside, Segment: segs[cut].Name, Backup: backup(segs[cut].Name, ""), Why: damage})
	default:
		for _, s := range segs {
			if p, ok := s.Torn(); ok && s.Last {
				res.Actions = append(res.Actions, Action{Kind: CutTail, Segment: s.Name, Offset: p.Cut, End: p.End,
					Backup: backup(s.Name, ".tail-"+strconv.FormatInt(p.Cut, 10)), Why: p})
			}
		}
	}
	for _, s := range segs[:keep] {
		if !s.HeaderOK {
			continue // a header-less segment at the end: wal.Open removes it
		}
		res.Segments++
		if s.Records > 0 {
			if res.Records == 0 {
				res.FirstLSN = s.FirstLSN
			}
			res.Records += s.Records
			res.LastLSN = s.LastLSN
		}
	}
	return res, nil
}

// freeName returns name+suffix+".broken", or name+suffix+".N.broken" for the
// first N that names no file in dir and is not taken.
func freeName(dir, name, suffix string, taken map[string]bool) string {
	for n := 0; ; n++ {
		b := name + suffix + BrokenSuffix
		if n > 0 {
			b = name + suffix + "." + strconv.Itoa(n) + BrokenSuffix
		}
		if _, err := os.Lstat(filepath.Join(dir, b)); errors.Is(err, fs.ErrNotExist) && !taken[b] {
			return b
		}
	}
}

func fileWrittenEnd(path string, from int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return writtenEnd(f, fi.Size(), from)
}

// apply takes one step.
func apply(dir string, a Action) error {
	seg := filepath.Join(dir, a.Segment)
	bak := filepath.Join(dir, a.Backup)
	switch a.Kind {
	case SetAside:
		if _, err := os.Lstat(bak); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("set aside %s: %s exists", a.Segment, a.Backup)
		}
		if err := os.Rename(seg, bak); err != nil {
			return err
		}
		return syncDir(dir)
	case CutTail, CutDamage:
		from, n := a.Offset, a.End-a.Offset
		if a.Kind == CutDamage {
			from, n = 0, -1
		}
		if err := copyOut(seg, bak, from, n); err != nil {
			return err
		}
		if err := syncDir(dir); err != nil {
			return err
		}
		return zero(seg, a.Offset, a.End)
	}
	return fmt.Errorf("inspect: unknown action %v", a.Kind)
}

// copyOut copies n bytes (all, if n < 0) of src from offset off into a new
// file dst, and syncs it. It never overwrites a file.
func copyOut(src, dst string, off, n int64) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	var r io.Reader = io.NewSectionReader(in, off, 1<<62)
	if n >= 0 {
		r = io.NewSectionReader(in, off, n)
	}
	copied, err := io.Copy(out, r)
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", filepath.Base(src), filepath.Base(dst), err)
	}
	if n >= 0 && copied != n {
		return fmt.Errorf("copy %s to %s: %w", filepath.Base(src), filepath.Base(dst), io.ErrUnexpectedEOF)
	}
	return out.Sync()
}

// zero writes zeros over [off, end) of path and syncs the data.
func zero(path string, off, end int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := segment.ZeroRange(f, off, end); err != nil {
		return fmt.Errorf("zero %s [%d,%d): %w", filepath.Base(path), off, end, err)
	}
	if err := fsys.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Base(path), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockDir takes the wal's lock on dir (flock on its lock file) and returns
// the function that releases it.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, LockFileName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, inputErr(dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &InputError{Path: dir, Reason: ErrLocked.Error(), Err: ErrLocked}
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
