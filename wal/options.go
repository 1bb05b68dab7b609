package wal

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ringwal/ringwal/internal/ring"
	"github.com/ringwal/ringwal/segment"
)

// Backend selects how batches reach the disk.
type Backend string

const (
	// BackendAuto uses io_uring when the kernel allows it (a probe ring with
	// a registered buffer can be set up) and pwrite otherwise.
	BackendAuto Backend = "auto"
	// BackendURing writes each batch as IORING_OP_WRITE_FIXED linked to an
	// fdatasync. Open fails if io_uring is unavailable.
	BackendURing Backend = "uring"
	// BackendPwrite writes each batch with pwrite(2) followed by
	// fdatasync(2), from MaxInFlight flusher goroutines (or, for an
	// appender that waits alone with nothing in flight, from the appender
	// itself). Same format, same group commit, same guarantees.
	BackendPwrite Backend = "pwrite"
)

// RecoveryMode says what Open does when it finds corruption (as opposed to a
// torn tail, which is always cut: a crash leaves one).
type RecoveryMode int

const (
	// RecoverStrict refuses to open a log with corruption: Open returns an
	// error wrapping segment.ErrCorrupt that names segment and offset.
	// Nothing is modified. This is the default.
	RecoverStrict RecoveryMode = iota
	// RecoverTruncate keeps the log up to the last good record before the
	// first corruption and drops everything after it, so the log opens: the
	// damaged segment is copied whole to *.broken and its tail zeroed from
	// the damage (or from the start of the atomic batch the damage falls
	// in, which is dropped whole), and later segments are renamed to
	// *.broken. Nothing is deleted, but records after the damage are no
	// longer in the log: an operator's choice, like RocksDB's
	// kPointInTimeRecovery.
	RecoverTruncate
)

// Prealloc says how a new segment's space is reserved before records are
// written into it.
type Prealloc int

const (
	// PreallocZero writes zeros over the whole segment when it is prepared,
	// off the hot path. fdatasync after overwriting written blocks commits no
	// extent conversion, so durable appends are faster. A rotation that finds
	// the zero-fill unfinished does not wait for it: the rest of that file
	// is fallocated. A segment filled mostly by AppendAsync records (a bulk
	// load, which syncs rarely) is followed by a fallocated one, so bulk data
	// is not written twice, and so is a segment whose durable batches
	// averaged 512 KiB or more: for batches that large, the zeros cost more
	// device bytes and disk bandwidth than the extent conversions save.
	PreallocZero Prealloc = iota
	// PreallocFallocate reserves space with fallocate(2): quick to prepare,
	// slower to sync into (unwritten extents are converted at each sync).
	//
	// On a file system without fallocate(2) (ext2, ramfs, some NFS and FUSE
	// file systems) every segment, in either mode, is zero-filled instead,
	// and the log logs that once.
	PreallocFallocate
)

