package raftlog

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/wal"
)

func TestEmptyStore(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer func() { require.NoError(t, s.Close()) }()
	checkRange(t, s, 0, 0, 0)
	var l raft.Log
	for _, idx := range []uint64{0, 1, 2, 1000, math.MaxUint64} {
		// Exactly the sentinel: raft compares with ==.
		require.Equal(t, raft.ErrLogNotFound, s.GetLog(idx, &l), "GetLog(%d)", idx)
	}
	require.NoError(t, s.DeleteRange(1, 100))
	require.NoError(t, s.DeleteRange(0, math.MaxUint64))
	require.NoError(t, s.StoreLogs(nil))
	s = reopen(t, s)
	checkRange(t, s, 0, 0, 0)
	require.True(t, s.IsMonotonic())
}

func TestStoreLogs(t *testing.T) {
	cases := []struct {
		name         string
		first        uint64 // index of the first entry stored
		n, batch     int
		more, batch2 int // a second run of entries, continuing the first
	}{
		{name: "one entry", first: 1, n: 1, batch: 1},
		{name: "batch from 1", first: 1, n: 5, batch: 5},
		{name: "start at 10000", first: 10000, n: 5, batch: 5},
		{name: "StoreLog one by one", first: 7, n: 40, batch: 1},
		{name: "batches across segments", first: 1, n: 600, batch: 64},
		{name: "batch then single entries", first: 100, n: 101, batch: 101, more: 5, batch2: 1},
		{name: "start high across segments", first: 1 << 40, n: 300, batch: 16, more: 300, batch2: 64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			storeRange(t, s, tc.first, tc.n, tc.batch, 1)
			if tc.more > 0 {
				storeRange(t, s, tc.first+uint64(tc.n), tc.more, tc.batch2, 1)
			}
			last := tc.first + uint64(tc.n+tc.more) - 1
			checkRange(t, s, tc.first, last, 1)
			s = reopen(t, s)
			checkRange(t, s, tc.first, last, 1)
			require.NoError(t, s.Close())
		})
	}
}

func TestStoreLogAllFields(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	want := []*raft.Log{
		{Index: 5, Term: 3, Type: raft.LogCommand, Data: []byte("cmd"), Extensions: []byte{0, 1, 2}},
		{Index: 6, Term: 3, Type: raft.LogConfiguration, Data: make([]byte, 10<<10)},
		{Index: 7, Term: math.MaxUint64, Type: raft.LogBarrier},
		{Index: 8, Term: 4, Type: raft.LogNoop, Extensions: []byte("only extensions")},
	}
	// want[0] keeps the zero time, which reads back as the zero time.
	want[1].AppendedAt = time.Date(1500, 2, 3, 4, 5, 6, 7, time.UTC)
	want[2].AppendedAt = time.Date(3000, 1, 1, 0, 0, 0, 999_999_999, time.UTC)
	want[3].AppendedAt = time.Unix(0, 0).UTC().Add(-time.Nanosecond)
	for _, l := range want {
		require.NoError(t, s.StoreLog(l))
	}
	for range 2 {
		for _, w := range want {
			var got raft.Log
			require.NoError(t, s.GetLog(w.Index, &got))
			require.Equal(t, *w, got)
		}
		s = reopen(t, s)
	}
}

func TestStoreLogsNonContiguous(t *testing.T) {
	cases := []struct {
		name  string
		logs  []*raft.Log
		empty bool // store the logs into an empty store
	}{
		{name: "gap after the tail", logs: makeLogs(12, 3, 1)},
		{name: "overlaps the tail", logs: makeLogs(10, 3, 1)},
		{name: "rewrites the first entry", logs: makeLogs(1, 1, 2)},
		{name: "gap inside the batch", logs: append(makeLogs(11, 2, 1), makeLogs(14, 1, 1)...)},
		{name: "descending inside the batch", logs: append(makeLogs(11, 2, 1), makeLogs(11, 1, 1)...)},
		{name: "index 0 into an empty store", logs: makeLogs(0, 2, 1), empty: true},
		{name: "gap inside a batch into an empty store", logs: append(makeLogs(5, 1, 1), makeLogs(7, 1, 1)...), empty: true},
		{name: "index wraps around", logs: append(makeLogs(math.MaxUint64, 1, 1), makeLogs(0, 1, 1)...), empty: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			defer s.Close()
			last := uint64(0)
			if !tc.empty {
				storeRange(t, s, 1, 10, 4, 1)
				last = 10
			}
			err := s.StoreLogs(tc.logs)
			require.ErrorIs(t, err, ErrNonContiguous)
			t.Log(err)
			// Nothing changed, and the store goes on.
			if tc.empty {
				checkRange(t, s, 0, 0, 0)
			} else {
				checkRange(t, s, 1, last, 1)
			}
			storeRange(t, s, last+1, 3, 3, 1)
			checkRange(t, s, 1, last+3, 1)
		})
	}
	t.Run("nil entry", func(t *testing.T) {
		s := openTest(t, t.TempDir())
		defer s.Close()
		require.ErrorContains(t, s.StoreLogs([]*raft.Log{nil}), "nil")
	})
}

