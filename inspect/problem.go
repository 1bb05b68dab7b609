package inspect

import (
	"fmt"
	"strconv"
)

// Kind classifies a Problem.
type Kind int

const (
	// Note is something worth knowing that is not damage: a torn tail in
	// the last segment, an unfinished rotation, a file that is not a
	// segment. A log with only notes is intact.
	Note Kind = iota
	// Corruption is damage that may have cost acknowledged records, or a
	// log that does not hang together (a missing segment).
	Corruption
	// Unsupported is a segment of a format version this package does not
	// read. It is not damage, but the log cannot be checked or opened by
	// this version.
	Unsupported
)

// String returns "note", "corruption" or "unsupported".
func (k Kind) String() string {
	switch k {
	case Note:
		return "note"
	case Corruption:
		return "corruption"
	case Unsupported:
		return "unsupported"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText makes a Kind a JSON string.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Problem is one finding of a scan, with its place.
type Problem struct {
	Kind Kind `json:"kind"`
	// Segment is the file name of the segment, or of the directory entry
	// the problem is about.
	Segment string `json:"segment"`
	// Offset is the byte offset in Segment where the problem is: the header
	// field at fault, the bad frame, the start of a torn tail; 0 for
	// problems of the whole segment. -1 when the problem has no place in a
	// file (a directory entry that is not a segment).
	Offset int64 `json:"offset"`
	// LSN is the LSN expected at Offset, 0 when there is none.
	LSN uint64 `json:"lsn,omitempty"`
	// Reason says what is wrong, without the place.
	Reason string `json:"reason"`

	// Cut is where the log ends because of this problem: the offset in
	// Segment up to which the segment keeps its records (the start of the
	// atomic batch the damage falls in), or 0 when the whole segment is
	// lost. -1 for problems that end nothing (foreign files).
	Cut int64 `json:"cut"`
	// CutLSN is the first LSN lost at Cut (0 when unknown).
	CutLSN uint64 `json:"cut_lsn,omitempty"`
	// End is the end of the bytes the cut removes for a torn tail: one past
	// the last non-zero byte (TornTailError.End). 0 otherwise.
	End int64 `json:"end,omitempty"`

	// ResumeOffset is, when the scan read past the damage
	// (Options.Resync), the offset of the frame it resumed at; 0 when it
	// did not resume in this segment.
	ResumeOffset int64 `json:"resume_offset,omitempty"`
	// ResumeLSN is the LSN of that frame.
	ResumeLSN uint64 `json:"resume_lsn,omitempty"`
}

// String formats the problem as "segment:offset: reason", or
// "segment: reason" when it has no offset. Notes say so after the place.
func (p Problem) String() string {
	place := p.Segment
	if p.Offset >= 0 {
		place += ":" + strconv.FormatInt(p.Offset, 10)
	}
	if p.Kind == Note {
		return fmt.Sprintf("%s: note: %s", place, p.Reason)
	}
	return fmt.Sprintf("%s: %s", place, p.Reason)
}

// Damage reports whether the problem is more than a note.
func (p Problem) Damage() bool { return p.Kind != Note }