// Options configures a log. The zero value is usable: every zero field takes
// the default named in its comment.
type Options struct {
	// SegmentSize is the size of each segment file (default 64 MiB). A
	// segment must hold at least one frame of MaxRecordSize after its
	// header. At most 4 GiB. The log keeps every segment file open (one
	// descriptor each): a log of more segments than RLIMIT_NOFILE allows
	// fails to open ("too many open files"); drop old segments with
	// TruncateFront, or use larger segments.
	SegmentSize int64
	// BufferSize is the size of each registered buffer that batches are
	// built in (default 256 KiB). Records whose frame is larger are written
	// from a buffer of their own.
	BufferSize int
	// BufferCount is the number of registered buffers (default 16, at
	// least 2). BufferSize*BufferCount is locked memory: unprivileged
	// processes are limited by RLIMIT_MEMLOCK (often 8 MiB), and BackendAuto
	// falls back to pwrite when registration fails. On io_uring, replay's
	// READ_FIXED reads lock 3 MiB more once something reads (the first
	// NewReader, or Open with VerifyOnOpen); when that registration fails,
	// the log logs it and readers read with pread. A reader of segments not
	// in the page cache locks 4 MiB more while it reads them, where the
	// limit allows; otherwise it reads them with 4 MiB preads.
	BufferCount int
	// MaxInFlight is how many batches may be written and synced at once
	// (default 4). A batch that appenders wait for does not join chains
	// already in flight, whatever its size: it waits for the chain ahead
	// and grows, because on the disks measured one sync carrying many
	// records beat several carrying few (PERFORMANCE.md), with one
	// exception: a batch holding half of the appenders that wait joins a
	// single chain in flight, so two cohorts of appenders overlap their
	// fdatasyncs. Bulk traffic (AppendAsync) uses the depth: its batches
	// join chains in flight once they hold half a buffer.
	MaxInFlight int
	// MaxRecordSize is the largest record accepted (default 16 MiB, at most
	// segment.MaxRecordSizeLimit). Larger records get ErrRecordTooLarge.
	MaxRecordSize int
	// Backend selects io_uring or pwrite (default BackendAuto).
	Backend Backend
	// Prealloc selects how segments are prepared (default PreallocZero).
	Prealloc Prealloc
	// RecycleSegments is how many segment files dropped by TruncateFront
	// are kept, under temporary names, to be reused for new segments
	// (default 2; negative: none, every dropped file is removed). They
	// take disk space as the segments did; the file made ready for the
	// next rotation, recycled or new, comes on top of them. A reused
	// file is overwritten in place, neither zero-filled nor fallocated:
	// its blocks are already written, so durable appends into it write no
	// zeros and convert no extents (the segment format's "Recycled
	// segments"). Files of another size are not reused. Kept files are
	// removed at Close and at the next Open.
	RecycleSegments int
	// NoPadding packs every batch right after the one before it. By
	// default a batch whose chain syncs ends on a 4 KiB page boundary,
	// padded with zeros (segment.FlagPadToPage), when the padding is at
	// most a quarter of the batch's bytes: the next batch then starts on a
	// page of its own instead of writing this batch's last page again
	// (device bytes per durable 1 KiB append at 16 appenders: about a fifth
	// fewer on the disk measured, PERFORMANCE.md). The padding takes at
	// most a fifth of a segment. Segments of format version 1 (written
	// before version 2) are never padded.
	NoPadding bool
	// Recovery says what Open does on corruption (default RecoverStrict).
	Recovery RecoveryMode
	// VerifyOnOpen makes Open read and verify every record of every
	// segment. By default Open checks every segment's header and the
	// continuity of sequence numbers and base LSNs, and reads only the last
	// segment (where a crash can leave a torn tail); the records of sealed
	// segments are verified when they are read (Read and Reader return a
	// *segment.CorruptionError naming segment and offset) or by
	// `walctl verify`. Sealed segments were synced whole before the next
	// segment got its first record, so skipping them at Open skips nothing
	// a crash can damage. RecoverTruncate always verifies everything: it
	// must find where to cut.
	VerifyOnOpen bool
	// ReplayHugePages asks the kernel to read segments a Reader finds on
	// the disk into 2 MiB page-cache folios (transparent huge pages), which
	// the reader then maps with one page-table entry each: a replay of them
	// from the page cache faults 2 MiB at a time instead of 64 KiB. It
	// applies where a Reader reads through mapped windows (the pwrite
	// backend), on kernels and filesystems that cache files in large folios
	// (ext4 on Linux 6.18 here) with transparent huge pages "madvise" or
	// "always"; elsewhere it changes nothing. Off by default: on a virtual
	// machine that reports free memory to its host (virtio-balloon free
	// page reporting), the first touch of a 2 MiB page recycled from that
	// memory is slow, and cold replays ran a third slower on the machine
	// measured (PERFORMANCE.md, "Cold replay").
	ReplayHugePages bool
	// Logger receives rare events: recovery actions, rotation, failures
	// (default: discard).
	Logger *slog.Logger

	// Test hooks.
	wrapSubmitter func(ring.Submitter) ring.Submitter        // wraps the backend
	fileIO        fileIO                                     // pwrite backend's syscalls (and rescues')
	newReadRing   func() (*readRing, error)                  // replay's ring (tests make it fail)
	newColdRing   func() (*readRing, error)                  // the cold-replay ring (tests make it fail)
	refuseMap     error                                      // replay's mappings fail with it
	cacheProbe    func(fd int, off, n int64) (float64, bool) // replay's page-cache probe (default fsys.Cached)
	rescueAfter   time.Duration                              // 0: rescueAfter
	noGather      bool                                       // no gathering (gatherLocked)
	noInline      bool                                       // no chains run by their appender (inlineLocked)
}

