package main

import (
	"errors"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
)

// hashicorp/raft-wal v0.4.2 with defaults: StoreLogs writes a batch and
// fsyncs it (there is no way to defer the sync). Its reads verify no
// checksum by design: the commit frame's CRC is checked only when the tail
// segment is recovered.

func raftwalAdapter(gc bool) *Adapter {
	return &Adapter{
		Name:         variantName("raftwal", gc),
		Lib:          "raftwal",
		How:          variantHow("raft-wal StoreLogs", gc),
		Checksums:    false,
		ChecksumNote: "GetLog verifies no checksum (by design; CRCs are checked on tail recovery only)",
		BulkNote:     "StoreLogs of 4 MiB chunks (the sync cannot be deferred): one fsync per chunk",
		Primary:      !gc,
		Open: func(dir string, o OpenOptions) (Log, error) {
			w, err := raftwal.Open(dir)
			if err != nil {
				return nil, err
			}
			next := uint64(1)
			var logs []raft.Log
			var ptrs []*raft.Log
			write := func(recs [][]byte) error {
				for len(logs) < len(recs) {
					logs = append(logs, raft.Log{})
				}
				ptrs = ptrs[:0]
				for i, p := range recs {
					logs[i] = raft.Log{Index: next + uint64(i), Term: 1, Type: raft.LogCommand, Data: p}
					ptrs = append(ptrs, &logs[i])
				}
				err := w.StoreLogs(ptrs)
				if err == nil {
					next += uint64(len(recs))
				}
				for i := range recs {
					logs[i].Data = nil
				}
				return err
			}
			return newUserLog(gc, o.Mode, write, w.Close), nil
		},
		Replay: func(dir string, fn func(p []byte) error, ph *phases) error {
			ph.start()
			w, err := raftwal.Open(dir)
			if err != nil {
				return err
			}
			ph.Open = ph.lap()
			first, err1 := w.FirstIndex()
			last, err2 := w.LastIndex()
			if err := errors.Join(err1, err2); err != nil {
				return errors.Join(err, w.Close())
			}
			var l raft.Log
			for i := first; i <= last && first > 0; i++ {
				if err := w.GetLog(i, &l); err != nil {
					return errors.Join(err, w.Close())
				}
				if err := fn(l.Data); err != nil {
					return errors.Join(err, w.Close())
				}
			}
			ph.Read = ph.lap()
			err = w.Close()
			ph.Close = ph.lap()
			return err
		},
	}
}
