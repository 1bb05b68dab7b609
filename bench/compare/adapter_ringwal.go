package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/ringwal/ringwal/wal"
)

// This project's log, with default options and the backend forced.
// Append is its own group commit; bulk uses AppendAsync per record (no wait:
// records ride the batches group commit forms anyway) and one Sync at the end.

func ringwalAdapter(name string, uring bool) *Adapter {
	return ringwalVariant(name, uring, "", wal.Options{})
}

// ringwalVariant is the adapter with some Options changed (experiments:
// -adapters ringwal-uring-if1,...); note says what changed.
func ringwalVariant(name string, uring bool, note string, o wal.Options) *Adapter {
	o.Backend = wal.BackendPwrite
	how := "wal.Append: group commit, pwrite + fdatasync from MaxInFlight flushers"
	if uring {
		o.Backend = wal.BackendURing
		how = "wal.Append: group commit, WRITE_FIXED linked to fdatasync, pipelined"
	}
	if note != "" {
		how += "; " + note
	}
	open := func(dir string) (*wal.WAL, error) {
		return wal.Open(dir, o)
	}
	return &Adapter{
		Name:      name,
		Lib:       name,
		How:       how,
		Checksums: true,
		BulkNote:  "AppendAsync per record (durable with a later batch, no wait), one Sync at the end",
		Primary:   true,
		Open: func(dir string, o OpenOptions) (Log, error) {
			w, err := open(dir)
			if err != nil {
				return nil, err
			}
			// The next segment is prepared only once the first is a quarter
			// full, so nothing is written in the background at Open.
			return &ringwalLog{w: w}, nil
		},
		Replay: func(dir string, fn func(p []byte) error, ph *phases) error {
			ph.start()
			w, err := open(dir)
			if err != nil {
				return err
			}
			ph.Open = ph.lap()
			r, err := w.NewReader(w.FirstLSN())
			if err != nil {
				return errors.Join(err, w.Close())
			}
			for {
				rec, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return errors.Join(err, r.Close(), w.Close())
				}
				if err := fn(rec.Data); err != nil {
					return errors.Join(err, r.Close(), w.Close())
				}
			}
			ph.Read = ph.lap()
			err = errors.Join(r.Close(), w.Close())
			ph.Close = ph.lap()
			return err
		},
	}
}

type ringwalLog struct {
	w *wal.WAL
}

func (l *ringwalLog) Append(p []byte) error {
	_, err := l.w.Append(p)
	return err
}

func (l *ringwalLog) BulkAppend(p []byte) error {
	_, err := l.w.AppendAsync(p)
	return err
}

func (l *ringwalLog) BulkSync() error { return l.w.Sync() }

func (l *ringwalLog) Close() error { return l.w.Close() }

// ringwalStats exposes the log's own counters for the results' extra column.
func (l *ringwalLog) stats() map[string]any {
	s := l.w.Stats()
	return map[string]any{
		"backend":       string(s.Backend),
		"avg_batch":     s.AvgBatch,
		"batches":       s.Batches,
		"max_in_flight": s.MaxInFlight,
		"sync_p50_us":   s.SyncP50.Microseconds(),
		"sync_p99_us":   s.SyncP99.Microseconds(),
	}
}

// ringwalSteady is the log in its steady state, as a log with checkpoints
// runs after its first few segments: before the clock starts it writes and
// drops segments until it appends into a recycled file (one TruncateFront
// dropped) and two more are kept for its next rotations (the default
// Options.RecycleSegments). Its appends then overwrite written blocks, as
// the raw baseline's do in its file pre-zeroed at Open. The fresh-directory
// adapters never recycle.
func ringwalSteady(name string, uring bool) *Adapter {
	return ringwalSteadyVariant(name, uring, "", wal.Options{})
}

// ringwalSteadyVariant is ringwalSteady with some Options changed.
func ringwalSteadyVariant(name string, uring bool, note string, o wal.Options) *Adapter {
	how := "steady state: segments recycled, warmed up before the clock"
	if note != "" {
		how += "; " + note
	}
	a := ringwalVariant(name, uring, how, o)
	a.NoReplay = true // replay reads what the fresh adapter's does
	open, recycle := a.Open, o.RecycleSegments
	a.Open = func(dir string, o OpenOptions) (Log, error) {
		l, err := open(dir, o)
		if err != nil {
			return nil, err
		}
		w := l.(*ringwalLog).w
		if err := warmUp(w, recycle); err != nil {
			return nil, errors.Join(fmt.Errorf("%s: warm-up: %w", name, err), w.Close())
		}
		return l, nil
	}
	return a
}

// warmUpRecord is the size of warmUp's records. The last of them stay in
// the log (TruncateFront drops whole segments only), ahead of the
// workload's own.
const warmUpRecord = 256 << 10

// warmUp appends in large durable batches until the log has rotated into a
// recycled file, and leaves it with the files it dropped kept for reuse:
// it first rotates recycle+1 times (at least 3), so that the files
// TruncateFront drops fill a pool of recycle (Options.RecycleSegments; 0
// is the default, 2).
func warmUp(w *wal.WAL, recycle int) error {
	rec := make([]byte, warmUpRecord)
	batch := make([][]byte, 16)
	for i := range batch {
		batch[i] = rec
	}
	fill := func(done func(wal.Stats) bool) error {
		for i := 0; !done(w.Stats()); i++ {
			if i > 4096 { // 16 GiB
				return fmt.Errorf("no progress: %v", w.Stats())
			}
			if _, err := w.AppendBatch(batch); err != nil {
				return err
			}
		}
		return nil
	}
	if err := fill(func(s wal.Stats) bool { return s.Rotations >= uint64(max(3, recycle+1)) }); err != nil {
		return err
	}
	if err := w.TruncateFront(w.LastLSN()); err != nil {
		return err
	}
	if err := fill(func(s wal.Stats) bool { return s.Recycled >= 1 }); err != nil {
		return err
	}
	return w.TruncateFront(w.LastLSN())
}
