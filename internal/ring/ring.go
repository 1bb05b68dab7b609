// Package ring is the project's thin, checked layer over
// github.com/iceber/iouring-go.
//
// It exists to make the library's traps impossible to fall into from the rest
// of the code (see shared IOURING.md):
//
//   - Chains are built here, by setting IOSQE_IO_LINK on every op but the last
//     and submitting them with one SubmitRequests call. The library's
//     SubmitLinkRequests is never used: it sets HARDLINK on every entry, so a
//     failed write would not cancel the fsync behind it.
//   - Custom ops have no result resolver in the library, so Err() is always
//     nil. Every result is read with GetRes and checked here: a read or write
//     succeeds only when it moved exactly len(Buf) bytes, an fsync only when it
//     returned 0.
//   - Completions are observed through the request set's Done channel; no
//     result channel is ever handed to the library, so its reaper can never
//     block on a full channel.
//   - Heap buffers of non-fixed ops are referenced by the Completion until the
//     kernel is done with them.
package ring

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrClosed is returned by operations on a closed ring.
var ErrClosed = errors.New("ring: closed")

// Kind is the operation an Op performs.
type Kind uint8

// The operations the project uses.
const (
	// WriteFixed writes Buf, which must lie inside registered buffer
	// BufIndex, to Fd at Offset (IORING_OP_WRITE_FIXED).
	WriteFixed Kind = iota + 1
	// ReadFixed reads len(Buf) bytes at Offset into Buf, which must lie inside
	// registered buffer BufIndex (IORING_OP_READ_FIXED).
	ReadFixed
	// Write writes an ordinary (heap) buffer (IORING_OP_WRITE).
	Write
	// Read reads into an ordinary (heap) buffer (IORING_OP_READ).
	Read
	// Fdatasync flushes Fd's data and the metadata needed to read it
	// (IORING_OP_FSYNC with IORING_FSYNC_DATASYNC).
	Fdatasync
	// Fsync flushes Fd's data and all metadata (IORING_OP_FSYNC). Used for
	// directories.
	Fsync
	// SyncRange starts writeback of Fd's dirty pages in [Offset,
	// Offset+Size) and returns without waiting for it
	// (IORING_OP_SYNC_FILE_RANGE with SYNC_FILE_RANGE_WRITE). It makes
	// nothing durable; it keeps a later fdatasync short.
	SyncRange
)

func (k Kind) String() string {
	switch k {
	case WriteFixed:
		return "write_fixed"
	case ReadFixed:
		return "read_fixed"
	case Write:
		return "write"
	case Read:
		return "read"
	case Fdatasync:
		return "fdatasync"
	case Fsync:
		return "fsync"
	case SyncRange:
		return "sync_file_range"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// IsWrite reports whether k writes data.
func (k Kind) IsWrite() bool { return k == WriteFixed || k == Write }

// IsRead reports whether k reads data.
func (k Kind) IsRead() bool { return k == ReadFixed || k == Read }

// IsSync reports whether k is a flush or a writeback start: an op with no
// buffer that succeeds with 0.
func (k Kind) IsSync() bool { return k == Fdatasync || k == Fsync || k == SyncRange }

// Op is one submission queue entry.
type Op struct {
	Kind     Kind
	Fd       int
	Buf      []byte // data to write or room to read; nil for syncs
	BufIndex uint16 // registered buffer that holds Buf (fixed ops only)
	Offset   int64
	Size     uint32 // bytes of the range (SyncRange only)
}

// Len is the number of bytes the op must transfer (0 for syncs).
func (o Op) Len() int { return len(o.Buf) }

// Completion is a submitted chain. Results are valid once Done is closed.
type Completion interface {
	// Done is closed when every op of the chain has completed (successfully,
	// failed, or cancelled because an earlier link failed).
	Done() <-chan struct{}
	// Results returns the raw cqe.res of each op, in submission order. Only
	// valid after Done is closed.
	Results() []int32
}

// Releaser is implemented by Completions that are reused: the owner of a
// completed chain calls Release once it has read the Results and will not
// touch the Completion again, not even its Done channel. A Completion that
// is never released is simply left to the garbage collector.
type Releaser interface {
	Release()
}

// Submitter submits chains. *Ring implements it; tests wrap it to inject
// faults, delays and reordering.
type Submitter interface {
	// Submit queues ops as one chain: every op but the last is linked to the
	// next (IOSQE_IO_LINK), so an op runs only after the previous one
	// succeeded, and a failed or short op cancels the rest with -ECANCELED.
	// A single op is submitted unlinked. The chain goes to the kernel in one
	// io_uring_enter call. The caller must leave ops (and the buffers they
	// name) unchanged until Done is closed: they are not copied.
	Submit(ops []Op) (Completion, error)
}

// ErrShortIO reports a read or write that moved fewer bytes than asked.
// The kernel reports a short transfer as a positive byte count, not an errno.
var ErrShortIO = errors.New("ring: short transfer")

// OpError describes the op of a chain that did not do its whole job.
type OpError struct {
	Kind   Kind
	Index  int   // position in the chain
	Offset int64 // file offset of the op
	Len    int   // bytes asked for (0 for syncs)
	Res    int32 // raw cqe.res
}

func (e *OpError) Error() string {
	what := e.Kind.String()
	if e.Len > 0 {
		what = fmt.Sprintf("%s of %d bytes at offset %d", e.Kind, e.Len, e.Offset)
	}
	if e.Res >= 0 {
		return fmt.Sprintf("ring: %s: short transfer (%d bytes)", what, e.Res)
	}
	return fmt.Sprintf("ring: %s: %v", what, syscall.Errno(-e.Res))
}

// Unwrap returns the errno of a failed op, or ErrShortIO for a short one.
func (e *OpError) Unwrap() error {
	if e.Res >= 0 {
		return ErrShortIO
	}
	return syscall.Errno(-e.Res)
}

// Check verifies the results of a completed chain: every read and write must
// have moved exactly len(Buf) bytes and every sync must have returned 0. It
// returns an *OpError for the first op that did not, which is the cause; the
// ops behind it in the chain were cancelled by the kernel (-ECANCELED). An
// op cancelled with no failure before it is reported too: it is never taken
// as success.
func Check(ops []Op, res []int32) error {
	if len(res) != len(ops) {
		return fmt.Errorf("ring: %d results for a chain of %d ops", len(res), len(ops))
	}
	for i, op := range ops {
		r := res[i]
		ok := false
		switch {
		case op.Kind.IsSync():
			ok = r == 0
		default:
			ok = r >= 0 && int(r) == len(op.Buf)
		}
		if !ok {
			return &OpError{Kind: op.Kind, Index: i, Offset: op.Offset, Len: len(op.Buf), Res: r}
		}
	}
	return nil
}

// Wait blocks until c completes and checks its results against ops.
func Wait(c Completion, ops []Op) error {
	<-c.Done()
	return Check(ops, c.Results())
}
