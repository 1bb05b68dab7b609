package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ringwal/ringwal/wal"
)

// Mode says how a log is about to be driven.
type Mode int

const (
	// ModeSync: Append from many goroutines, each durable on return.
	ModeSync Mode = iota
	// ModeBulk: BulkAppend from one goroutine, then one BulkSync.
	ModeBulk
)

// OpenOptions are the hints the harness gives an adapter.
type OpenOptions struct {
	Mode Mode
	// Capacity is how many bytes of records the run will write at most (0:
	// unknown). Only the raw baseline uses it, to size its pre-zeroed file.
	Capacity int64
}

// Log is one open log under test.
type Log interface {
	// Append writes p as one record and returns once it is durable. Safe for
	// concurrent use; p is not retained after Append returns.
	Append(p []byte) error
	// BulkAppend writes p as one record without waiting for durability.
	// Called from one goroutine; p may be reused once it returns.
	BulkAppend(p []byte) error
	// BulkSync makes every BulkAppend durable.
	BulkSync() error
	// Close releases the log. Everything acknowledged stays durable.
	Close() error
}

// Adapter is one library (and one way of driving it).
type Adapter struct {
	Name string
	// Lib groups adapters sharing an on-disk format: bulk and replay run
	// once per Lib, through its first adapter.
	Lib string
	// How the durable append path works, for the results legend.
	How string
	// Checksums says whether Replay verifies a checksum of every record.
	Checksums bool
	// ChecksumNote explains a "no" in Checksums.
	ChecksumNote string
	// BulkNote says how BulkAppend/BulkSync map onto the library.
	BulkNote string

	Open func(dir string, o OpenOptions) (Log, error)
	// Replay opens the log in dir (as a restarting process would), reads
	// every record in order, calls fn with each payload (valid only during
	// the call) and closes the log.
	Replay func(dir string, fn func(p []byte) error, ph *phases) error
	// Primary marks the adapter that runs bulk and replay for its Lib.
	Primary bool
	// NoReplay: a primary adapter that runs bulk but not replay (the
	// steady-state variants: their replay is the fresh adapter's).
	NoReplay bool
}

// adapters lists everything the harness can run, in table order.
func adapters() []*Adapter {
	return []*Adapter{
		ringwalAdapter("ringwal-uring", true),
		ringwalAdapter("ringwal-pwrite", false),
		ringwalSteady("ringwal-uring-steady", true),
		ringwalSteady("ringwal-pwrite-steady", false),
		pebbleAdapter(),
		rawAdapter(),
		raftwalAdapter(false),
		raftwalAdapter(true),
		tidwallAdapter(false),
		tidwallAdapter(true),
		etcdAdapter(false),
		etcdAdapter(true),
	}
}

