package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringwal/ringwal/internal/fsys"
	"github.com/ringwal/ringwal/wal"
)

func init() {
	register(&command{
		name:    "bench",
		summary: "run N concurrent durable appenders, then reopen and replay",
		usage: `bench [--dir D] [--writers N] [--size BYTES] [--duration D] [--backend auto|uring|pwrite] [--cold] [--replay-huge-pages] [--json]

Runs the real log: N goroutines append records of BYTES bytes, each waiting
until its record is durable, for the given duration. Then the log is closed,
reopened (recovery runs) and replayed with every checksum verified. Without
--dir a fresh temporary directory is used and removed afterwards.

--cold drops the log's pages from the page cache before the reopen, so that
recovery and replay read from the disk. --replay-huge-pages replays with
wal.Options.ReplayHugePages (with --cold, that is where it acts).

examples:
  walctl bench
  walctl bench --writers 64 --size 128 --duration 10s
  walctl bench --backend pwrite --json
  walctl bench --backend pwrite --duration 10s --cold --replay-huge-pages`,
		run: runBench,
	})
}

// benchResult is what bench prints (and, with --json, its field names).
type benchResult struct {
	Backend       string  `json:"backend"`
	Writers       int     `json:"writers"`
	Size          int     `json:"size"`
	Seconds       float64 `json:"seconds"`
	Records       uint64  `json:"records"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	P50us         float64 `json:"p50_us"`
	P99us         float64 `json:"p99_us"`
	P999us        float64 `json:"p999_us"`
	AvgBatch      float64 `json:"avg_batch"`
	FsyncsPerSec  float64 `json:"fsyncs_per_sec"`
	ReplayRecords uint64  `json:"replay_records"`
	ReplayMBPerS  float64 `json:"replay_mb_per_sec"`
	ReplayCold    bool    `json:"replay_cold"`
	ReplayHuge    bool    `json:"replay_huge_pages"`
	RecoverMs     float64 `json:"recover_ms"`
}

func runBench(args []string, stdout, stderr io.Writer) error {
	c := commands["bench"]
	fs := newFlagSet(c, stderr)
	dir := fs.String("dir", "", "log directory (default: a fresh temporary directory, removed afterwards)")
	writers := fs.Int("writers", 16, "concurrent appenders (1..4096)")
	size := fs.Int("size", 1024, "record size in bytes (0..16777216)")
	duration := fs.Duration("duration", 5*time.Second, "how long to append (100ms..1h)")
	backend := fs.String("backend", "auto", "auto, uring or pwrite")
	cold := fs.Bool("cold", false, "drop the log's pages from the page cache before the reopen")
	huge := fs.Bool("replay-huge-pages", false, "replay with wal.Options.ReplayHugePages")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected arguments %q", fs.Args())
	case *writers < 1 || *writers > 4096:
		return usagef("--writers %d out of range 1..4096", *writers)
	case *size < 0 || *size > 16<<20:
		return usagef("--size %d out of range 0..16777216", *size)
	case *duration < 100*time.Millisecond || *duration > time.Hour:
		return usagef("--duration %v out of range 100ms..1h", *duration)
	case *backend != "auto" && *backend != "uring" && *backend != "pwrite":
		return usagef("--backend %q: want auto, uring or pwrite", *backend)
	}
	d := *dir
	if d == "" {
		tmp, err := os.MkdirTemp("", "walctl-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		d = tmp
	}
	opts := wal.Options{Backend: wal.Backend(*backend), ReplayHugePages: *huge}
	res, err := benchRun(d, opts, *writers, *size, *duration, *cold, stderr)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "backend=%s writers=%d size=%d: %d records in %.1fs, %.0f records/s, %.1f MB/s, append p50 %.0fus p99 %.0fus p999 %.0fus, %.1f records/batch, %.0f fsyncs/s\n",
		res.Backend, res.Writers, res.Size, res.Records, res.Seconds, res.RecordsPerSec, res.MBPerSec,
		res.P50us, res.P99us, res.P999us, res.AvgBatch, res.FsyncsPerSec)
	how := ""
	if res.ReplayCold {
		how = " from the disk"
	}
	if res.ReplayHuge {
		how += " (huge pages)"
	}
	fmt.Fprintf(stdout, "reopen: recovered in %.0fms; replay%s: %d records, %.0f MB/s, every checksum verified\n",
		res.RecoverMs, how, res.ReplayRecords, res.ReplayMBPerS)
	return nil
}

func benchRun(dir string, opts wal.Options, writers, size int, dur time.Duration, cold bool, progress io.Writer) (benchResult, error) {
	w, err := wal.Open(dir, opts)
	if err != nil {
		return benchResult{}, err
	}
	res := benchResult{Backend: string(w.Backend()), Writers: writers, Size: size, ReplayCold: cold, ReplayHuge: opts.ReplayHugePages}
	startLSN := w.LastLSN()
	before := w.Stats()

	var stop atomic.Bool
	var failed atomic.Value
	lats := make([][]time.Duration, writers)
	var wg sync.WaitGroup
	start := time.Now()
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, size)
			for i := range p {
				p[i] = byte(g + i)
			}
			l := make([]time.Duration, 0, 1<<14)
			for !stop.Load() {
				t := time.Now()
				if _, err := w.Append(p); err != nil {
					failed.Store(err)
					return
				}
				l = append(l, time.Since(t))
			}
			lats[g] = l
		}()
	}
	tick := time.NewTicker(time.Second)
	deadline := time.After(dur)
	// On a terminal each second overwrites the last; in a pipe or a log
	// file each gets a line of its own.
	tty := isTerminal(progress)
	format := "%s: %d records\n"
	if tty {
		format = "\r%s: %d records"
	}
loop:
	for {
		select {
		case <-tick.C:
			fmt.Fprintf(progress, format, time.Since(start).Truncate(time.Second), w.LastLSN()-startLSN)
		case <-deadline:
			break loop
		}
	}
	tick.Stop()
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if tty {
		fmt.Fprintln(progress)
	}
	if err, ok := failed.Load().(error); ok {
		w.Close()
		return res, err
	}
	st := w.Stats()
	if err := w.Close(); err != nil {
		return res, err
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Nanoseconds()) / 1e3
	}
	res.Seconds = elapsed.Seconds()
	res.Records = uint64(len(all))
	res.RecordsPerSec = float64(res.Records) / res.Seconds
	res.MBPerSec = float64(res.Records) * float64(size) / res.Seconds / 1e6
	res.P50us, res.P99us, res.P999us = pct(0.5), pct(0.99), pct(0.999)
	if b := st.Batches - before.Batches; b > 0 {
		res.AvgBatch = float64(st.Records-before.Records) / float64(b)
	}
	res.FsyncsPerSec = float64(st.Fsyncs-before.Fsyncs) / res.Seconds

	if cold {
		if err := dropCached(dir); err != nil {
			return res, fmt.Errorf("--cold: %w", err)
		}
	}
	t := time.Now()
	w, err = wal.Open(dir, opts)
	if err != nil {
		return res, fmt.Errorf("reopen: %w", err)
	}
	defer w.Close()
	res.RecoverMs = float64(time.Since(t).Microseconds()) / 1e3
	r, err := w.NewReader(w.FirstLSN())
	if err != nil {
		return res, err
	}
	defer r.Close()
	t = time.Now()
	var bytes uint64
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("replay: %w", err)
		}
		res.ReplayRecords++
		bytes += uint64(len(rec.Data))
	}
	if res.ReplayRecords != w.LastLSN()-w.FirstLSN()+1 {
		return res, fmt.Errorf("replay read %d records, log holds %d", res.ReplayRecords, w.LastLSN()-w.FirstLSN()+1)
	}
	res.ReplayMBPerS = float64(bytes) / time.Since(t).Seconds() / 1e6
	return res, nil
}

// dropCached writes back and drops from the page cache the pages of every
// file in dir (the closed log), so that the next reads come from the disk.
func dropCached(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		err = f.Sync()
		if err == nil {
			fsys.DropCached(int(f.Fd()), 0, 0)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
