package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/ringwal/ringwal/inspect"
)

func init() {
	register(&command{
		name:    "verify",
		summary: "check a log or segment file; problems as segment:offset: reason",
		usage: `verify [--json] [--max-record-size BYTES] PATH

Checks the log directory or segment file PATH: every segment header (magic,
checksum, version, fields), that each file name matches its header's base
LSN, every frame's checksum and fields, LSN continuity within each segment,
and across segments the sequence numbers and LSNs (a missing segment shows
there). Prints each problem as "segment:offset: reason", then a summary
line; files that are not segments are reported as notes.

A torn tail in the last segment is a note, not damage: a crash leaves one and
wal.Open cuts it. So are segment files at the end of the log whose header
never reached the disk (wal.Open removes them; the segment before them is
the last one). Anywhere else both are damage. A single segment file is
checked as if it were the last segment of its log.

Exit status: 0 intact (notes allowed), 1 damage found (or a segment of a
format version this walctl does not read), 2 bad usage or an I/O error.
--json prints one object instead. A progress bar goes to stderr when it is
a terminal and the log is large. Takes no lock and changes nothing.

examples:
  walctl verify /var/lib/app/wal && echo intact
  walctl verify --json /var/lib/app/wal | jq '.problems[]'
  walctl verify /var/lib/app/wal/00000000000000004097.seg`,
		run: runVerify,
	})
}

// verifyReport is what verify --json prints.
type verifyReport struct {
	Path        string            `json:"path"`
	Intact      bool              `json:"intact"`
	Segments    int               `json:"segments"`
	Records     int               `json:"records"`
	FirstLSN    uint64            `json:"first_lsn"`
	LastLSN     uint64            `json:"last_lsn"`
	Corruptions int               `json:"corruptions"`
	Unsupported int               `json:"unsupported"`
	Notes       int               `json:"notes"`
	Problems    []inspect.Problem `json:"problems"`
	// RepairKeeps describes what walctl repair would keep, when the log is
	// damaged and repair could fix it.
	RepairKeeps *repairKeeps `json:"repair_keeps,omitempty"`
}

type repairKeeps struct {
	Segments int    `json:"segments"`
	Records  int    `json:"records"`
	FirstLSN uint64 `json:"first_lsn"`
	LastLSN  uint64 `json:"last_lsn"`
}

func runVerify(args []string, stdout, stderr io.Writer) error {
	c := commands["verify"]
	fs := newFlagSet(c, stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	maxRec := maxRecordFlag(fs)
	path, err := parsePath(fs, c, args, "PATH")
	if err != nil {
		return err
	}
	if err := checkMaxRecord(*maxRec); err != nil {
		return err
	}
	// Ctrl-C stops the scan and clears the progress bar.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bar := newProgressBar(stderr, "verify")
	l, err := inspect.Scan(ctx, path, inspect.Options{MaxRecordSize: *maxRec, Progress: bar.update})
	bar.finish()
	if err != nil {
		return err
	}
	rep := verifyReport{Path: path, Intact: l.Intact(), Segments: len(l.Segments), Records: l.Records(),
		FirstLSN: l.FirstLSN(), LastLSN: l.LastLSN(), Corruptions: l.Count(inspect.Corruption),
		Unsupported: l.Count(inspect.Unsupported), Notes: l.Count(inspect.Note), Problems: l.Problems}
	if rep.Problems == nil {
		rep.Problems = []inspect.Problem{}
	}
	if !rep.Intact && l.Dir {
		if plan, err := inspect.PlanRepair(l); err == nil {
			rep.RepairKeeps = &repairKeeps{Segments: plan.Segments, Records: plan.Records, FirstLSN: plan.FirstLSN, LastLSN: plan.LastLSN}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, p := range l.Problems {
			fmt.Fprintln(stdout, p.String())
		}
		fmt.Fprintln(stdout, verifySummary(rep))
	}
	if !rep.Intact {
		return errDamage
	}
	return nil
}

func verifySummary(r verifyReport) string {
	what := fmt.Sprintf("%s, %s", plural(r.Segments, "segment", "segments"), plural(r.Records, "record", "records"))
	notes := ""
	if r.Notes > 0 {
		notes = ", " + plural(r.Notes, "note", "notes")
	}
	if r.Intact {
		return fmt.Sprintf("intact: %s (lsn %s)%s", what, lsnRange(r.Records, r.FirstLSN, r.LastLSN), notes)
	}
	s := fmt.Sprintf("%s%s; %s readable", r.verdict(), notes, what)
	if k := r.RepairKeeps; k != nil {
		s += fmt.Sprintf("; walctl repair would keep %s (lsn %s) in %s",
			plural(k.Records, "record", "records"), lsnRange(k.Records, k.FirstLSN, k.LastLSN), plural(k.Segments, "segment", "segments"))
	}
	return s
}

// verdict says how the log is damaged: "DAMAGED: 2 corruptions", or
// "UNREADABLE: ..." when the only problem is a format version this walctl
// does not read.
func (r verifyReport) verdict() string {
	var bad []string
	if r.Corruptions > 0 {
		bad = append(bad, plural(r.Corruptions, "corruption", "corruptions"))
	}
	if r.Unsupported > 0 {
		bad = append(bad, plural(r.Unsupported, "segment", "segments")+" of a format version this walctl does not read")
	}
	v := "DAMAGED"
	if r.Corruptions == 0 {
		v = "UNREADABLE"
	}
	return v + ": " + strings.Join(bad, ", ")
}

// verdict is verifyReport.verdict for a scanned log.
func verdict(l *inspect.Log) string {
	return verifyReport{Corruptions: l.Count(inspect.Corruption), Unsupported: l.Count(inspect.Unsupported)}.verdict()
}