// experiments are ringwal with non-default Options, and raw-pad, run only
// when named in -adapters: they show what the existing knobs give, without
// touching wal/, and what page-aligned flushes would give the baseline.
func experiments() []*Adapter {
	return []*Adapter{
		ringwalVariant("ringwal-uring-if1", true, "MaxInFlight 1", wal.Options{MaxInFlight: 1}),
		ringwalVariant("ringwal-uring-if2", true, "MaxInFlight 2", wal.Options{MaxInFlight: 2}),
		ringwalVariant("ringwal-uring-if8", true, "MaxInFlight 8", wal.Options{MaxInFlight: 8}),
		ringwalVariant("ringwal-uring-falloc", true, "Prealloc fallocate", wal.Options{Prealloc: wal.PreallocFallocate}),
		ringwalVariant("ringwal-pwrite-if1", false, "MaxInFlight 1", wal.Options{MaxInFlight: 1}),
		ringwalVariant("ringwal-pwrite-falloc", false, "Prealloc fallocate", wal.Options{Prealloc: wal.PreallocFallocate}),
		ringwalVariant("ringwal-pwrite-seg256", false, "SegmentSize 256 MiB", wal.Options{SegmentSize: 256 << 20}),
		ringwalVariant("ringwal-uring-seg256", true, "SegmentSize 256 MiB", wal.Options{SegmentSize: 256 << 20}),
		ringwalSteadyVariant("ringwal-pwrite-steady-if1", false, "MaxInFlight 1", wal.Options{MaxInFlight: 1}),
		ringwalSteadyVariant("ringwal-pwrite-steady-if2", false, "MaxInFlight 2", wal.Options{MaxInFlight: 2}),
		ringwalSteadyVariant("ringwal-pwrite-steady-if8", false, "MaxInFlight 8", wal.Options{MaxInFlight: 8}),
		ringwalSteadyVariant("ringwal-uring-steady-if1", true, "MaxInFlight 1", wal.Options{MaxInFlight: 1}),
		ringwalSteadyVariant("ringwal-uring-steady-if2", true, "MaxInFlight 2", wal.Options{MaxInFlight: 2}),
		ringwalSteadyVariant("ringwal-pwrite-steady-r8", false, "RecycleSegments 8", wal.Options{RecycleSegments: 8}),
		ringwalSteadyVariant("ringwal-pwrite-steady-falloc", false, "Prealloc fallocate", wal.Options{Prealloc: wal.PreallocFallocate}),
		ringwalSteadyVariant("ringwal-pwrite-steady-nopad", false, "NoPadding", wal.Options{NoPadding: true}),
		ringwalSteadyVariant("ringwal-uring-steady-nopad", true, "NoPadding", wal.Options{NoPadding: true}),
		ringwalVariant("ringwal-pwrite-huge", false, "ReplayHugePages", wal.Options{ReplayHugePages: true}),
		rawPadAdapter(),
	}
}

func selectAdapters(list string) ([]*Adapter, error) {
	if list == "" || list == "all" {
		return adapters(), nil
	}
	all := append(adapters(), experiments()...)
	var out []*Adapter
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, a := range all {
			if a.Name == name {
				out = append(out, a)
				found = true
			}
		}
		if !found {
			var names []string
			for _, a := range all {
				names = append(names, a.Name)
			}
			return nil, fmt.Errorf("unknown adapter %q (have %s)", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}

// phases splits a replay's time: opening the log (recovery), reading every
// record, closing it. Adapters fill in what they can tell apart.
type phases struct {
	Open, Read, Close time.Duration
	last              time.Time
}

func (p *phases) start() { p.last = time.Now() }

// lap returns the time since the previous mark and sets a new mark.
func (p *phases) lap() time.Duration {
	now := time.Now()
	d := now.Sub(p.last)
	p.last = now
	return d
}

var errNoBulk = errors.New("bulk mode not opened")

// bulkArena gathers bulk records into chunks for libraries whose only write
// call is durable (one sync per call): the chunk's records are copied into
// one arena and handed over together.
type bulkArena struct {
	limit int
	buf   []byte
	ends  []int
	recs  [][]byte
}

func newBulkArena(limit int) *bulkArena {
	return &bulkArena{limit: limit, buf: make([]byte, 0, limit+64<<10)}
}

// add copies p in and reports whether the chunk is full.
func (a *bulkArena) add(p []byte) bool {
	a.buf = append(a.buf, p...)
	a.ends = append(a.ends, len(a.buf))
	return len(a.buf) >= a.limit
}

// records returns the chunk's records (valid until reset).
func (a *bulkArena) records() [][]byte {
	a.recs = a.recs[:0]
	start := 0
	for _, e := range a.ends {
		a.recs = append(a.recs, a.buf[start:e:e])
		start = e
	}
	return a.recs
}

func (a *bulkArena) reset() {
	a.buf = a.buf[:0]
	a.ends = a.ends[:0]
}

func (a *bulkArena) empty() bool { return len(a.ends) == 0 }

// bulkChunk is the size of one durable write call for libraries without an
// unsynced append (set by -bulk-chunk).
var bulkChunk = 4 << 20
