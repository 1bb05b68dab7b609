package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Result is one measured run (Type "run") or the median of a group of runs
// (Type "median"). It is one line of results.jsonl.
type Result struct {
	Type     string `json:"type"`
	Workload string `json:"workload"` // sync, bulk, replay-cold, replay-warm
	Adapter  string `json:"adapter"`
	Size     int    `json:"size"`              // record payload bytes
	Writers  int    `json:"writers,omitempty"` // sync: concurrent appenders
	Rep      int    `json:"rep"`               // repetition (run lines); run count (median lines)
	Seq      int    `json:"seq,omitempty"`     // position in the interleaved order

	Ops       int64   `json:"ops"`   // appends (sync, bulk) or records read (replay)
	Bytes     int64   `json:"bytes"` // payload bytes
	Secs      float64 `json:"secs"`
	OpsPerSec float64 `json:"ops_per_s"`
	MBPerSec  float64 `json:"mb_per_s"` // payload, 1e6 bytes

	P50us  float64 `json:"p50_us,omitempty"`
	P99us  float64 `json:"p99_us,omitempty"`
	P999us float64 `json:"p999_us,omitempty"`

	CPUSecsPerGB  float64 `json:"cpu_s_per_gb"`
	AllocsPerOp   float64 `json:"allocs_per_op"`
	DevBytesPerOp float64 `json:"dev_bytes_per_op"`

	PeakRSSMiB float64 `json:"peak_rss_mib,omitempty"` // replay: VmHWM during the replay
	BaseRSSMiB float64 `json:"base_rss_mib,omitempty"` // replay: VmRSS before it
	Resident   float64 `json:"resident,omitempty"`     // replay: fraction of the log's pages cached before it
	Checksums  bool    `json:"checksums,omitempty"`    // replay: every record's checksum verified

	Load  string         `json:"loadavg,omitempty"`
	Err   string         `json:"err,omitempty"`
	Extra map[string]any `json:"extra,omitempty"`
}

// runner holds what every run needs.
type runner struct {
	root  string // parent of the fresh per-run directories
	meter *meter
	emit  func(Result)
	seq   int
}

func (r *runner) freshDir(name string) (string, error) {
	return os.MkdirTemp(r.root, name+"-")
}

// settle puts the runtime in the same state before every run: garbage from
// the previous run collected and returned, so that GC work and RSS are not
// carried from one library to the next.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

func payload(size int, seed uint64) []byte {
	p := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// writerState is one appender's counters, padded apart.
type writerState struct {
	h   hist
	n   int64
	err error
	_   [64]byte
}

// runSync runs `writers` goroutines that each append a record of `size`
// bytes and wait for it to be durable, again and again. Counters are taken
// over [warmup, warmup+dur]; only appends that complete inside the window
// count.
func (r *runner) runSync(a *Adapter, size, writers, rep int, warmup, dur time.Duration) Result {
	res := Result{Type: "run", Workload: "sync", Adapter: a.Name, Size: size, Writers: writers, Rep: rep, Load: loadavg()}
	r.seq++
	res.Seq = r.seq
	dir, err := r.freshDir(a.Name)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer os.RemoveAll(dir)
	settle()
	t0 := time.Now()
	l, err := a.Open(dir, OpenOptions{Mode: ModeSync})
	if err != nil {
		res.Err = "open: " + err.Error()
		return res
	}
	openSecs := time.Since(t0).Seconds()
	var phase atomic.Int32 // 0 warm-up, 1 measuring, 2 stop
	ws := make([]writerState, writers)
	bufs := make([][]byte, writers)
	for i := range bufs {
		bufs[i] = payload(size, uint64(i))
	}
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func(st *writerState, p []byte) {
			defer wg.Done()
			for phase.Load() < 2 {
				t0 := time.Now()
				if err := l.Append(p); err != nil {
					st.err = err
					return
				}
				if phase.Load() == 1 {
					st.h.add(time.Since(t0))
					st.n++
				}
			}
		}(&ws[i], bufs[i])
	}
	time.Sleep(warmup)
	s0 := r.meter.snap()
	phase.Store(1)
	time.Sleep(dur)
	phase.Store(2)
	s1 := r.meter.snap()
	wg.Wait()
	res.Extra = map[string]any{}
	if rs, ok := l.(interface{ stats() map[string]any }); ok {
		res.Extra = rs.stats()
	}
	res.Extra["open_s"] = openSecs
	t1 := time.Now()
	cerr := l.Close()
	res.Extra["close_s"] = time.Since(t1).Seconds()

	var h hist
	for i := range ws {
		h.merge(&ws[i].h)
		res.Ops += ws[i].n
		if ws[i].err != nil && res.Err == "" {
			res.Err = ws[i].err.Error()
		}
	}
	if cerr != nil && res.Err == "" {
		res.Err = "close: " + cerr.Error()
	}
	res.Bytes = res.Ops * int64(size)
	u := diff(s0, s1, res.Ops, res.Bytes)
	res.fill(u)
	res.P50us = float64(h.quantile(0.50)) / 1e3
	res.P99us = float64(h.quantile(0.99)) / 1e3
	res.P999us = float64(h.quantile(0.999)) / 1e3
	return res
}

