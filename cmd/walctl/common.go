package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/dustin/go-humanize"

	"github.com/ringwal/ringwal/inspect"
	"github.com/ringwal/ringwal/segment"
)

// parsePath parses args, in which flags may come before or after the one
// positional argument, and returns that argument (named what in errors).
func parsePath(fs *flag.FlagSet, c *command, args []string, what string) (string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", err
			}
			return "", usagef("%v (see walctl %s -h)", err, c.name)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(pos) {
	case 0:
		return "", usagef("missing %s (see walctl %s -h)", what, c.name)
	case 1:
		if pos[0] == "" {
			return "", usagef("empty %s", what)
		}
		return pos[0], nil
	}
	return "", usagef("one %s expected, got %d: %q", what, len(pos), pos)
}

// maxRecordFlag adds --max-record-size, the reader's record size limit.
func maxRecordFlag(fs *flag.FlagSet) *int {
	return fs.Int("max-record-size", segment.DefaultMaxRecordSize,
		"largest record the log was written with, in bytes (1.."+strconv.Itoa(segment.MaxRecordSizeLimit)+"); longer frames read as damage")
}

func checkMaxRecord(n int) error {
	if n < 1 || n > segment.MaxRecordSizeLimit {
		return usagef("--max-record-size %d out of range 1..%d", n, segment.MaxRecordSizeLimit)
	}
	return nil
}

// size formats a byte count for people: "64 KiB".
func size(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

// lsnRange formats "first-last", or "-" for none.
func lsnRange(n int, first, last uint64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%d-%d", first, last)
}

// plural returns "1 thing" or "n things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// scanDirCommand is what ls and stat share before their output: parse the
// flags and the DIR argument, then scan the log directory.
func scanDirCommand(c *command, args []string, stderr io.Writer) (*inspect.Log, error) {
	fs := newFlagSet(c, stderr)
	maxRec := maxRecordFlag(fs)
	dir, err := parsePath(fs, c, args, "DIR")
	if err != nil {
		return nil, err
	}
	if err := checkMaxRecord(*maxRec); err != nil {
		return nil, err
	}
	return inspect.Scan(context.Background(), dir, inspect.Options{MaxRecordSize: *maxRec, DirOnly: true})
}
