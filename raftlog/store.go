package raftlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/ringwal/ringwal/wal"
)

// Errors returned by the store. Errors of the underlying log (wal.ErrFailed,
// wal.ErrBatchTooLarge, segment.ErrCorrupt, ...) are returned wrapped.
var (
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("raftlog: closed")
	// ErrCorrupt: META, STABLE or an entry does not read back as written,
	// or META and the wal disagree.
	ErrCorrupt = errors.New("raftlog: corrupt")
	// ErrUnsupportedVersion: an intact entry, META or STABLE of a format
	// version this build does not read.
	ErrUnsupportedVersion = errors.New("raftlog: unsupported format version")
	// ErrNonContiguous: StoreLogs was given entries that do not follow one
	// another, or do not continue the log.
	ErrNonContiguous = errors.New("raftlog: entries not contiguous")
	// ErrMiddleDelete: DeleteRange of a range that is neither a prefix nor a
	// suffix of the log.
	ErrMiddleDelete = errors.New("raftlog: only a prefix or a suffix of the log can be deleted")
)

// Options configures a store. The zero value is usable.
type Options struct {
	// WAL configures the log in dir/wal; its zero value takes the wal's
	// defaults (64 MiB segments, io_uring when the kernel allows it). A
	// StoreLogs batch must fit in one segment (wal.ErrBatchTooLarge).
	WAL wal.Options
}

// Store is a raft.LogStore, raft.MonotonicLogStore and raft.StableStore kept
// in one directory. All methods are safe for concurrent use.
type Store struct {
	dir  string
	dirf *os.File
	w    *wal.WAL

	// wmu serialises the writers of the log (StoreLogs, DeleteRange, Close),
	// which are the only ones to change meta.
	wmu sync.Mutex
	// mu guards meta. Readers hold it across their wal read, so that a
	// change of the mapping (a new log after the store was emptied) cannot
	// fall between the range check and the read.
	mu   sync.RWMutex
	meta meta

	smu    sync.Mutex // guards stable and serialises its writers
	stable map[string][]byte

	closed atomic.Bool

	// afterMeta, when set (tests), runs right after META was replaced, and
	// an error from it aborts the operation there: a crash at that point.
	afterMeta func() error
}

// Interfaces the store implements.
var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
	_ raft.StableStore       = (*Store)(nil)
)