// The cases of raft-wal's TestDeleteRange, on a log of entries 1000-1299
// spread over several segments.
func TestDeleteRange(t *testing.T) {
	const first, last = 1000, 1299
	cases := []struct {
		name              string
		min, max          uint64
		expectErr         error
		expectFirst       uint64 // 0: empty
		expectLast        uint64
		segmentsRemoved   bool
		segmentsUntouched bool
	}{
		{name: "empty range", min: 1000, max: 999, expectFirst: first, expectLast: last, segmentsUntouched: true},
		{name: "before the start", min: 0, max: 999, expectFirst: first, expectLast: last, segmentsUntouched: true},
		{name: "after the end", min: 1300, max: 5000, expectFirst: first, expectLast: last, segmentsUntouched: true},
		{name: "middle", min: 1010, max: 1020, expectErr: ErrMiddleDelete},
		{name: "prefix of one entry", min: 1000, max: 1000, expectFirst: 1001, expectLast: last, segmentsUntouched: true},
		{name: "prefix from below the start", min: 0, max: 1010, expectFirst: 1011, expectLast: last},
		{name: "prefix over segments", min: 1000, max: 1250, expectFirst: 1251, expectLast: last, segmentsRemoved: true},
		{name: "prefix to the last but one", min: 1, max: 1298, expectFirst: 1299, expectLast: last, segmentsRemoved: true},
		{name: "everything, exactly", min: 1000, max: 1299, expectFirst: 0, segmentsRemoved: true},
		{name: "everything and more", min: 1, max: math.MaxUint64, expectFirst: 0, segmentsRemoved: true},
		{name: "suffix of two", min: 1298, max: 1299, expectFirst: first, expectLast: 1297},
		{name: "suffix past the end", min: 1298, max: math.MaxUint64, expectFirst: first, expectLast: 1297},
		// A suffix is not removed from the wal (see the package
		// documentation): its records are dead until compaction passes them.
		{name: "suffix over segments", min: 1051, max: 1299, expectFirst: first, expectLast: 1050, segmentsUntouched: true},
		{name: "suffix leaving one", min: 1001, max: 1400, expectFirst: first, expectLast: first, segmentsUntouched: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			defer func() { s.Close() }()
			storeRange(t, s, first, last-first+1, 16, 1)
			segs := segmentCount(t, s)
			require.GreaterOrEqual(t, segs, 3)

			err := s.DeleteRange(tc.min, tc.max)
			if tc.expectErr != nil {
				require.ErrorIs(t, err, tc.expectErr)
				t.Log(err)
				checkRange(t, s, first, last, 1)
				return
			}
			require.NoError(t, err)
			if tc.segmentsRemoved {
				require.Less(t, segmentCount(t, s), segs, "segments")
			}
			if tc.segmentsUntouched {
				require.Equal(t, segs, segmentCount(t, s), "segments")
			}

			for range 2 {
				if tc.expectFirst == 0 {
					checkRange(t, s, 0, 0, 0)
				} else {
					checkRange(t, s, tc.expectFirst, tc.expectLast, 1)
				}
				s = reopen(t, s)
			}

			// The log goes on: after the last entry, or anywhere when it
			// is empty (then from 1, below where it was).
			next, wantFirst := tc.expectLast+1, tc.expectFirst
			if tc.expectFirst == 0 {
				next, wantFirst = 1, 1
			}
			storeRange(t, s, next, 20, 8, 2)
			for range 2 {
				gotFirst, _ := s.FirstIndex()
				gotLast, _ := s.LastIndex()
				require.Equal(t, []uint64{wantFirst, next + 19}, []uint64{gotFirst, gotLast})
				checkEntries(t, s, wantFirst, next-1, 1)
				checkEntries(t, s, next, next+19, 2)
				s = reopen(t, s)
			}
		})
	}
}

// Conflict truncation as raft does it: drop a suffix, append the leader's
// entries of a later term in its place.
func TestDeleteRangeSuffixThenRewrite(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer func() { s.Close() }()
	storeRange(t, s, 1, 200, 10, 1)
	require.NoError(t, s.DeleteRange(151, 200))
	storeRange(t, s, 151, 100, 10, 2)
	for range 2 {
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		require.Equal(t, []uint64{1, 250}, []uint64{first, last})
		checkEntries(t, s, 1, 150, 1)
		checkEntries(t, s, 151, 250, 2)
		s = reopen(t, s)
	}
}

