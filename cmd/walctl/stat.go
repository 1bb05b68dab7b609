package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringwal/ringwal/inspect"
	"github.com/ringwal/ringwal/internal/ring"
)

// probeURing reports whether io_uring is usable here; tests replace it so
// that golden output does not depend on the machine.
var probeURing = ring.Probe

func init() {
	register(&command{
		name:    "stat",
		summary: "totals of a log: LSNs, bytes, state, and whether io_uring is usable",
		usage: `stat [--max-record-size BYTES] DIR

Summarises the log in DIR: the format version, the number of segments and
records, the oldest and newest LSN, the bytes in the segment files against
the bytes used by frames (and by padding after durable batches, in format
version 2) and by payloads, when the segments were created
(from their headers), whether the log is intact, and whether io_uring is
usable on this machine (and why not, if not: then the wal falls back to
pwrite). Takes no lock and changes nothing.

examples:
  walctl stat /var/lib/app/wal
  walctl stat testdata/torn-tail`,
		run: runStat,
	})
}

func runStat(args []string, stdout, stderr io.Writer) error {
	l, err := scanDirCommand(commands["stat"], args, stderr)
	if err != nil {
		return err
	}
	var versions []string
	var created []int64
	var seqLo, seqHi uint64
	var used, payload, padding int64
	sizes := map[int64]bool{}
	for _, s := range l.Segments {
		used += min(s.End, s.FileSize)
		payload += s.PayloadBytes
		padding += s.PadBytes
		if !s.HeaderOK {
			continue
		}
		if v := fmt.Sprint(s.Header.Version); !slices.Contains(versions, v) {
			versions = append(versions, v)
		}
		if seqLo == 0 {
			seqLo = s.Header.Seq
		}
		seqHi = s.Header.Seq
		created = append(created, s.Header.Created)
		sizes[s.Header.Size] = true
	}
	disk := l.FileBytes()
	pct := func(n int64) string {
		if disk == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(disk))
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, a...)...) }
	row("log", "%s", l.Path)
	row("format version", "%s", strings.Join(versions, ", "))
	segs := fmt.Sprint(len(l.Segments))
	if seqLo != 0 {
		segs += fmt.Sprintf(" (sequence %d-%d)", seqLo, seqHi)
	}
	if n := len(l.Segments) - len(created); n > 0 {
		segs += fmt.Sprintf(", %d without a readable header", n)
	}
	if len(sizes) == 1 {
		for sz := range sizes {
			segs += fmt.Sprintf(", created %s each", size(sz))
		}
	}
	row("segments", "%s", segs)
	row("records", "%d", l.Records())
	if l.Records() > 0 {
		row("oldest lsn", "%d", l.FirstLSN())
		row("newest lsn", "%d", l.LastLSN())
	} else {
		row("oldest lsn", "- (no records)")
		row("newest lsn", "- (no records)")
	}
	row("on disk", "%s in segment files (%d bytes)", size(disk), disk)
	if padding > 0 {
		row("used", "%s by headers, frames and padding (%d bytes, %s)", size(used), used, pct(used))
		row("padding", "%s after durable batches (%d bytes, %s)", size(padding), padding, pct(padding))
	} else {
		row("used", "%s by headers and frames (%d bytes, %s)", size(used), used, pct(used))
	}
	row("payload", "%s in records (%d bytes, %s)", size(payload), payload, pct(payload))
	if len(created) > 0 {
		ts := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }
		row("created", "%s to %s (segment headers)", ts(slices.Min(created)), ts(slices.Max(created)))
	}
	row("state", "%s", statState(l))
	if err := probeURing(); err != nil {
		row("io_uring", "not usable: %v (the wal falls back to pwrite)", err)
	} else {
		row("io_uring", "usable")
	}
	return tw.Flush()
}

// statState is the state line of stat.
func statState(l *inspect.Log) string {
	if !l.Intact() {
		return verdict(l) + " (walctl verify lists them)"
	}
	st := "intact"
	for _, s := range l.Segments {
		if p, ok := s.Torn(); ok {
			st += fmt.Sprintf("; torn tail at %s:%d, first lost lsn %d (wal.Open cuts it)", s.Name, p.Cut, p.CutLSN)
		}
		if s.Unfinished() {
			st += fmt.Sprintf("; %s has no header (unfinished rotation; wal.Open removes it)", s.Name)
		}
	}
	return st
}