func (res *Result) fill(u usage) {
	res.Secs = u.Secs
	if u.Secs > 0 {
		res.OpsPerSec = float64(res.Ops) / u.Secs
		res.MBPerSec = float64(res.Bytes) / u.Secs / 1e6
	}
	res.CPUSecsPerGB = u.CPUSecsPerGB
	res.AllocsPerOp = u.AllocsPerOp
	res.DevBytesPerOp = u.DevBytesPerOp
}

// recordPayload fills p with a recognisable record: its index in the first
// 8 bytes, the rest a fixed pattern.
func stampIndex(p []byte, i uint64) { binary.LittleEndian.PutUint64(p, i) }

// writeBulk appends n records of size bytes through the bulk path and syncs
// once at the end. It returns the snapshots around the timed part.
func (r *runner) writeBulk(a *Adapter, dir string, n int64, size int) (s0, s1 snapshot, err error) {
	l, err := a.Open(dir, OpenOptions{Mode: ModeBulk, Capacity: n * int64(size+64)})
	if err != nil {
		return s0, s1, fmt.Errorf("open: %w", err)
	}
	p := payload(size, 42)
	s0 = r.meter.snap()
	for i := range n {
		stampIndex(p, uint64(i))
		if err = l.BulkAppend(p); err != nil {
			l.Close()
			return s0, s1, fmt.Errorf("record %d: %w", i, err)
		}
	}
	if err = l.BulkSync(); err != nil {
		l.Close()
		return s0, s1, fmt.Errorf("sync: %w", err)
	}
	s1 = r.meter.snap()
	if err = l.Close(); err != nil {
		return s0, s1, fmt.Errorf("close: %w", err)
	}
	return s0, s1, nil
}

// runBulk: n records of size bytes, no per-record sync, one sync at the end.
func (r *runner) runBulk(a *Adapter, n int64, size, rep int) Result {
	res := Result{Type: "run", Workload: "bulk", Adapter: a.Name, Size: size, Rep: rep, Load: loadavg()}
	r.seq++
	res.Seq = r.seq
	dir, err := r.freshDir(a.Name)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer os.RemoveAll(dir)
	settle()
	s0, s1, err := r.writeBulk(a, dir, n, size)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.Ops, res.Bytes = n, n*int64(size)
	res.fill(diff(s0, s1, res.Ops, res.Bytes))
	return res
}

// runReplay writes a log of about `bytes` bytes of size-byte records
// (untimed), then reads it back twice: cold (the log's pages evicted from the
// page cache first) and warm. Each read is a full restart: open, read every
// record, close.
func (r *runner) runReplay(a *Adapter, bytes int64, size, rep int) []Result {
	base := Result{Type: "run", Adapter: a.Name, Size: size, Rep: rep, Checksums: a.Checksums}
	fail := func(err error) []Result {
		out := base
		out.Workload, out.Err, out.Load = "replay-cold", err.Error(), loadavg()
		r.seq++
		out.Seq = r.seq
		return []Result{out}
	}
	dir, err := r.freshDir(a.Name)
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	settle()
	n := bytes / int64(size)
	if _, _, err := r.writeBulk(a, dir, n, size); err != nil {
		return fail(fmt.Errorf("writing the log: %w", err))
	}
	var out []Result
	for _, kind := range []string{"replay-cold", "replay-warm"} {
		res := base
		res.Workload, res.Load = kind, loadavg()
		r.seq++
		res.Seq = r.seq
		if kind == "replay-cold" {
			if err := evict(dir); err != nil {
				res.Err = "evict: " + err.Error()
				out = append(out, res)
				continue
			}
		}
		res.Resident = residentFraction(dir)
		settle()
		_ = resetPeakRSS()
		rss0, _ := rssKB()
		var got int64
		verify := func(p []byte) error {
			if len(p) != size {
				return fmt.Errorf("record %d: %d bytes, want %d", got, len(p), size)
			}
			if i := binary.LittleEndian.Uint64(p); i != uint64(got) {
				return fmt.Errorf("record %d carries index %d", got, i)
			}
			got++
			return nil
		}
		var ph phases
		s0 := r.meter.snap()
		err := a.Replay(dir, verify, &ph)
		s1 := r.meter.snap()
		_, hwm := rssKB()
		if err == nil && got != n {
			err = fmt.Errorf("replayed %d records of %d", got, n)
		}
		if err != nil {
			res.Err = err.Error()
		}
		res.Ops, res.Bytes = got, got*int64(size)
		res.fill(diff(s0, s1, res.Ops, res.Bytes))
		res.Extra = map[string]any{"open_s": ph.Open.Seconds(), "read_s": ph.Read.Seconds(), "close_s": ph.Close.Seconds()}
		if ph.Read > 0 {
			res.Extra["read_mb_per_s"] = float64(res.Bytes) / ph.Read.Seconds() / 1e6
		}
		res.BaseRSSMiB = float64(rss0) / 1024
		res.PeakRSSMiB = float64(hwm) / 1024
		out = append(out, res)
	}
	return out
}
