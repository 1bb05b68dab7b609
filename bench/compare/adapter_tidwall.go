package main

import (
	tidwal "github.com/tidwall/wal"
)

// tidwall/wal v1.2 with defaults (binary format, 20 MB segments): Write and
// WriteBatch write and fsync when NoSync is false. Bulk opens it with
// NoSync and calls Sync once at the end. Its binary format carries no
// checksum.

func tidwallAdapter(gc bool) *Adapter {
	return &Adapter{
		Name:         variantName("tidwall", gc),
		Lib:          "tidwall",
		How:          variantHow("tidwall/wal Write/WriteBatch", gc),
		Checksums:    false,
		ChecksumNote: "the binary format has no checksum",
		BulkNote:     "NoSync; WriteBatch of 4 MiB chunks, one Sync (fsync) at the end",
		Primary:      !gc,
		Open: func(dir string, o OpenOptions) (Log, error) {
			opts := *tidwal.DefaultOptions
			opts.NoSync = o.Mode == ModeBulk
			l, err := tidwal.Open(dir, &opts)
			if err != nil {
				return nil, err
			}
			next := uint64(1)
			var b tidwal.Batch
			write := func(recs [][]byte) error {
				if len(recs) == 1 {
					err := l.Write(next, recs[0])
					if err == nil {
						next++
					}
					return err
				}
				b.Clear()
				for i, p := range recs {
					b.Write(next+uint64(i), p)
				}
				err := l.WriteBatch(&b)
				if err == nil {
					next += uint64(len(recs))
				}
				return err
			}
			u := newUserLog(gc, o.Mode, write, l.Close)
			u.bulkSync = l.Sync
			return u, nil
		},
		Replay: func(dir string, fn func(p []byte) error, ph *phases) error {
			ph.start()
			opts := *tidwal.DefaultOptions
			opts.NoCopy = true
			l, err := tidwal.Open(dir, &opts)
			if err != nil {
				return err
			}
			ph.Open = ph.lap()
			first, _ := l.FirstIndex()
			last, _ := l.LastIndex()
			for i := first; i <= last && first > 0; i++ {
				p, err := l.Read(i)
				if err != nil {
					l.Close()
					return err
				}
				if err := fn(p); err != nil {
					l.Close()
					return err
				}
			}
			ph.Read = ph.lap()
			err = l.Close()
			ph.Close = ph.lap()
			return err
		},
	}
}