// After everything was deleted the log restarts at any index, higher or
// lower than before; the dead records behind it never come back.
func TestRestartAfterDeleteAll(t *testing.T) {
	for _, restart := range []uint64{1, 50, 101, 5000} {
		s := openTest(t, t.TempDir())
		storeRange(t, s, 1, 100, 10, 1)
		require.NoError(t, s.DeleteRange(1, 100))
		storeRange(t, s, restart, 30, 7, 2)
		for range 2 {
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			require.Equal(t, restart, first)
			require.Equal(t, restart+29, last)
			checkEntries(t, s, restart, last, 2)
			var l raft.Log
			require.Equal(t, raft.ErrLogNotFound, s.GetLog(restart-1, &l))
			require.Equal(t, raft.ErrLogNotFound, s.GetLog(last+1, &l))
			s = reopen(t, s)
		}
		require.NoError(t, s.Close())
	}
}

var errCrash = errors.New("simulated crash")

// Each operation that replaces META is stopped right after the replace, the
// state a crash there leaves; reopening must give the state before or after
// the operation, and the store must go on.
func TestCrashAfterMeta(t *testing.T) {
	cases := []struct {
		name  string
		setup func(s *Store) error
		op    func(s *Store) error
		// state after reopening
		first, last uint64
		next        uint64 // next index to store
	}{
		{
			name:  "prefix deleted, segments not yet removed",
			op:    func(s *Store) error { return s.DeleteRange(1, 250) },
			first: 251, last: 300, next: 301,
		},
		{
			name:  "everything deleted, segments not yet removed",
			op:    func(s *Store) error { return s.DeleteRange(1, 300) },
			first: 0, last: 0, next: 301,
		},
		{
			name:  "new log started, first batch not yet appended",
			setup: func(s *Store) error { return s.DeleteRange(1, 300) },
			op:    func(s *Store) error { return s.StoreLogs(makeLogs(7000, 3, 2)) },
			first: 0, last: 0, next: 7000,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			storeRange(t, s, 1, 300, 20, 1)
			if tc.setup != nil {
				require.NoError(t, tc.setup(s))
			}
			segs := segmentCount(t, s)
			s.afterMeta = func() error { return errCrash }
			require.ErrorIs(t, tc.op(s), errCrash)
			require.Equal(t, segs, segmentCount(t, s), "nothing removed before the crash")

			s = reopen(t, s)
			if tc.first > 0 {
				checkRange(t, s, tc.first, tc.last, 1)
				require.Less(t, segmentCount(t, s), segs, "Open removes dead segments")
			} else {
				checkRange(t, s, 0, 0, 0)
				require.Equal(t, 1, segmentCount(t, s), "dead segments removed")
			}
			storeRange(t, s, tc.next, 10, 10, 1)
			s = reopen(t, s)
			first := tc.first
			if first == 0 {
				first = tc.next
			}
			checkRange(t, s, first, tc.next+9, 1)
			require.NoError(t, s.Close())
		})
	}
}

