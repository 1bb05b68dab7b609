package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

type groupKey struct {
	workload, adapter string
	size, writers     int
}

func keyOf(r Result) groupKey { return groupKey{r.Workload, r.Adapter, r.Size, r.Writers} }

// medians reduces the runs of each (workload, adapter, size, writers) group
// to one line holding the median of every numeric column. Failed runs are
// left out; Rep holds how many runs the median is over, Err the first error.
func medians(runs []Result) []Result {
	groups := map[groupKey][]Result{}
	var order []groupKey
	for _, r := range runs {
		if r.Type != "run" {
			continue
		}
		k := keyOf(r)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []Result
	for _, k := range order {
		rs := groups[k]
		var ok []Result
		firstErr := ""
		for _, r := range rs {
			if r.Err != "" {
				if firstErr == "" {
					firstErr = r.Err
				}
				continue
			}
			ok = append(ok, r)
		}
		m := Result{Type: "median", Workload: k.workload, Adapter: k.adapter, Size: k.size, Writers: k.writers, Rep: len(ok), Err: firstErr}
		if len(ok) > 0 {
			m.Checksums = ok[0].Checksums
			med := func(f func(Result) float64) float64 {
				v := make([]float64, len(ok))
				for i, r := range ok {
					v[i] = f(r)
				}
				return median(v)
			}
			m.Ops = int64(med(func(r Result) float64 { return float64(r.Ops) }))
			m.Bytes = int64(med(func(r Result) float64 { return float64(r.Bytes) }))
			m.Secs = med(func(r Result) float64 { return r.Secs })
			m.OpsPerSec = med(func(r Result) float64 { return r.OpsPerSec })
			m.MBPerSec = med(func(r Result) float64 { return r.MBPerSec })
			m.P50us = med(func(r Result) float64 { return r.P50us })
			m.P99us = med(func(r Result) float64 { return r.P99us })
			m.P999us = med(func(r Result) float64 { return r.P999us })
			m.CPUSecsPerGB = med(func(r Result) float64 { return r.CPUSecsPerGB })
			m.AllocsPerOp = med(func(r Result) float64 { return r.AllocsPerOp })
			m.DevBytesPerOp = med(func(r Result) float64 { return r.DevBytesPerOp })
			m.PeakRSSMiB = med(func(r Result) float64 { return r.PeakRSSMiB })
			m.BaseRSSMiB = med(func(r Result) float64 { return r.BaseRSSMiB })
			m.Resident = med(func(r Result) float64 { return r.Resident })
			// Spread of the headline number, to judge the noise.
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, r := range ok {
				v := r.OpsPerSec
				if r.Workload != "sync" {
					v = r.MBPerSec
				}
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
			m.Extra = map[string]any{"min": lo, "max": hi}
			// Medians of the numeric extras (replay phases, ringwal stats).
			vals := map[string][]float64{}
			for _, r := range ok {
				for k, v := range r.Extra {
					switch x := v.(type) {
					case float64:
						vals[k] = append(vals[k], x)
					case int64:
						vals[k] = append(vals[k], float64(x))
					case uint64:
						vals[k] = append(vals[k], float64(x))
					case int:
						vals[k] = append(vals[k], float64(x))
					}
				}
			}
			for k, v := range vals {
				if k != "min" && k != "max" {
					m.Extra[k] = median(v)
				}
			}
		}
		out = append(out, m)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// table indexes medians.
type table map[groupKey]Result

func (t table) get(workload, adapter string, size, writers int) (Result, bool) {
	r, ok := t[groupKey{workload, adapter, size, writers}]
	return r, ok && r.Rep > 0
}

// rewriteReport rebuilds results.md and throughput.svg from results.jsonl.
func rewriteReport(out string) error {
	f, err := os.Open(filepath.Join(out, "results.jsonl"))
	if err != nil {
		return err
	}
	defer f.Close()
	var meta metaLine
	var runs []Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var probe metaEnd
		if err := json.Unmarshal(sc.Bytes(), &probe); err != nil {
			return err
		}
		switch probe.Type {
		case "meta":
			if err := json.Unmarshal(sc.Bytes(), &meta); err != nil {
				return err
			}
		case "end":
			meta.Machine.LoadEnd, meta.Elapsed = probe.LoadEnd, probe.Elapsed
			meta.Machine.IdleWriteEnd = probe.IdleWriteEnd
		case "run":
			var r Result
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return err
			}
			runs = append(runs, r)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var used []*Adapter
	for _, a := range append(adapters(), experiments()...) {
		if slices.ContainsFunc(runs, func(r Result) bool { return r.Adapter == a.Name }) {
			used = append(used, a)
		}
	}
	return writeReport(out, meta, medians(runs), used)
}

func writeReport(out string, meta metaLine, med []Result, as []*Adapter) error {
	t := table{}
	for _, m := range med {
		t[keyOf(m)] = m
	}
	var sizes, writers []int
	for _, m := range med {
		if m.Workload == "sync" {
			if !slices.Contains(sizes, m.Size) {
				sizes = append(sizes, m.Size)
			}
			if !slices.Contains(writers, m.Writers) {
				writers = append(writers, m.Writers)
			}
		}
	}
	slices.Sort(sizes)
	slices.Sort(writers)
	svg := throughputSVG(t, as, sizes, writers)
	if err := os.WriteFile(filepath.Join(out, "throughput.svg"), []byte(svg), 0o644); err != nil {
		return err
	}
	md := markdown(meta, t, med, as, sizes, writers)
	return os.WriteFile(filepath.Join(out, "results.md"), []byte(md), 0o644)
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func kilo(v float64) string {
	if v >= 100000 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	if v >= 10000 {
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func markdown(meta metaLine, t table, med []Result, as []*Adapter, sizes, writers []int) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	mc := meta.Machine
	p("# ringwal vs Go WAL peers: measured results\n\n")
	p("Generated by `bench/compare` (issue 7). Medians over the repetitions; every run in a fresh directory; libraries interleaved (A B C, then C B A). " +
		"The `-steady` adapters are ringwal in the steady state of a log with checkpoints: before the clock starts they write and drop segments until they append into a recycled file with two more kept for reuse (the raw baseline likewise overwrites a file it zeroed before the clock); they run the durable-append and bulk workloads, not replay.\n\n")
	p("- Date: %s\n", mc.Date)
	p("- Machine: %s, %d cores, %.1f GiB RAM, Linux %s, %s\n", mc.CPU, mc.Cores, mc.MemGiB, mc.Kernel, mc.Go)
	p("- Disk: %s (%s, rotational=%v), file system %s; logs under %s\n", mc.Device, mc.DevModel, mc.Rotational, mc.FS, mc.Dir)
	p("- Load average at start / end: %s / %s; other users' writes to %s while this process idled: %.1f / %.1f MB/s (the disk and CPUs are shared; see the min-max spreads)\n", mc.LoadStart, mc.LoadEnd, mc.Device, mc.IdleWriteStart, mc.IdleWriteEnd)
	p("- ringwal source: %s\n", mc.Tree)
	p("- Command: `%s`\n", meta.Command)
	p("- Settings: %s\n", meta.Settings)
	if meta.Elapsed != "" {
		p("- Wall time: %s\n", meta.Elapsed)
	}
	p("\n")

	names := func(filter func(*Adapter) bool) []*Adapter {
		var out []*Adapter
		for _, a := range as {
			if filter == nil || filter(a) {
				out = append(out, a)
			}
		}
		return out
	}

	if len(sizes) > 0 {
		p("## Durable appends per second (sync, syncC)\n\n")
		p("Each of C writers appends one record and waits until it is durable, again and again. C=1 is sync1. Cells: median appends/s [min-max over runs].\n\n")
		for _, size := range sizes {
			p("### %s records\n\n", sizeName(size))
			p("| adapter |")
			for _, c := range writers {
				p(" C=%d |", c)
			}
			p(" p99 µs at C=%d |\n|---|", writers[len(writers)-1])
			for range writers {
				p("---:|")
			}
			p("---:|\n")
			for _, a := range names(nil) {
				p("| %s |", a.Name)
				for _, c := range writers {
					if r, ok := t.get("sync", a.Name, size, c); ok {
						p(" %s [%s-%s] |", kilo(r.OpsPerSec), kilo(extra(r, "min")), kilo(extra(r, "max")))
					} else {
						p(" %s |", missing(t, "sync", a.Name, size, c))
					}
				}
				if r, ok := t.get("sync", a.Name, size, writers[len(writers)-1]); ok {
					p(" %s |\n", num(r.P99us))
				} else {
					p(" - |\n")
				}
			}
			p("\n")
		}

		p("## Latency of a durable append (µs, p50 / p99 / p999)\n\n")
		p("| adapter |")
		for _, size := range sizes {
			for _, c := range writers {
				if c == 1 || c == 16 || c == 64 {
					p(" %s C=%d |", sizeName(size), c)
				}
			}
		}
		p("\n|---|")
		for range sizes {
			for _, c := range writers {
				if c == 1 || c == 16 || c == 64 {
					p("---:|")
				}
			}
		}
		p("\n")
		for _, a := range names(nil) {
			p("| %s |", a.Name)
			for _, size := range sizes {
				for _, c := range writers {
					if c != 1 && c != 16 && c != 64 {
						continue
					}
					if r, ok := t.get("sync", a.Name, size, c); ok {
						p(" %s / %s / %s |", num(r.P50us), num(r.P99us), num(r.P999us))
					} else {
						p(" - |")
					}
				}
			}
			p("\n")
		}
		p("\n")

		p("## Cost per durable append (sync)\n\n")
		p("CPU seconds per GB of payload (whole process, getrusage: includes the library's own goroutines and io_uring workers), heap allocations per append (runtime.MemStats, counted from the end of the opening snapshot to the start of the closing one; the harness loop allocates nothing), device bytes written per append (sectors written of %s over the window: the whole device, so other users' writes land here too; /proc/self/io is useless here, it charges a whole large folio, up to 2 MiB, per dirtied page).\n\n", mc.Device)
		for _, size := range sizes {
			if size != 1024 && len(sizes) > 1 {
				continue
			}
			p("### %s records\n\n", sizeName(size))
			p("| adapter | C | CPU s/GB | allocs/append | device B/append |\n|---|---:|---:|---:|---:|\n")
			for _, a := range names(nil) {
				for _, c := range writers {
					if r, ok := t.get("sync", a.Name, size, c); ok {
						p("| %s | %d | %s | %s | %s |\n", a.Name, c, num(r.CPUSecsPerGB), num(r.AllocsPerOp), num(r.DevBytesPerOp))
					}
				}
			}
			p("\n")
		}
	}

	prim := names(func(a *Adapter) bool { return a.Primary })
	if hasWorkload(med, "bulk") {
		var n int64
		var size int
		for _, m := range med {
			if m.Workload == "bulk" && m.Rep > 0 {
				n, size = m.Ops, m.Size
			}
		}
		p("## Bulk: %d records of %s, no per-record sync, one sync at the end\n\n", n, sizeName(size))
		p("| adapter | MB/s [min-max] | seconds | CPU s/GB | allocs/record | device B/record | how |\n|---|---:|---:|---:|---:|---:|---|\n")
		for _, a := range prim {
			if r, ok := t.get("bulk", a.Name, size, 0); ok {
				p("| %s | %s [%s-%s] | %s | %s | %s | %s | %s |\n", a.Name, num(r.MBPerSec), num(extra(r, "min")), num(extra(r, "max")), num(r.Secs), num(r.CPUSecsPerGB), num(r.AllocsPerOp), num(r.DevBytesPerOp), a.BulkNote)
			} else {
				p("| %s | %s | | | | | %s |\n", a.Name, missing(t, "bulk", a.Name, size, 0), a.BulkNote)
			}
		}
		p("\n")
	}
	if hasWorkload(med, "replay-cold") {
		var bytes int64
		var size int
		for _, m := range med {
			if m.Workload == "replay-cold" && m.Rep > 0 {
				bytes, size = m.Bytes, m.Size
			}
		}
		p("## Replay: %.0f MiB of %s records, open + read every record + close\n\n", float64(bytes)/(1<<20), sizeName(size))
		p("Cold: the log's pages evicted first (fdatasync + posix_fadvise DONTNEED per file; `resident` is the cached fraction measured with mincore just before). Warm: read again right after. Peak RSS is VmHWM during the replay (reset through /proc/self/clear_refs), base RSS is VmRSS before it.\n\n")
		p("Open / read / close: seconds of each phase of the cold replay, and the read phase alone in MB/s (cold / warm), where the adapter can tell them apart.\n\n")
		p("| adapter | cold MB/s [min-max] | warm MB/s [min-max] | open / read / close s (cold) | read-only MB/s cold / warm | resident before cold | cold peak RSS MiB (base) | warm peak RSS MiB | CPU s/GB cold | allocs/record | device B/record cold | checksums verified |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		for _, a := range prim {
			if a.NoReplay {
				continue
			}
			c, okc := t.get("replay-cold", a.Name, size, 0)
			w, okw := t.get("replay-warm", a.Name, size, 0)
			ck := "yes"
			if !a.Checksums {
				ck = "no: " + a.ChecksumNote
			}
			if !okc && !okw {
				p("| %s | %s | | | | | | | %s |\n", a.Name, missing(t, "replay-cold", a.Name, size, 0), ck)
				continue
			}
			p("| %s | %s [%s-%s] | %s [%s-%s] | %.3f / %.3f / %.3f | %s / %s | %.2f | %s (%s) | %s | %s | %s | %s | %s |\n", a.Name,
				num(c.MBPerSec), num(extra(c, "min")), num(extra(c, "max")),
				num(w.MBPerSec), num(extra(w, "min")), num(extra(w, "max")),
				extra(c, "open_s"), extra(c, "read_s"), extra(c, "close_s"),
				num(extra(c, "read_mb_per_s")), num(extra(w, "read_mb_per_s")),
				c.Resident, num(c.PeakRSSMiB), num(c.BaseRSSMiB), num(w.PeakRSSMiB), num(c.CPUSecsPerGB), num(c.AllocsPerOp), num(c.DevBytesPerOp), ck)
		}
		p("\n")
	}

	p("## Targets of issue 7 (ratios of medians from this run)\n\n")
	p("The steady-state columns have no replay runs of their own (\"not measured\"): they read what the fresh adapters read.\n\n")
	p("%s\n", targetsMarkdown(t))

	p("## Adapters\n\n| adapter | durable append path | bulk path |\n|---|---|---|\n")
	for _, a := range as {
		bulk := a.BulkNote
		if !a.Primary {
			bulk = "(same format as " + a.Lib + ")"
		}
		p("| %s | %s | %s |\n", a.Name, a.How, bulk)
	}
	p("\n![durable appends/s vs writers](throughput.svg)\n")
	return b.String()
}

func extra(r Result, k string) float64 {
	if v, ok := r.Extra[k].(float64); ok {
		return v
	}
	return 0
}

func missing(t table, workload, adapter string, size, writers int) string {
	if r, ok := t[groupKey{workload, adapter, size, writers}]; ok && r.Err != "" {
		e := r.Err
		if len(e) > 60 {
			e = e[:60] + "…"
		}
		return "failed: " + strings.ReplaceAll(e, "|", "/")
	}
	return "-"
}

func hasWorkload(med []Result, w string) bool {
	return slices.ContainsFunc(med, func(r Result) bool { return r.Workload == w })
}

// target is one line of the target list, evaluated.
type target struct {
	name     string
	measured string
	met      bool
	known    bool
}

// targets evaluates issue 7's targets for one ringwal adapter.
func targets(t table, me string) []target {
	var out []target
	ratio := func(name, workload string, size, writers int, other string, min float64, mb bool) {
		a, ok1 := t.get(workload, me, size, writers)
		b, ok2 := t.get(workload, other, size, writers)
		tg := target{name: name}
		if ok1 && ok2 {
			x, y := a.OpsPerSec, b.OpsPerSec
			unit := "/s"
			if mb {
				x, y, unit = a.MBPerSec, b.MBPerSec, " MB/s"
			}
			if y > 0 {
				r := x / y
				tg.known, tg.met = true, r >= min
				tg.measured = fmt.Sprintf("%.2fx (%s%s vs %s%s)", r, num(x), unit, num(y), unit)
			}
		}
		out = append(out, tg)
	}
	for _, c := range []int{16, 64} {
		ratio(fmt.Sprintf("syncC C=%d 1 KiB >= 2x pebble", c), "sync", 1024, c, "pebble", 2, false)
		ratio(fmt.Sprintf("syncC C=%d 1 KiB >= 1.2x raw", c), "sync", 1024, c, "raw", 1.2, false)
		a, ok1 := t.get("sync", me, 1024, c)
		b, ok2 := t.get("sync", "pebble", 1024, c)
		tg := target{name: fmt.Sprintf("syncC C=%d 1 KiB p99 <= pebble's", c)}
		if ok1 && ok2 {
			tg.known, tg.met = true, a.P99us <= b.P99us
			tg.measured = fmt.Sprintf("%s µs vs %s µs", num(a.P99us), num(b.P99us))
		}
		out = append(out, tg)
	}
	ratio("sync1 1 KiB >= 1.0x raw", "sync", 1024, 1, "raw", 1.0, false)
	ratio("sync1 1 KiB >= 1.2x pebble", "sync", 1024, 1, "pebble", 1.2, false)
	bulkSize := 0
	for k := range t {
		if k.workload == "bulk" {
			bulkSize = k.size
		}
	}
	ratio("bulk >= 1.0x raw", "bulk", bulkSize, 0, "raw", 1.0, true)
	ratio("bulk >= 1.4x pebble", "bulk", bulkSize, 0, "pebble", 1.4, true)
	replaySize := 0
	for k := range t {
		if k.workload == "replay-cold" {
			replaySize = k.size
		}
	}
	ratio("replay cold >= 1.0x raw (checksums verified)", "replay-cold", replaySize, 0, "raw", 1.0, true)
	ratio("replay warm >= 1.0x raw (checksums verified)", "replay-warm", replaySize, 0, "raw", 1.0, true)
	for _, c := range []int{1, 16, 64} {
		a, ok1 := t.get("sync", me, 1024, c)
		b, ok2 := t.get("sync", "raw", 1024, c)
		tg := target{name: fmt.Sprintf("device bytes per durable 1 KiB append <= raw (C=%d)", c)}
		if ok1 && ok2 {
			tg.known, tg.met = true, a.DevBytesPerOp <= b.DevBytesPerOp
			tg.measured = fmt.Sprintf("%s B vs %s B", num(a.DevBytesPerOp), num(b.DevBytesPerOp))
		}
		out = append(out, tg)
	}
	for _, c := range []int{1, 16, 64} {
		a, ok := t.get("sync", me, 1024, c)
		tg := target{name: fmt.Sprintf("Append at 0 allocations (1 KiB, C=%d)", c)}
		if ok {
			tg.known, tg.met = true, a.AllocsPerOp < 0.005
			tg.measured = fmt.Sprintf("%.3f allocs/append", a.AllocsPerOp)
		}
		out = append(out, tg)
	}
	cpu := func(name, workload string, size, writers int) {
		a, ok1 := t.get(workload, me, size, writers)
		b, ok2 := t.get(workload, "pebble", size, writers)
		tg := target{name: name}
		if ok1 && ok2 {
			tg.known, tg.met = true, a.CPUSecsPerGB < b.CPUSecsPerGB
			tg.measured = fmt.Sprintf("%s vs %s CPU s/GB", num(a.CPUSecsPerGB), num(b.CPUSecsPerGB))
		}
		out = append(out, tg)
	}
	cpu("CPU per GB < pebble (syncC 1 KiB, C=16)", "sync", 1024, 16)
	cpu("CPU per GB < pebble (syncC 1 KiB, C=64)", "sync", 1024, 64)
	cpu("CPU per GB < pebble (bulk)", "bulk", bulkSize, 0)
	return out
}

func targetsMarkdown(t table) string {
	var b strings.Builder
	u := targets(t, "ringwal-uring")
	pw := targets(t, "ringwal-pwrite")
	us := targets(t, "ringwal-uring-steady")
	ps := targets(t, "ringwal-pwrite-steady")
	b.WriteString("| target | ringwal-uring | status | ringwal-pwrite | status | ringwal-uring-steady | status | ringwal-pwrite-steady | status |\n|---|---|---|---|---|---|---|---|---|\n")
	status := func(x target) string {
		switch {
		case !x.known:
			return "not measured"
		case x.met:
			return "met"
		}
		return "**missed**"
	}
	for i := range u {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", u[i].name, u[i].measured, status(u[i]), pw[i].measured, status(pw[i]),
			us[i].measured, status(us[i]), ps[i].measured, status(ps[i]))
	}
	return b.String()
}

// throughputSVG draws durable appends/s against writers, one panel per
// record size, one line per adapter, log-scaled y.
func throughputSVG(t table, as []*Adapter, sizes, writers []int) string {
	const (
		panelW, panelH = 400, 330
		left, right    = 62, 16
		top, bottom    = 40, 46
	)
	palette := []string{"#d62728", "#ff7f0e", "#1f77b4", "#111111", "#2ca02c", "#98df8a", "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#7f7f7f"}
	legendRows := (len(as) + 3) / 4
	W := max(panelW*len(sizes), 800)
	H := panelH + 24 + legendRows*20 + 10
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	if len(sizes) == 0 || len(writers) == 0 {
		p(`<text x="20" y="30">no sync results</text></svg>` + "\n")
		return b.String()
	}
	for pi, size := range sizes {
		x0 := float64(pi * panelW)
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, a := range as {
			for _, c := range writers {
				if r, ok := t.get("sync", a.Name, size, c); ok && r.OpsPerSec > 0 {
					lo, hi = math.Min(lo, r.OpsPerSec), math.Max(hi, r.OpsPerSec)
				}
			}
		}
		if math.IsInf(lo, 1) {
			continue
		}
		ylo := math.Pow(10, math.Floor(math.Log10(lo)))
		yhi := math.Pow(10, math.Ceil(math.Log10(hi)))
		if yhi <= ylo {
			yhi = ylo * 10
		}
		pw := float64(panelW - left - right)
		ph := float64(panelH - top - bottom)
		xAt := func(i int) float64 {
			if len(writers) == 1 {
				return x0 + left + pw/2
			}
			return x0 + left + pw*float64(i)/float64(len(writers)-1)
		}
		yAt := func(v float64) float64 {
			return top + ph*(1-(math.Log10(v)-math.Log10(ylo))/(math.Log10(yhi)-math.Log10(ylo)))
		}
		p(`<text x="%.0f" y="22" text-anchor="middle" font-size="14" font-weight="bold">%s records: durable appends/s</text>`+"\n", x0+left+pw/2, sizeName(size))
		// Grid: decades and 2x, 5x.
		for d := ylo; d <= yhi*1.0001; d *= 10 {
			for _, m := range []float64{1, 2, 5} {
				v := d * m
				if v > yhi*1.0001 {
					break
				}
				y := yAt(v)
				stroke := "#eeeeee"
				if m == 1 {
					stroke = "#cccccc"
				}
				p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x0+left, y, x0+left+pw, y, stroke)
				p(`<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n", x0+left-4, y+4, kilo(v))
			}
		}
		for i, c := range writers {
			x := xAt(i)
			p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#eeeeee"/>`+"\n", x, top, x, top+ph)
			p(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%d</text>`+"\n", x, top+ph+16, c)
		}
		p(`<text x="%.1f" y="%.1f" text-anchor="middle">concurrent writers</text>`+"\n", x0+left+pw/2, top+ph+34)
		p(`<rect x="%.1f" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", x0+left, top, pw, ph)
		for ai, a := range as {
			col := palette[ai%len(palette)]
			width := 1.5
			if strings.HasPrefix(a.Name, "ringwal") {
				width = 3
			}
			dash := ""
			if strings.HasSuffix(a.Name, "-gc") {
				dash = ` stroke-dasharray="6,3"`
			}
			var pts []string
			for i, c := range writers {
				if r, ok := t.get("sync", a.Name, size, c); ok && r.OpsPerSec > 0 {
					x, y := xAt(i), yAt(r.OpsPerSec)
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
					p(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s C=%d: %.0f/s</title></circle>`+"\n", x, y, col, html.EscapeString(a.Name), c, r.OpsPerSec)
				}
			}
			if len(pts) > 1 {
				p(`<polyline points="%s" fill="none" stroke="%s" stroke-width="%.1f"%s/>`+"\n", strings.Join(pts, " "), col, width, dash)
			}
		}
	}
	// Legend.
	ly := panelH + 10
	for ai, a := range as {
		col := palette[ai%len(palette)]
		x := 20 + (ai%4)*(W-40)/4
		y := ly + (ai/4)*20
		dash := ""
		if strings.HasSuffix(a.Name, "-gc") {
			dash = ` stroke-dasharray="6,3"`
		}
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"%s/>`+"\n", x, y, x+24, y, col, dash)
		p(`<text x="%d" y="%d">%s</text>`+"\n", x+30, y+4, html.EscapeString(a.Name))
	}
	p("</svg>\n")
	return b.String()
}
