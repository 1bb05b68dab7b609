package wal

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/ringwal/ringwal/bufpool"
)

// latencySamples is how many recent chain latencies Stats keeps for
// percentiles.
const latencySamples = 8192

type stats struct {
	appends   atomic.Uint64
	rotations atomic.Uint64
	kicks     atomic.Uint64
	rescues   atomic.Uint64
	recycled  atomic.Uint64
	padBytes  atomic.Uint64
	inline    atomic.Uint64

	mu          sync.Mutex
	batches     uint64
	records     uint64
	bytes       uint64
	syncs       uint64
	maxInFlight int
	lat         [latencySamples]time.Duration
	latN        int
}

func (s *stats) noteInFlight(n int) {
	s.mu.Lock()
	s.maxInFlight = max(s.maxInFlight, n)
	s.mu.Unlock()
}

func (s *stats) noteBatch(b *batch, lat time.Duration) {
	s.mu.Lock()
	if b.nrec > 0 { // not a sync-only chain
		s.batches++
		s.records += uint64(b.nrec)
		s.bytes += uint64(b.bytes)
	}
	if b.sync {
		s.syncs++
	}
	if b.syncDir {
		s.syncs++
	}
	s.lat[s.latN%latencySamples] = lat
	s.latN++
	s.mu.Unlock()
}

// Stats is a snapshot of a log's counters.
type Stats struct {
	Backend  Backend // BackendURing or BackendPwrite
	Appends  uint64  // records acknowledged to Append/AppendBatch callers
	Records  uint64  // records written by completed chains
	Bytes    uint64  // payload bytes written by completed chains
	Batches  uint64  // chains with records completed (write + fdatasync, or write only for AppendAsync records)
	Fsyncs   uint64  // fdatasync/fsync calls completed successfully
	AvgBatch float64 // records per batch
	// PadBytes counts the zeros laid to end batches whose chain syncs on a
	// page boundary (Options.NoPadding).
	PadBytes uint64

	// Latency of a chain from submission to completion, over the most
	// recent 8192 chains.
	SyncP50, SyncP99, SyncP999, SyncMax time.Duration

	InFlight    int // chains in flight now
	MaxInFlight int // most chains ever in flight at once

	Segments  int
	Rotations uint64
	// Recycled counts rotations into a recycled file (one TruncateFront
	// dropped; Options.RecycleSegments), which needed no preparation.
	Recycled uint64
	// ZeroFilled and Fallocated count the new segment files the log
	// prepared by writing zeros and by fallocate(2) (Options.Prealloc;
	// segments filled mostly by AppendAsync records, or by durable batches
	// of 512 KiB and more on average, are followed by fallocated ones).
	// FillsHurried counts zero-fills a waiting rotation cut short, the rest
	// of the file fallocated: appends into that part sync more slowly. A
	// count that keeps rising means the disk does not take the zeros as
	// fast as the log fills segments (more RecycleSegments, or
	// PreallocFallocate, avoid the zeros).
	ZeroFilled, Fallocated, FillsHurried uint64
	// Kicks counts no-op submissions (io_uring backend) made because a
	// chain was in flight for more than a second: each wakes the ring
	// library's reaper, in case a completion's wake-up went missing.
	Kicks uint64
	// Inline counts chains (pwrite backend) that the one appender waiting
	// ran on its own goroutine, instead of a flusher goroutine and the
	// completer: with nothing else in flight, this saves an append three
	// goroutine wake-ups around its fdatasync (see PERFORMANCE.md).
	Inline uint64
	// Rescues counts chains (io_uring backend) still in flight after 5 s,
	// which the log then wrote and synced itself with pwrite and
	// fdatasync instead of waiting for the kernel (see PERFORMANCE.md).
	Rescues  uint64
	FirstLSN uint64
	LastLSN  uint64
	Failed   error // non-nil once the log failed
	Pool     bufpool.Stats

	// Replay through io_uring: IORING_OP_READ_FIXED reads completed and the
	// bytes they read. Zero on the pwrite backend, and on io_uring before
	// the first reader or when replay's ring could not be set up (the log
	// logs why; readers then read with pread).
	ReadFixedOps   uint64
	ReadFixedBytes uint64
}