func TestOpenDamaged(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		wantErr error
	}{
		{
			name: "META missing",
			corrupt: func(t *testing.T, dir string) {
				require.NoError(t, os.Remove(filepath.Join(dir, metaFileName)))
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "META checksum",
			corrupt: func(t *testing.T, dir string) {
				flipByte(t, filepath.Join(dir, metaFileName), 14)
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "META bad magic",
			corrupt: func(t *testing.T, dir string) {
				flipByte(t, filepath.Join(dir, metaFileName), 0)
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "META truncated",
			corrupt: func(t *testing.T, dir string) {
				require.NoError(t, os.Truncate(filepath.Join(dir, metaFileName), metaMinSize-1))
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "META of a later version",
			corrupt: func(t *testing.T, dir string) {
				b := meta{runs: []run{{index: 1, lsn: 1}}}.encode()
				b[8] = 2
				rechecksum(b[:len(b)-4], b[len(b)-4:])
				require.NoError(t, os.WriteFile(filepath.Join(dir, metaFileName), b, 0o644))
			},
			wantErr: ErrUnsupportedVersion,
		},
		{
			name: "META maps the wrong index",
			corrupt: func(t *testing.T, dir string) {
				writeMeta(t, dir, meta{runs: []run{{index: 2, lsn: 1}}})
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "META maps the wrong index in a later run",
			corrupt: func(t *testing.T, dir string) {
				writeMeta(t, dir, meta{runs: []run{{index: 1, lsn: 1}, {index: 500, lsn: 501}}})
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "META has a run past the end of the wal",
			corrupt: func(t *testing.T, dir string) {
				writeMeta(t, dir, meta{runs: []run{{index: 1, lsn: 1}, {index: 1001, lsn: 1002}}})
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "META has a run whose records the wal does not hold",
			corrupt: func(t *testing.T, dir string) {
				writeMeta(t, dir, meta{runs: []run{{index: 1, lsn: 800}, {index: 500, lsn: 1001}}})
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "META runs overlap",
			corrupt: func(t *testing.T, dir string) {
				writeMeta(t, dir, meta{runs: []run{{index: 1, lsn: 1}, {index: 500, lsn: 300}}})
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "META without runs",
			corrupt: func(t *testing.T, dir string) {
				b := meta{}.encode()
				require.NoError(t, os.WriteFile(filepath.Join(dir, metaFileName), b, 0o644))
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "META names a record the wal dropped",
			corrupt: func(t *testing.T, dir string) {
				// The wal lost its first segment: it opens (that is what
				// TruncateFront leaves), but META names a record in it.
				names, err := filepath.Glob(filepath.Join(dir, walDirName, "*.seg"))
				require.NoError(t, err)
				require.NoError(t, os.Remove(names[0]))
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "STABLE checksum",
			corrupt: func(t *testing.T, dir string) {
				flipByte(t, filepath.Join(dir, stableFileName), 20)
			},
			wantErr: ErrCorrupt,
		},
		{
			name: "STABLE cut short",
			corrupt: func(t *testing.T, dir string) {
				require.NoError(t, os.Truncate(filepath.Join(dir, stableFileName), 10))
			},
			wantErr: ErrCorrupt,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir)
			storeRange(t, s, 1, 1000, 50, 1)
			require.Greater(t, segmentCount(t, s), 1)
			require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 3))
			require.NoError(t, s.Close())
			tc.corrupt(t, dir)
			_, err := Open(dir, testOptions())
			require.Error(t, err)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			}
			t.Log(err)
		})
	}
}

func TestOpenRemovesLeftoverTemp(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	storeRange(t, s, 1, 10, 10, 1)
	require.NoError(t, s.Close())
	for _, name := range []string{metaFileName, stableFileName} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+tempSuffix), []byte("torn"), 0o644))
	}
	s = openTest(t, dir)
	defer s.Close()
	for _, name := range []string{metaFileName, stableFileName} {
		require.NoFileExists(t, filepath.Join(dir, name+tempSuffix))
	}
	checkRange(t, s, 1, 10, 1)
}

func TestClosedAndLocked(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	storeRange(t, s, 1, 3, 3, 1)

	_, err := Open(dir, testOptions())
	require.ErrorIs(t, err, wal.ErrLocked)

	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Close(), ErrClosed)
	var l raft.Log
	_, err = s.FirstIndex()
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.LastIndex()
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, s.GetLog(1, &l), ErrClosed)
	require.ErrorIs(t, s.StoreLogs(makeLogs(4, 1, 1)), ErrClosed)
	require.ErrorIs(t, s.DeleteRange(1, 1), ErrClosed)
	require.ErrorIs(t, s.Set([]byte("k"), []byte("v")), ErrClosed)
	_, err = s.Get([]byte("k"))
	require.ErrorIs(t, err, ErrClosed)
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[off] ^= 0xff
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

func rechecksum(body, sum []byte) {
	binary.LittleEndian.PutUint32(sum, crc32.Checksum(body, castagnoli))
}

// When META or STABLE cannot be replaced, the operation fails and changes
// nothing, and the store goes on once the cause is gone.
func TestReplaceFails(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	defer func() { s.Close() }()
	storeRange(t, s, 1, 100, 10, 1)
	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 1))
	segs := segmentCount(t, s)

	// A directory where the temporary file must go: the create fails.
	for _, name := range []string{metaFileName, stableFileName} {
		require.NoError(t, os.Mkdir(filepath.Join(dir, name+tempSuffix), 0o755))
	}
	require.Error(t, s.DeleteRange(1, 50))
	require.Error(t, s.DeleteRange(1, 100))
	require.Error(t, s.DeleteRange(60, 100))
	checkRange(t, s, 1, 100, 1)
	require.Equal(t, segs, segmentCount(t, s))
	err := s.SetUint64([]byte("CurrentTerm"), 2)
	require.Error(t, err)
	t.Log(err)
	term, err := s.GetUint64([]byte("CurrentTerm"))
	require.NoError(t, err)
	require.Equal(t, uint64(1), term)

	for _, name := range []string{metaFileName, stableFileName} {
		require.NoError(t, os.Remove(filepath.Join(dir, name+tempSuffix)))
	}
	require.NoError(t, s.DeleteRange(1, 50))
	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 2))
	s = reopen(t, s)
	checkRange(t, s, 51, 100, 1)
	term, _ = s.GetUint64([]byte("CurrentTerm"))
	require.Equal(t, uint64(2), term)
}
