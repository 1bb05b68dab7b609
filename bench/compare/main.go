// Command compare runs the same write-ahead-log workloads through this
// project's wal and its Go peers, interleaved in one process, and writes the
// results as JSON lines, a markdown table and an SVG chart.
//
//	cd bench/compare && GOFLAGS=-ldflags=-checklinkname=0 go run . -out ../results
//
// Workloads (issue 7): sync (C concurrent writers, each append durable before
// the writer's next; C=1 is sync1), bulk (records without per-record sync,
// one sync at the end), replay (a log read back with checksums verified,
// cold and warm). Every run gets a fresh directory; runs are interleaved
// (A B C, C B A, ...) and repeated; medians are reported.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

type config struct {
	out, dir     string
	adapters     []*Adapter
	sizes        []int
	writers      []int
	workloads    map[string]bool
	reps         int
	warmup, dur  time.Duration
	bulkRecords  int64
	bulkSize     int
	replayBytes  int64
	replaySize   int
	quick        bool
	profile      bool
	profileDur   time.Duration
	profileNames string
	allocs       bool
	args         []string
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	var (
		cfg                            config
		adaptersFlag, sizesFlag, wFlag string
		workloadsFlag                  string
		reportOnly                     bool
		replayMiB                      int64
	)
	fs.StringVar(&cfg.out, "out", "../results", "directory for results.jsonl, results.md, throughput.svg")
	fs.StringVar(&cfg.dir, "dir", "", "where the per-run log directories are made (default: a new directory under $TMPDIR); its device is the one measured")
	fs.StringVar(&adaptersFlag, "adapters", "all", "comma-separated adapters to run")
	fs.StringVar(&sizesFlag, "sizes", "128,1024,16384", "record sizes for the sync workload")
	fs.StringVar(&wFlag, "writers", "1,4,16,64", "concurrent writers for the sync workload (1 is sync1)")
	fs.StringVar(&workloadsFlag, "workloads", "sync,bulk,replay", "workloads to run")
	fs.IntVar(&cfg.reps, "reps", 3, "repetitions of every run (medians are reported)")
	fs.DurationVar(&cfg.warmup, "warmup", 200*time.Millisecond, "sync: warm-up before the measured window")
	fs.DurationVar(&cfg.dur, "dur", 600*time.Millisecond, "sync: measured window")
	fs.Int64Var(&cfg.bulkRecords, "bulk-records", 1_000_000, "bulk: records")
	fs.IntVar(&cfg.bulkSize, "bulk-size", 256, "bulk: record size")
	fs.IntVar(&bulkChunk, "bulk-chunk", bulkChunk, "bulk: bytes per durable write call for libraries without an unsynced append")
	fs.Int64Var(&replayMiB, "replay-mib", 512, "replay: log size in MiB")
	fs.IntVar(&cfg.replaySize, "replay-size", 1024, "replay: record size")
	fs.BoolVar(&cfg.quick, "quick", false, "smoke run (< 1 minute): 1 KiB only, 1 repetition, short windows, small bulk and replay")
	fs.BoolVar(&reportOnly, "report-only", false, "rewrite results.md and throughput.svg from -out/results.jsonl without running")
	fs.BoolVar(&cfg.profile, "profile", false, "instead of the comparison, CPU-profile the sync workload at 1 KiB, 16 and 64 writers, into -out/profile/")
	fs.DurationVar(&cfg.profileDur, "profile-dur", 5*time.Second, "profile: seconds per case")
	fs.StringVar(&cfg.profileNames, "profile-adapters", "ringwal-uring,raw,pebble", "profile: adapters to profile")
	fs.BoolVar(&cfg.allocs, "profile-allocs", false, "profile: instead of CPU, record every allocation (MemProfileRate=1) of the sync workload at 1 KiB with 1 and 16 writers into -out/profile/allocs.pprof")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.args = args
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	if reportOnly {
		return rewriteReport(cfg.out)
	}
	var err error
	if cfg.adapters, err = selectAdapters(adaptersFlag); err != nil {
		return err
	}
	if cfg.sizes, err = parseInts(sizesFlag); err != nil {
		return fmt.Errorf("-sizes: %w", err)
	}
	if cfg.writers, err = parseInts(wFlag); err != nil {
		return fmt.Errorf("-writers: %w", err)
	}
	cfg.workloads = map[string]bool{}
	for _, w := range strings.Split(workloadsFlag, ",") {
		switch w = strings.TrimSpace(w); w {
		case "sync", "bulk", "replay":
			cfg.workloads[w] = true
		default:
			return fmt.Errorf("unknown workload %q (sync, bulk, replay)", w)
		}
	}
	cfg.replayBytes = replayMiB << 20
	if cfg.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("sizes", func() { cfg.sizes = []int{1024} })
		def("reps", func() { cfg.reps = 1 })
		def("warmup", func() { cfg.warmup = 50 * time.Millisecond })
		def("dur", func() { cfg.dur = 200 * time.Millisecond })
		def("bulk-records", func() { cfg.bulkRecords = 100_000 })
		def("replay-mib", func() { cfg.replayBytes = 32 << 20 })
	}

	root := cfg.dir
	if root == "" {
		if root, err = os.MkdirTemp("", "ringwal-compare-"); err != nil {
			return err
		}
		defer os.RemoveAll(root)
	} else if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	m, err := newMeter(root)
	if err != nil {
		return err
	}
	mach := describeMachine(root, m)
	if cfg.profile {
		if cfg.allocs {
			return runAllocProfile(cfg, root, m)
		}
		return runProfile(cfg, root, m)
	}

	jf, err := os.Create(filepath.Join(cfg.out, "results.jsonl"))
	if err != nil {
		return err
	}
	defer jf.Close()
	enc := json.NewEncoder(jf)
	meta := metaLine{Type: "meta", Machine: mach, Command: commandLine(args), Settings: settingsOf(cfg)}
	if err := enc.Encode(meta); err != nil {
		return err
	}
	var results []Result
	r := &runner{root: root, meter: m, emit: func(res Result) {
		results = append(results, res)
		_ = enc.Encode(res)
		logResult(res)
	}}
	start := time.Now()
	fmt.Fprintf(os.Stderr, "compare: %d adapters, logs under %s (device %s, %s), %s\n",
		len(cfg.adapters), root, mach.Device, mach.FS, meta.Settings)

	if cfg.workloads["sync"] {
		for _, size := range cfg.sizes {
			for _, c := range cfg.writers {
				for rep := range cfg.reps {
					for _, a := range interleave(cfg.adapters, rep) {
						r.emit(r.runSync(a, size, c, rep, cfg.warmup, cfg.dur))
					}
				}
			}
		}
	}
	primaries := slices.DeleteFunc(slices.Clone(cfg.adapters), func(a *Adapter) bool { return !a.Primary })
	if cfg.workloads["bulk"] {
		for rep := range cfg.reps {
			for _, a := range interleave(primaries, rep) {
				r.emit(r.runBulk(a, cfg.bulkRecords, cfg.bulkSize, rep))
			}
		}
	}
	replayers := slices.DeleteFunc(slices.Clone(primaries), func(a *Adapter) bool { return a.NoReplay })
	if cfg.workloads["replay"] {
		for rep := range cfg.reps {
			for _, a := range interleave(replayers, rep) {
				for _, res := range r.runReplay(a, cfg.replayBytes, cfg.replaySize, rep) {
					r.emit(res)
				}
			}
		}
	}
	mach.LoadEnd = loadavg()
	mach.IdleWriteEnd = m.idleWriteRate(time.Second)
	meta.Machine = mach
	meta.Elapsed = time.Since(start).Round(time.Second).String()
	med := medians(results)
	for _, m := range med {
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	if err := enc.Encode(metaEnd{Type: "end", LoadEnd: mach.LoadEnd, IdleWriteEnd: mach.IdleWriteEnd, Elapsed: meta.Elapsed}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "compare: done in %s\n", meta.Elapsed)
	return writeReport(cfg.out, meta, med, cfg.adapters)
}