// String summarises the stats on one line. Recycled rotations, inline
// chains, prepared files, hurried fills, kicks, rescues and a failure are
// shown only when there are any.
func (s Stats) String() string {
	str := fmt.Sprintf("backend=%s records=%d bytes=%s batches=%d avg_batch=%.1f fsyncs=%d sync_p50=%v sync_p99=%v inflight=%d/%d segments=%d",
		s.Backend, s.Records, humanize.Bytes(s.Bytes), s.Batches, s.AvgBatch, s.Fsyncs, s.SyncP50, s.SyncP99, s.InFlight, s.MaxInFlight, s.Segments)
	if s.PadBytes > 0 {
		str += fmt.Sprintf(" padding=%s", humanize.Bytes(s.PadBytes))
	}
	if s.Recycled > 0 {
		str += fmt.Sprintf(" recycled=%d", s.Recycled)
	}
	if s.Inline > 0 {
		str += fmt.Sprintf(" inline=%d", s.Inline)
	}
	if s.ZeroFilled > 0 || s.Fallocated > 0 {
		str += fmt.Sprintf(" prepared=zeros:%d,fallocate:%d", s.ZeroFilled, s.Fallocated)
	}
	if s.FillsHurried > 0 {
		str += fmt.Sprintf(" fills_hurried=%d", s.FillsHurried)
	}
	if s.Kicks > 0 || s.Rescues > 0 {
		str += fmt.Sprintf(" kicks=%d rescues=%d", s.Kicks, s.Rescues)
	}
	if s.Failed != nil {
		str += fmt.Sprintf(" failed=%q", s.Failed.Error())
	}
	return str
}

// Stats returns a snapshot of the log's counters.
func (w *WAL) Stats() Stats {
	w.mu.Lock()
	st := Stats{
		Backend:  w.backend,
		InFlight: w.inflight,
		Segments: len(w.segs),
		FirstLSN: w.FirstLSN(),
		LastLSN:  w.LastLSN(),
		Failed:   w.failed,
	}
	w.mu.Unlock()
	st.Appends = w.stats.appends.Load()
	st.Rotations = w.stats.rotations.Load()
	st.Recycled = w.stats.recycled.Load()
	st.ZeroFilled = w.prep.prepared[PreallocZero].Load()
	st.Fallocated = w.prep.prepared[PreallocFallocate].Load()
	st.FillsHurried = w.prep.cutShort.Load()
	st.PadBytes = w.stats.padBytes.Load()
	st.Kicks = w.stats.kicks.Load()
	st.Rescues = w.stats.rescues.Load()
	st.Inline = w.stats.inline.Load()
	if w.pool != nil {
		st.Pool = w.pool.Stats()
	}
	st.ReadFixedOps, st.ReadFixedBytes = w.readCtr.reads.Load(), w.readCtr.bytes.Load()

	s := &w.stats
	s.mu.Lock()
	st.Records, st.Bytes, st.Batches, st.Fsyncs, st.MaxInFlight = s.records, s.bytes, s.batches, s.syncs, s.maxInFlight
	n := min(s.latN, latencySamples)
	lat := slices.Clone(s.lat[:n])
	s.mu.Unlock()
	if st.Batches > 0 {
		st.AvgBatch = float64(st.Records) / float64(st.Batches)
	}
	if n > 0 {
		slices.Sort(lat)
		pct := func(p float64) time.Duration { return lat[min(n-1, int(p*float64(n)))] }
		st.SyncP50, st.SyncP99, st.SyncP999, st.SyncMax = pct(0.50), pct(0.99), pct(0.999), lat[n-1]
	}
	return st
}
