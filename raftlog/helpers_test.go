package raftlog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/wal"
)

// testOptions uses small segments, so that a few hundred entries span
// several of them and compaction really removes files.
func testOptions() Options {
	return Options{WAL: wal.Options{
		SegmentSize:   16 << 10,
		BufferSize:    16 << 10,
		BufferCount:   4,
		MaxRecordSize: 11 << 10,
	}}
}

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, testOptions())
	require.NoError(t, err)
	return s
}

// reopen closes s and opens its directory again.
func reopen(t testing.TB, s *Store) *Store {
	t.Helper()
	require.NoError(t, s.Close())
	return openTest(t, s.dir)
}

// makeLogs returns n entries from index first on, every field set, with
// contents derived from index and term (checkLog recognises them).
func makeLogs(first uint64, n int, term uint64) []*raft.Log {
	logs := make([]*raft.Log, n)
	for i := range logs {
		idx := first + uint64(i)
		l := &raft.Log{
			Index:      idx,
			Term:       term,
			Type:       raft.LogType(idx % 7),
			Data:       []byte(fmt.Sprintf("entry %d of term %d %s", idx, term, strings.Repeat("x", int(idx%50)))),
			AppendedAt: time.Unix(1_700_000_000+int64(idx), int64(idx%1e9)).UTC(),
		}
		if idx%3 == 0 {
			l.Extensions = []byte(fmt.Sprintf("ext-%d", idx))
		}
		logs[i] = l
	}
	return logs
}

// storeRange stores entries [first, first+n) of term in batches of batch.
func storeRange(t testing.TB, s *Store, first uint64, n, batch int, term uint64) {
	t.Helper()
	logs := makeLogs(first, n, term)
	for len(logs) > 0 {
		k := min(batch, len(logs))
		require.NoError(t, s.StoreLogs(logs[:k]))
		logs = logs[k:]
	}
}

// checkRange asserts that the store holds exactly [first, last], every entry
// as makeLogs(_, _, term) made it, and nothing on either side.
func checkRange(t testing.TB, s *Store, first, last, term uint64) {
	t.Helper()
	gotFirst, err := s.FirstIndex()
	require.NoError(t, err)
	gotLast, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, first, gotFirst, "FirstIndex")
	require.Equal(t, last, gotLast, "LastIndex")
	var l raft.Log
	if first > 0 {
		checkEntries(t, s, first, last, term)
		require.Equal(t, raft.ErrLogNotFound, s.GetLog(first-1, &l), "GetLog(first-1)")
	}
	require.Equal(t, raft.ErrLogNotFound, s.GetLog(last+1, &l), "GetLog(last+1)")
}

// segmentCount is the number of wal segment files in the store.
func segmentCount(t testing.TB, s *Store) int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(s.dir, walDirName, "*.seg"))
	require.NoError(t, err)
	return len(names)
}

func writeMeta(t testing.TB, dir string, m meta) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, metaFileName), m.encode(), 0o644))
}

// checkEntries asserts that entries [from, to] are as makeLogs(_, _, term)
// made them.
func checkEntries(t testing.TB, s *Store, from, to, term uint64) {
	t.Helper()
	var l raft.Log
	for idx := from; idx <= to; idx++ {
		require.NoError(t, s.GetLog(idx, &l), "GetLog(%d)", idx)
		require.Equal(t, *makeLogs(idx, 1, term)[0], l, "GetLog(%d)", idx)
	}
}