// Open opens the store in dir, creating it if needed. It opens (and
// recovers) the wal in dir/wal, which locks the directory against another
// writer (wal.ErrLocked), reads META and STABLE, checks the first and the
// last live entry against META, and removes wal segments left over from an
// interrupted compaction.
func Open(dir string, opts Options) (*Store, error) {
	if err := mkdirDurable(dir); err != nil {
		return nil, err
	}
	w, err := wal.Open(filepath.Join(dir, walDirName), opts.WAL)
	if err != nil {
		return nil, fmt.Errorf("raftlog: open %s: %w", dir, err)
	}
	s := &Store{dir: dir, w: w}
	ok := false
	defer func() {
		if !ok {
			_ = w.Close()
			if s.dirf != nil {
				s.dirf.Close()
			}
		}
	}()
	if s.dirf, err = os.Open(dir); err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	if err := removeTemps(s.dirf, dir); err != nil {
		return nil, err
	}
	if err := s.loadMeta(); err != nil {
		return nil, err
	}
	if err := s.loadStable(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// loadMeta reads META, checks it against the wal and finishes an
// interrupted compaction.
func (s *Store) loadMeta() error {
	b, found, err := readFile(s.dir, metaFileName)
	if err != nil {
		return err
	}
	first, last := s.w.FirstLSN(), s.w.LastLSN()
	if !found {
		if last >= first {
			return fmt.Errorf("%w: %s missing while the wal holds records %d-%d", ErrCorrupt, metaFileName, first, last)
		}
		s.meta = meta{runs: []run{{lsn: last + 1}}}
		return nil
	}
	m, err := decodeMeta(b)
	if err != nil {
		return err
	}
	s.meta = m
	if _, _, ok := m.bounds(last); ok {
		if err := s.checkRuns(first, last); err != nil {
			return err
		}
	}
	if reclaim := min(m.runs[0].lsn, last+1); reclaim > first {
		if err := s.w.TruncateFront(reclaim); err != nil {
			return fmt.Errorf("raftlog: remove dead segments below lsn %d: %w", reclaim, err)
		}
	}
	return nil
}

// checkRuns checks that the wal ([firstLSN, lastLSN]) holds every record
// that META maps, and reads the first and the last record of each run to
// check the indexes they carry.
func (s *Store) checkRuns(firstLSN, lastLSN uint64) error {
	runs := s.meta.runs
	if runs[0].lsn < firstLSN {
		return fmt.Errorf("%w: %s puts entry %d at lsn %d, but the wal starts at lsn %d",
			ErrCorrupt, metaFileName, runs[0].index, runs[0].lsn, firstLSN)
	}
	for i, r := range runs {
		end := lastLSN // LSN of the run's last entry
		if i < len(runs)-1 {
			end = r.lsn + (runs[i+1].index - r.index) - 1
		}
		if end > lastLSN || r.lsn > lastLSN+1 {
			return fmt.Errorf("%w: %s puts entries %d-%d at lsn %d-%d, but the wal ends at lsn %d",
				ErrCorrupt, metaFileName, r.index, r.index+(end-r.lsn), r.lsn, end, lastLSN)
		}
		if end < r.lsn {
			continue // the last run, empty
		}
		var l raft.Log
		for _, lsn := range []uint64{r.lsn, end} {
			if err := s.getLocked(r.index+(lsn-r.lsn), lsn, &l); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) loadStable() error {
	b, found, err := readFile(s.dir, stableFileName)
	if err != nil {
		return err
	}
	if !found {
		s.stable = map[string][]byte{}
		return nil
	}
	s.stable, err = decodeStable(b)
	return err
}

// setMeta replaces META (durably) and then the mapping in memory.
func (s *Store) setMeta(m meta) error {
	if err := replaceFile(s.dirf, s.dir, metaFileName, m.encode()); err != nil {
		return err
	}
	s.mu.Lock()
	s.meta = m
	s.mu.Unlock()
	if s.afterMeta != nil {
		return s.afterMeta()
	}
	return nil
}

// bounds returns the live range of raft indexes; ok is false when the store
// is empty. Callers hold mu or wmu.
func (s *Store) bounds() (first, last uint64, ok bool) {
	return s.meta.bounds(s.w.LastLSN())
}

// FirstIndex returns the index of the first entry, or 0 when the store is
// empty.
func (s *Store) FirstIndex() (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	s.mu.RLock()
	first, _, _ := s.bounds()
	s.mu.RUnlock()
	return first, nil
}

// LastIndex returns the index of the last entry, or 0 when the store is
// empty.
func (s *Store) LastIndex() (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	s.mu.RLock()
	_, last, _ := s.bounds()
	s.mu.RUnlock()
	return last, nil
}

// GetLog reads entry index into l. It returns raft.ErrLogNotFound (itself,
// not wrapped: raft compares with ==) when index is outside
// [FirstIndex, LastIndex]. l.Data and l.Extensions are l's own.
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	first, last, ok := s.bounds()
	if !ok || index < first || index > last {
		return raft.ErrLogNotFound
	}
	return s.getLocked(index, s.meta.lsnOf(index), l)
}

// getLocked reads the record at lsn, which must hold entry index.
func (s *Store) getLocked(index, lsn uint64, l *raft.Log) error {
	b, err := s.w.Read(lsn)
	switch {
	case errors.Is(err, wal.ErrNotFound):
		// Its segment was removed by a compaction racing with us.
		return raft.ErrLogNotFound
	case errors.Is(err, wal.ErrClosed):
		return ErrClosed
	case err != nil:
		return fmt.Errorf("raftlog: read entry %d (lsn %d): %w", index, lsn, err)
	}
	if err := DecodeLog(b, l); err != nil {
		return fmt.Errorf("raftlog: entry %d (lsn %d): %w", index, lsn, err)
	}
	if l.Index != index {
		return fmt.Errorf("%w: lsn %d holds entry %d where %d was expected", ErrCorrupt, lsn, l.Index, index)
	}
	return nil
}

// StoreLog stores one entry; see StoreLogs.
func (s *Store) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs appends logs, which must have consecutive indexes continuing the
// log (any first index when the store is empty), as one atomic batch: it
// does not return until all of them are durable, and a crash keeps all or
// none. Entries out of sequence get ErrNonContiguous and change nothing. A
// failed write stops the wal (wal.ErrFailed, fail-stop): every later
// StoreLogs fails until the store is reopened, which recovers every entry
// already stored.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	size := 0
	for i, l := range logs {
		switch {
		case l == nil:
			return fmt.Errorf("raftlog: StoreLogs: entry %d of the batch is nil", i)
		case l.Index == 0:
			return fmt.Errorf("%w: index 0 (raft indexes start at 1)", ErrNonContiguous)
		case i > 0 && l.Index != logs[i-1].Index+1:
			return fmt.Errorf("%w: index %d follows %d in the batch", ErrNonContiguous, l.Index, logs[i-1].Index)
		}
		size += EncodedSize(l)
	}
	buf := make([]byte, 0, size)
	recs := make([][]byte, len(logs))
	for i, l := range logs {
		start := len(buf)
		var err error
		if buf, err = AppendLog(buf, l); err != nil {
			return err
		}
		recs[i] = buf[start:len(buf):len(buf)]
	}

	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	_, last, nonEmpty := s.bounds()
	next := s.w.LastLSN() + 1
	if nonEmpty {
		if logs[0].Index != last+1 {
			return fmt.Errorf("%w: entries %d-%d do not continue the log, which ends at %d",
				ErrNonContiguous, logs[0].Index, logs[len(logs)-1].Index, last)
		}
	} else if m := (meta{runs: []run{{index: logs[0].Index, lsn: next}}}); !s.meta.equal(m) {
		// A new log: say where it starts before its first record exists.
		if err := s.setMeta(m); err != nil {
			return err
		}
	}
	lsn, err := s.w.AppendBatch(recs)
	if err != nil {
		return fmt.Errorf("raftlog: store entries %d-%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	if lsn != next {
		// Only this store appends to its wal; this is a bug, and the
		// mapping can no longer be trusted.
		return fmt.Errorf("%w: entries %d-%d went to lsn %d, expected %d",
			ErrCorrupt, logs[0].Index, logs[len(logs)-1].Index, lsn, next)
	}
	return nil
}

// DeleteRange deletes entries lo through hi, inclusive: a prefix of the
// log (compaction), a suffix (conflicting entries), or all of it. A range
// outside the log changes nothing; one strictly inside it gets
// ErrMiddleDelete. The deletion is durable when DeleteRange returns; a crash
// before that leaves the log as it was or as DeleteRange leaves it.
func (s *Store) DeleteRange(lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	first, last, ok := s.bounds()
	lastLSN := s.w.LastLSN()
	runs := s.meta.runs
	var m meta
	switch {
	case !ok || hi < first || lo > last:
		return nil
	case lo <= first && hi >= last:
		// Everything: the store is empty, and the next entry gets lsn
		// lastLSN+1 whatever its index.
		m.runs = []run{{index: last + 1, lsn: lastLSN + 1}}
	case lo <= first:
		// A prefix: the run holding hi+1 now starts there.
		k := hi + 1
		i := sort.Search(len(runs), func(i int) bool { return runs[i].index > k }) - 1
		m.runs = append([]run{{index: k, lsn: s.meta.lsnOf(k)}}, runs[i+1:]...)
	case hi >= last:
		// A suffix: entries from lo on will be appended after the
		// current end; the records in between are dead.
		i := sort.Search(len(runs), func(i int) bool { return runs[i].index >= lo })
		m.runs = append(slices.Clip(runs[:i]), run{index: lo, lsn: lastLSN + 1})
	default:
		return fmt.Errorf("%w: asked for %d-%d, the log holds %d-%d", ErrMiddleDelete, lo, hi, first, last)
	}
	if err := s.setMeta(m); err != nil {
		return fmt.Errorf("raftlog: delete entries %d-%d: %w", max(lo, first), min(hi, last), err)
	}
	// The entries are gone; what follows only frees space (and Open does
	// it again if it is interrupted).
	if m.runs[0].lsn > s.w.FirstLSN() {
		if err := s.w.TruncateFront(m.runs[0].lsn); err != nil {
			return fmt.Errorf("raftlog: entries %d-%d deleted, but removing their segments failed: %w",
				max(lo, first), min(hi, last), err)
		}
	}
	return nil
}

// IsMonotonic reports true: the store refuses gaps between entries (raft
// then deletes the whole log before restarting it after a snapshot restore,
// and the store accepts a new first index only when empty).
func (s *Store) IsMonotonic() bool { return true }

// Stats returns the statistics of the underlying wal (backend, batches,
// fsyncs, sync latency).
func (s *Store) Stats() wal.Stats { return s.w.Stats() }

// Close closes the store. Entries already stored are durable; calls after
// Close return ErrClosed.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Swap(true) {
		return ErrClosed
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	err := s.w.Close()
	if err2 := s.dirf.Close(); err == nil {
		err = err2
	}
	return err
}
