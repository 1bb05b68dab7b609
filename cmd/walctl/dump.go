package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/ringwal/ringwal/inspect"
	"github.com/ringwal/ringwal/segment"
)

func init() {
	register(&command{
		name:    "dump",
		summary: "print the records of a log or of one segment file",
		usage: `dump [--payload hex|text|base64|none] [--format text|json] [--from LSN] [--to LSN] [--continue-on-corruption] PATH

Prints one line per record of the log directory or segment file PATH, in LSN
order: LSN, segment, offset, payload length, checksum, lag, epoch, whether
its atomic batch continues, and the payload. Records of an atomic batch that
is not whole are not part of the log and are not printed.

Problems appear in place, on lines that start with "!" (text) or objects with
"type":"problem" (json): a torn tail in the last segment is a note; anything
else is damage. Dump stops at the first damage (exit 1) unless
--continue-on-corruption is given: then it resyncs at the next frame that is
valid on its own, says where, and goes on (exit 1 at the end).

--payload text quotes the payload as a Go string (lossless); in JSON, text is
a JSON string, in which bytes that are not UTF-8 become U+FFFD: use hex or
base64 for binary payloads. Takes no lock and changes nothing.

examples:
  walctl dump /var/lib/app/wal
  walctl dump --from 1000 --to 1010 --payload hex /var/lib/app/wal
  walctl dump --format json --payload base64 /var/lib/app/wal | jq .lsn
  walctl dump --continue-on-corruption --payload none /var/lib/app/wal/00000000000000004097.seg.broken`,
		run: runDump,
	})
}

// dumpRecord is a record line in JSON.
type dumpRecord struct {
	Type           string  `json:"type"` // "record"
	LSN            uint64  `json:"lsn"`
	Segment        string  `json:"segment"`
	Offset         int64   `json:"offset"`
	Length         int     `json:"length"`
	CRC            uint32  `json:"crc"`
	Lag            uint32  `json:"lag"`
	Epoch          uint16  `json:"epoch"`
	BatchContinues bool    `json:"batch_continues"`
	Padding        int64   `json:"padding,omitempty"` // bytes of padding after the frame (FlagPadToPage)
	Payload        *string `json:"payload,omitempty"`
}

// dumpProblem is a problem line in JSON.
type dumpProblem struct {
	Type string `json:"type"` // "problem"
	inspect.Problem
}

func runDump(args []string, stdout, stderr io.Writer) error {
	c := commands["dump"]
	fs := newFlagSet(c, stderr)
	payload := fs.String("payload", "text", "payload as hex, text, base64 or none")
	format := fs.String("format", "text", "text, or json (one object per line)")
	from := fs.Uint64("from", 0, "first LSN to print (0: from the start)")
	to := fs.Uint64("to", 0, "last LSN to print (0: to the end)")
	cont := fs.Bool("continue-on-corruption", false, "read past damage: resync at the next valid frame and mark the damage")
	maxRec := maxRecordFlag(fs)
	path, err := parsePath(fs, c, args, "PATH")
	if err != nil {
		return err
	}
	var enc func([]byte) string
	switch *payload {
	case "hex":
		enc = hex.EncodeToString
	case "text":
		enc = func(b []byte) string { return string(b) }
	case "base64":
		enc = base64.StdEncoding.EncodeToString
	case "none":
	default:
		return usagef("--payload %q: want hex, text, base64 or none", *payload)
	}
	switch {
	case *format != "text" && *format != "json":
		return usagef("--format %q: want text or json", *format)
	case *to != 0 && *from > *to:
		return usagef("--from %d is above --to %d", *from, *to)
	}
	if err := checkMaxRecord(*maxRec); err != nil {
		return err
	}

	bw := bufio.NewWriter(stdout)
	js := json.NewEncoder(bw)
	damage := 0
	opts := inspect.Options{MaxRecordSize: *maxRec, From: *from, To: *to, Resync: *cont}
	opts.Record = func(s *inspect.Segment, rec segment.Record) error {
		if *format == "json" {
			r := dumpRecord{Type: "record", LSN: rec.LSN, Segment: s.Name, Offset: rec.Offset, Length: len(rec.Payload),
				CRC: rec.CRC, Lag: rec.Lag, Epoch: rec.Epoch, BatchContinues: rec.BatchContinues(), Padding: rec.Padding()}
			if enc != nil {
				p := enc(rec.Payload)
				r.Payload = &p
			}
			return js.Encode(r)
		}
		fmt.Fprintf(bw, "lsn=%d seg=%s off=%d len=%d crc=0x%08x lag=%d epoch=%d", rec.LSN, s.Name, rec.Offset, len(rec.Payload), rec.CRC, rec.Lag, rec.Epoch)
		if rec.BatchContinues() {
			bw.WriteString(" batch=continues")
		}
		if rec.Padded() {
			fmt.Fprintf(bw, " pad=%d", rec.Padding())
		}
		switch *payload {
		case "none":
		case "text":
			bw.WriteString(" payload=" + strconv.Quote(string(rec.Payload)))
		default:
			bw.WriteString(" payload=" + enc(rec.Payload))
		}
		return bw.WriteByte('\n')
	}
	var stopped *inspect.Problem
	opts.Problem = func(p inspect.Problem) error {
		if p.Offset < 0 {
			return nil // a file that is not a segment: not part of a dump
		}
		if p.Damage() {
			damage++
		}
		if *format == "json" {
			if err := js.Encode(dumpProblem{Type: "problem", Problem: p}); err != nil {
				return err
			}
		} else {
			line := "! " + p.String()
			if p.ResumeOffset > 0 {
				line += fmt.Sprintf(" [resumed at offset %d, lsn %d]", p.ResumeOffset, p.ResumeLSN)
			} else if *cont && p.Damage() && p.Offset >= segment.DataOffset {
				line += " [no valid frame after it in this segment]"
			}
			if _, err := bw.WriteString(line + "\n"); err != nil {
				return err
			}
		}
		if p.Damage() && !*cont {
			stopped = &p
			return errStopDump
		}
		return nil
	}
	_, err = inspect.Scan(context.Background(), path, opts)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	switch {
	case errors.Is(err, errStopDump):
		fmt.Fprintf(stderr, "walctl dump: stopped at damage in %s:%d (--continue-on-corruption reads past it)\n", stopped.Segment, stopped.Offset)
		return errDamage
	case err != nil:
		return err
	case damage > 0:
		fmt.Fprintf(stderr, "walctl dump: %s found (marked in the output)\n", plural(damage, "problem", "problems"))
		return errDamage
	}
	return nil
}

var errStopDump = errors.New("stop at damage")
