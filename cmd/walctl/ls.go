package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ringwal/ringwal/inspect"
	"github.com/ringwal/ringwal/segment"
)

func init() {
	register(&command{
		name:    "ls",
		summary: "list the segments of a log, one row each, and totals",
		usage: `ls [--max-record-size BYTES] DIR

Lists every segment file of the log in DIR: its name, base LSN, sequence
number, the LSNs of its records, how many there are, the file's size, and
its state: sealed (the log appends no more to it), active (the one it
appends to, with the preallocated space it has left), "recycled" for a
segment written into the file of an older one (the space after its records
holds that segment's stale bytes), or what is wrong with it. Then a totals
line and the files in DIR that are not segments. Reads every record to
count it; takes no lock and changes nothing, so it is safe
on a live log. Exits 0 even when it shows damage: walctl verify is the
check.

examples:
  walctl ls /var/lib/app/wal
  walctl ls testdata/intact`,
		run: runLs,
	})
}

func runLs(args []string, stdout, stderr io.Writer) error {
	l, err := scanDirCommand(commands["ls"], args, stderr)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEGMENT\tBASE\tSEQ\tLSNS\tRECORDS\tSIZE\tSTATE")
	damaged := 0
	for _, s := range l.Segments {
		seq := "-"
		if s.HeaderOK {
			seq = fmt.Sprint(s.Header.Seq)
		}
		base, _ := segment.ParseFileName(s.Name)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", s.Name, base, seq, lsnRange(s.Records, s.FirstLSN, s.LastLSN), s.Records, size(s.FileSize), segState(s))
		if _, ok := s.Damaged(); ok {
			damaged++
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "total: %s, %s (lsn %s), %s in segment files",
		plural(len(l.Segments), "segment", "segments"), plural(l.Records(), "record", "records"),
		lsnRange(l.Records(), l.FirstLSN(), l.LastLSN()), size(l.FileBytes()))
	if damaged > 0 {
		fmt.Fprintf(stdout, "; %s with problems (see walctl verify)", plural(damaged, "segment", "segments"))
	}
	fmt.Fprintln(stdout)
	for _, o := range l.Others {
		fmt.Fprintf(stdout, "not a segment: %s\n", o)
	}
	return nil
}

// segState is the STATE column: what the log makes of the segment.
func segState(s *inspect.Segment) string {
	if p, ok := s.Damaged(); ok {
		switch {
		case p.Kind == inspect.Unsupported:
			return p.Reason
		case !s.HeaderOK:
			return fmt.Sprintf("damaged header at offset %d", p.Offset)
		case p.Offset == 0:
			return "damaged: does not continue the segment before it"
		}
		return fmt.Sprintf("damaged at offset %d", p.Offset)
	}
	if !s.HeaderOK {
		return "no header: unfinished rotation, removed on open"
	}
	if !s.Active {
		if s.Header.Recycled() {
			return "sealed, recycled"
		}
		return "sealed"
	}
	st := "active"
	if p, ok := s.Torn(); ok {
		st += fmt.Sprintf(", torn tail at offset %d (cut on open)", p.Cut)
	}
	if left := s.Header.Size - s.End; left > 0 {
		if s.Header.Recycled() {
			return st + ", recycled, " + size(left) + " left"
		}
		return st + ", " + size(left) + " preallocated left"
	}
	return st + ", full"
}
