package inspect

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ringwal/ringwal/segment"
	"github.com/ringwal/ringwal/wal"
)

// LockFileName is the name of the wal's lock file in a log directory. It is
// not a segment and not reported as a foreign file.
const LockFileName = wal.LockFileName

// BrokenSuffix ends the names of files that Repair (and the wal's
// RecoverTruncate) set aside. The log never reads them.
const BrokenSuffix = ".broken"

// InputError reports a path that cannot be inspected: missing, unreadable,
// not a log directory, empty, or a file that is not a segment. Its message
// is one line naming the path.
type InputError struct {
	Path   string
	Reason string
	Err    error // the underlying error, if any
}

// Error returns "path: reason".
func (e *InputError) Error() string { return e.Path + ": " + e.Reason }

// Unwrap returns the underlying error.
func (e *InputError) Unwrap() error { return e.Err }

// inputErr turns an error from the file system into an InputError whose
// reason is the bare cause ("no such file or directory", "permission
// denied"), since the path is already in front of it.
func inputErr(path string, err error) error {
	var pe *fs.PathError
	reason := err.Error()
	if errors.As(err, &pe) {
		reason = pe.Err.Error()
	}
	return &InputError{Path: path, Reason: reason, Err: err}
}

// target is what a path resolved to: the segments to read, in log order,
// and the other entries of a directory.
type target struct {
	dir    bool
	segs   []*Segment
	others []string
}

// resolve checks path and lists what to read. A directory must hold at
// least one segment file. A file must be named like a segment (possibly with
// the .broken or .tmp suffix that the wal and Repair give files they set
// aside or prepare) or start with the segment magic.
func resolve(path string, dirOnly bool) (*target, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, inputErr(path, err)
	}
	if fi.IsDir() {
		return resolveDir(path)
	}
	if dirOnly {
		return nil, &InputError{Path: path, Reason: "not a directory (this command takes a log directory)"}
	}
	if !fi.Mode().IsRegular() {
		return nil, &InputError{Path: path, Reason: "not a regular file"}
	}
	name := filepath.Base(path)
	base, named := segmentBase(name)
	f, err := os.Open(path)
	if err != nil {
		return nil, inputErr(path, err)
	}
	defer f.Close()
	if !named {
		var magic [len(segment.Magic)]byte
		n, err := f.ReadAt(magic[:], 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, inputErr(path, err)
		}
		if string(magic[:n]) != segment.Magic {
			return nil, &InputError{Path: path, Reason: "not a segment file (its name is not a segment name and it does not start with the segment magic)"}
		}
	}
	s := &Segment{Name: name, Path: path, base: base, FileSize: fi.Size()}
	return &target{segs: []*Segment{s}}, nil
}

func resolveDir(dir string) (*target, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, inputErr(dir, err)
	}
	if len(entries) == 0 {
		return nil, &InputError{Path: dir, Reason: "empty directory, not a log"}
	}
	bases, others, err := segment.List(dir)
	if err != nil {
		return nil, inputErr(dir, err)
	}
	t := &target{dir: true}
	for _, o := range others {
		if o != LockFileName {
			t.others = append(t.others, o)
		}
	}
	if len(bases) == 0 {
		return nil, &InputError{Path: dir, Reason: fmt.Sprintf("not a log directory: no segment files (%s) among its %d entries", "NNNNNNNNNNNNNNNNNNNN"+segment.FileSuffix, len(entries))}
	}
	for _, b := range bases {
		name := segment.FileName(b)
		t.segs = append(t.segs, &Segment{Name: name, Path: filepath.Join(dir, name), base: b})
	}
	return t, nil
}

// segmentBase returns the base LSN a file name gives: a segment name, or a
// segment name with the suffix of a file set aside (".broken", or ".N.broken"
// when that name was taken) or being prepared (".tmp").
func segmentBase(name string) (uint64, bool) {
	if b, ok := segment.ParseFileName(name); ok {
		return b, true
	}
	rest, ok := strings.CutSuffix(name, segment.TempFileSuffix)
	if !ok {
		if rest, ok = strings.CutSuffix(name, BrokenSuffix); !ok {
			return 0, false
		}
		if i := strings.LastIndexByte(rest, '.'); i >= 0 && isDigits(rest[i+1:]) {
			rest = rest[:i]
		}
	}
	return segment.ParseFileName(rest)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// foreignNote describes a directory entry that is not a segment.
func foreignNote(dir, name string) Problem {
	reason := "not a segment file; the log ignores it"
	fi, err := os.Lstat(filepath.Join(dir, name))
	switch {
	case err == nil && fi.IsDir():
		reason = "a directory, not a segment file; the log ignores it"
	case strings.HasSuffix(name, segment.TempFileSuffix):
		reason = "a segment file being prepared; wal.Open removes it"
	case strings.HasSuffix(name, BrokenSuffix):
		reason = "set aside by a repair; the log ignores it"
	case err == nil && !fi.Mode().IsRegular():
		reason = "not a regular file; the log ignores it"
	}
	return Problem{Kind: Note, Segment: name, Offset: -1, Cut: -1, Reason: reason}
}
