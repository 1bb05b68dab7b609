package main

import (
	"errors"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

// etcd's server/storage/wal (v3.7): Save(hardState, entries) encodes the
// entries (rolling CRC-32C) and fdatasyncs once when entries are given.
// Segments are 64 MB, preallocated with fallocate by its file pipeline.
// Replay is what etcd does at start: Open + ReadAll, which verifies the CRC
// of every record and returns all entries in memory.

func etcdAdapter(gc bool) *Adapter {
	return &Adapter{
		Name:      variantName("etcd", gc),
		Lib:       "etcd",
		How:       variantHow("etcd wal.Save", gc),
		Checksums: true,
		BulkNote:  "Save of 4 MiB chunks (one fdatasync per chunk; the only way to skip it is SetUnsafeNoFsync)",
		Primary:   !gc,
		Open: func(dir string, o OpenOptions) (Log, error) {
			w, err := wal.Create(zap.NewNop(), dir, nil)
			if err != nil {
				return nil, err
			}
			next := uint64(1)
			term := uint64(1)
			typ := raftpb.EntryType_EntryNormal
			var (
				ents  []raftpb.Entry
				ptrs  []*raftpb.Entry
				index []uint64
				hs    raftpb.HardState
			)
			write := func(recs [][]byte) error {
				for len(ents) < len(recs) {
					ents = append(ents, raftpb.Entry{})
					index = append(index, 0)
				}
				ptrs = ptrs[:0]
				for i, p := range recs {
					index[i] = next + uint64(i)
					e := &ents[i]
					e.Term, e.Index, e.Type, e.Data = &term, &index[i], &typ, p
					ptrs = append(ptrs, e)
				}
				err := w.Save(&hs, ptrs)
				if err == nil {
					next += uint64(len(recs))
				}
				for i := range recs {
					ents[i].Data = nil
				}
				return err
			}
			return newUserLog(gc, o.Mode, write, w.Close), nil
		},
		Replay: func(dir string, fn func(p []byte) error, ph *phases) error {
			ph.start()
			w, err := wal.Open(zap.NewNop(), dir, &walpb.Snapshot{})
			if err != nil {
				return err
			}
			ph.Open = ph.lap()
			_, _, ents, err := w.ReadAll()
			if err != nil {
				return errors.Join(err, w.Close())
			}
			for _, e := range ents {
				if err := fn(e.Data); err != nil {
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