// interleave orders the adapters forward on even repetitions and backward on
// odd ones (A B C, C B A, ...), so drift in the machine's background load
// does not always favour the same library.
func interleave(as []*Adapter, rep int) []*Adapter {
	out := slices.Clone(as)
	if rep%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

type metaLine struct {
	Type     string  `json:"type"`
	Machine  machine `json:"machine"`
	Command  string  `json:"command"`
	Settings string  `json:"settings"`
	Elapsed  string  `json:"elapsed,omitempty"`
}

type metaEnd struct {
	Type         string  `json:"type"`
	LoadEnd      string  `json:"loadavg_end"`
	IdleWriteEnd float64 `json:"idle_dev_write_mb_s_end"`
	Elapsed      string  `json:"elapsed"`
}

func commandLine(args []string) string {
	s := "cd bench/compare && GOFLAGS=-ldflags=-checklinkname=0 go run ."
	for _, a := range args {
		s += " " + a
	}
	return s
}

func settingsOf(c config) string {
	var ws []string
	for w := range c.workloads {
		ws = append(ws, w)
	}
	slices.Sort(ws)
	return fmt.Sprintf("workloads=%s reps=%d sizes=%v writers=%v warmup=%v window=%v bulk=%dx%dB replay=%dMiB of %dB records quick=%v",
		strings.Join(ws, ","), c.reps, c.sizes, c.writers, c.warmup, c.dur, c.bulkRecords, c.bulkSize, c.replayBytes>>20, c.replaySize, c.quick)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func logResult(r Result) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-11s %-15s size=%-5d", r.Workload, r.Adapter, r.Size)
	if r.Workload == "sync" {
		fmt.Fprintf(&b, " C=%-2d rep=%d %8.0f/s p50=%6.0fus p99=%6.0fus", r.Writers, r.Rep, r.OpsPerSec, r.P50us, r.P99us)
	} else {
		fmt.Fprintf(&b, " rep=%d %8.1f MB/s %6.2fs", r.Rep, r.MBPerSec, r.Secs)
		if r.PeakRSSMiB > 0 {
			fmt.Fprintf(&b, " rss=%.0fMiB resident=%.2f", r.PeakRSSMiB, r.Resident)
		}
	}
	fmt.Fprintf(&b, " cpu=%.1fs/GB allocs=%.2f dev=%.0fB/op", r.CPUSecsPerGB, r.AllocsPerOp, r.DevBytesPerOp)
	if r.Err != "" {
		fmt.Fprintf(&b, " ERROR %s", r.Err)
	}
	fmt.Fprintln(os.Stderr, b.String())
}

// runProfile CPU-profiles the sync workload at 1 KiB with 16 and 64
// writers, one profile file per adapter and case.
func runProfile(cfg config, root string, m *meter) error {
	as, err := selectAdapters(cfg.profileNames)
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.out, "profile")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	runtime.SetMutexProfileFraction(100)
	r := &runner{root: root, meter: m}
	for _, c := range []int{16, 64} {
		for _, a := range as {
			base := filepath.Join(dir, fmt.Sprintf("%s-sync-1024-C%d", a.Name, c))
			f, err := os.Create(base + ".cpu.pprof")
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			res := r.runSync(a, 1024, c, 0, cfg.warmup, cfg.profileDur)
			pprof.StopCPUProfile()
			f.Close()
			logResult(res)
			b, _ := json.Marshal(res)
			if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
				return err
			}
		}
	}
	// Mutex contention, cumulative over every profiled case.
	mf, err := os.Create(filepath.Join(dir, "mutex.pprof"))
	if err != nil {
		return err
	}
	defer mf.Close()
	return pprof.Lookup("mutex").WriteTo(mf, 0)
}

// runAllocProfile records every heap allocation of the sync workload (1 KiB,
// 1 and 16 writers) of the profiled adapters: go tool pprof -sample_index=alloc_objects.
func runAllocProfile(cfg config, root string, m *meter) error {
	runtime.MemProfileRate = 1
	as, err := selectAdapters(cfg.profileNames)
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.out, "profile")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r := &runner{root: root, meter: m}
	for _, c := range []int{1, 16} {
		for _, a := range as {
			logResult(r.runSync(a, 1024, c, 0, cfg.warmup, cfg.profileDur))
		}
	}
	f, err := os.Create(filepath.Join(dir, "allocs.pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}
