package segment

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt is wrapped by every *CorruptionError: the segment holds
	// damage that may have cost acknowledged records. It is never returned
	// for a torn tail.
	ErrCorrupt = errors.New("segment: corrupt")

	// ErrTornTail is wrapped by every *TornTailError: the segment ends with
	// bytes of writes that were never acknowledged (a crash during a write).
	ErrTornTail = errors.New("segment: torn tail")

	// ErrNoHeader means the header bytes of a segment are all zero (or the
	// file is empty): the file was created but its header never reached the
	// disk. Only the last segment of a log may be in that state.
	ErrNoHeader = errors.New("segment: no header (all zero)")

	// ErrUnsupportedVersion is wrapped by the error for an intact header of
	// a format version this package does not read. The error names the
	// version.
	ErrUnsupportedVersion = errors.New("segment: unsupported format version")

	// ErrRecordTooLarge is wrapped by the error for a payload longer than
	// the configured record size limit.
	ErrRecordTooLarge = errors.New("segment: record too large")

	// ErrBufferFull is returned by Encoder.Append when the frame does not fit
	// in what is left of the buffer. Nothing was written.
	ErrBufferFull = errors.New("segment: buffer full")

	// ErrSegmentFull is returned by Writer when a frame would extend past the
	// segment's Size. Nothing was written.
	ErrSegmentFull = errors.New("segment: segment full")
)

// CorruptionError reports damage in a segment that cannot be explained by a
// crash during a write: a bad header, a frame that fails its checks while
// acknowledged records follow it, an LSN gap or repeat. It wraps ErrCorrupt;
// get it with errors.As.
type CorruptionError struct {
	// Segment names the segment (ReaderOptions.Name); empty when unknown.
	Segment string
	// Offset is the byte offset in the file where the damage starts: the
	// header field at fault, or the start of the first bad frame.
	Offset int64
	// LSN is the LSN expected at Offset, 0 for header damage.
	LSN uint64
	// Reason says what is wrong.
	Reason string
}

// Error returns "segment: <segment>:<offset>: <reason>".
func (e *CorruptionError) Error() string {
	if e.Segment == "" {
		return fmt.Sprintf("segment: offset %d: %s", e.Offset, e.Reason)
	}
	return fmt.Sprintf("segment: %s:%d: %s", e.Segment, e.Offset, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

// TornTailError reports that a segment ends with a torn tail: the bytes in
// [Offset, End) are what is left of writes that were never acknowledged, and
// the log ends at Offset. It wraps ErrTornTail.
//
// The caller decides what it means. In the last segment of a log it is the
// normal state after a crash: the log is cut at Offset by writing zeros over
// [Offset, End) and syncing before anything is appended. In any other segment
// it is corruption, because a later segment was only created after everything
// in this one was durable.
type TornTailError struct {
	// Segment names the segment (ReaderOptions.Name).
	Segment string
	// Offset is where the log ends: the start of the first invalid frame, or
	// of the incomplete atomic batch that frame belongs to. Records the
	// Reader returned from Offset on are not part of the log.
	Offset int64
	// End is the end of the region to zero: one past the last non-zero byte
	// of the file, and never less than the end of the last frame the cut
	// removes.
	End int64
	// LSN is the first LSN that is not part of the log (the LSN of the
	// record at Offset).
	LSN uint64
	// Reason says what was found at the end.
	Reason string
}

// Error describes the torn tail with its position.
func (e *TornTailError) Error() string {
	return fmt.Sprintf("segment: %s:%d: torn tail: %s (cut [%d,%d), first lost lsn %d)", e.Segment, e.Offset, e.Reason, e.Offset, e.End, e.LSN)
}

// Unwrap returns ErrTornTail.
func (e *TornTailError) Unwrap() error { return ErrTornTail }