// Defaults.
const (
	DefaultSegmentSize   = 64 << 20
	DefaultBufferSize    = 256 << 10
	DefaultBufferCount   = 16
	DefaultMaxInFlight   = 4
	DefaultMaxRecordSize = segment.DefaultMaxRecordSize
	DefaultRecycle       = 2
)

// withDefaults fills in zero fields and validates the result.
func (o Options) withDefaults() (Options, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.rescueAfter == 0 {
		o.rescueAfter = rescueAfter
	}
	if o.BufferSize == 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.BufferCount == 0 {
		o.BufferCount = DefaultBufferCount
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxRecordSize == 0 {
		o.MaxRecordSize = DefaultMaxRecordSize
	}
	if o.Backend == "" {
		o.Backend = BackendAuto
	}
	switch {
	case o.RecycleSegments == 0:
		o.RecycleSegments = DefaultRecycle
	case o.RecycleSegments < 0:
		o.RecycleSegments = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case o.SegmentSize < 0 || o.SegmentSize > 1<<32:
		return o, fmt.Errorf("wal: SegmentSize %d outside (0, 4 GiB]", o.SegmentSize)
	case o.BufferSize < 0 || o.BufferSize < segment.FrameHeaderSize && o.BufferSize != 0:
		return o, fmt.Errorf("wal: BufferSize %d below %d", o.BufferSize, segment.FrameHeaderSize)
	case o.BufferCount < 2 || o.BufferCount > 1024:
		return o, fmt.Errorf("wal: BufferCount %d outside [2, 1024]", o.BufferCount)
	case o.MaxInFlight < 1 || o.MaxInFlight > 64:
		return o, fmt.Errorf("wal: MaxInFlight %d outside [1, 64]", o.MaxInFlight)
	case o.MaxRecordSize < 0 || o.MaxRecordSize > segment.MaxRecordSizeLimit:
		return o, fmt.Errorf("wal: MaxRecordSize %d outside [0, %d]", o.MaxRecordSize, segment.MaxRecordSizeLimit)
	case o.SegmentSize < segment.DataOffset+int64(segment.FrameSize(o.MaxRecordSize)):
		return o, fmt.Errorf("wal: SegmentSize %d cannot hold a record of MaxRecordSize %d (needs %d)",
			o.SegmentSize, o.MaxRecordSize, segment.DataOffset+int64(segment.FrameSize(o.MaxRecordSize)))
	case o.Backend != BackendAuto && o.Backend != BackendURing && o.Backend != BackendPwrite:
		return o, fmt.Errorf("wal: unknown Backend %q (want auto, uring or pwrite)", o.Backend)
	case o.Prealloc != PreallocZero && o.Prealloc != PreallocFallocate:
		return o, fmt.Errorf("wal: unknown Prealloc %d", o.Prealloc)
	case o.Recovery != RecoverStrict && o.Recovery != RecoverTruncate:
		return o, fmt.Errorf("wal: unknown Recovery %d", o.Recovery)
	}
	return o, nil
}
