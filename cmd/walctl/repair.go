package main

import (
	"context"
	"fmt"
	"io"

	"github.com/ringwal/ringwal/inspect"
)

func init() {
	register(&command{
		name:    "repair",
		summary: "cut a torn tail and set damaged segments aside so the log opens",
		usage: `repair [--dry-run] [--max-record-size BYTES] DIR

Makes the log in DIR open again with wal.Open, keeping every record before
the first damage and a copy of every byte it takes out of the log:

  - a torn tail in the last segment is copied to NAME.tail-OFFSET.broken,
    then zeroed (wal.Open would zero it without a copy);
  - a segment damaged after its first frame is copied whole to NAME.broken,
    then cut at the start of the atomic batch the damage falls in;
  - a segment damaged in its header, or that does not continue the one
    before it (a missing segment), is renamed NAME.broken;
  - every segment after the damage is renamed NAME.broken.

Nothing is deleted. Prints each step, then what the log holds. A segment
of a format version this walctl does not read is refused (exit 2). With
--dry-run it prints what it would do and changes nothing; without, it takes
the log's lock first, so it fails while a writer has the log open.

examples:
  walctl repair --dry-run /var/lib/app/wal
  walctl repair /var/lib/app/wal && walctl verify /var/lib/app/wal`,
		run: runRepair,
	})
}

func runRepair(args []string, stdout, stderr io.Writer) error {
	c := commands["repair"]
	fs := newFlagSet(c, stderr)
	dry := fs.Bool("dry-run", false, "print what would be done; change nothing")
	maxRec := maxRecordFlag(fs)
	dir, err := parsePath(fs, c, args, "DIR")
	if err != nil {
		return err
	}
	if err := checkMaxRecord(*maxRec); err != nil {
		return err
	}
	res, err := inspect.Repair(context.Background(), dir, inspect.RepairOptions{DryRun: *dry, MaxRecordSize: *maxRec})
	if res != nil {
		printRepair(stdout, res, err == nil)
	}
	return err
}

func printRepair(w io.Writer, res *inspect.RepairResult, finished bool) {
	// pick returns the dry-run wording or the wording of what was done.
	pick := func(dry, done string) string {
		if res.DryRun {
			return dry
		}
		return done
	}
	if res.DryRun {
		fmt.Fprintln(w, "dry run: nothing is changed")
	}
	if len(res.Actions) == 0 {
		fmt.Fprintln(w, "nothing to repair")
	}
	for _, a := range res.Actions {
		switch a.Kind {
		case inspect.CutTail:
			fmt.Fprintf(w, pick("would cut the torn tail of %s at offset %d: copy [%d,%d) to %s, then zero those bytes\n",
				"cut the torn tail of %s at offset %d: copied [%d,%d) to %s, then zeroed those bytes\n"),
				a.Segment, a.Offset, a.Offset, a.End, a.Backup)
		case inspect.CutDamage:
			fmt.Fprintf(w, pick("would cut %s at offset %d: copy it whole to %s, then zero [%d,%d)\n",
				"cut %s at offset %d: copied it whole to %s, then zeroed [%d,%d)\n"),
				a.Segment, a.Offset, a.Backup, a.Offset, a.End)
		case inspect.SetAside:
			fmt.Fprintf(w, pick("would set aside %s as %s\n", "set aside %s as %s\n"), a.Segment, a.Backup)
		}
		if a.Why.Segment == a.Segment {
			fmt.Fprintf(w, "  because %s\n", a.Why)
		} else {
			fmt.Fprintf(w, "  because it comes after the damage in %s\n", a.Why.Segment)
		}
	}
	for _, s := range res.Before.Segments {
		if s.Unfinished() {
			fmt.Fprintf(w, "left %s alone: it has no header (unfinished rotation); wal.Open removes it\n", s.Name)
		}
	}
	if !finished {
		return
	}
	holds := pick("the log would hold", "the log now holds")
	if res.Records == 0 {
		fmt.Fprintf(w, "%s no records in %s\n", holds, plural(res.Segments, "segment", "segments"))
	} else {
		fmt.Fprintf(w, "%s %s (lsn %d-%d) in %s\n", holds, plural(res.Records, "record", "records"), res.FirstLSN, res.LastLSN, plural(res.Segments, "segment", "segments"))
	}
	if res.Segments == 0 {
		fmt.Fprintln(w, "warning: no segment is left; wal.Open starts a new log at lsn 1 (the .broken files keep the old one)")
	}
	if res.After != nil && !res.After.Intact() {
		fmt.Fprintf(w, "warning: the log is still damaged: run walctl verify %s\n", res.Dir)
	}
}
