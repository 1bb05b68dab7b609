package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/segment"
	"github.com/ringwal/ringwal/wal"
)

// Options the golden logs open with: testdata/README.md says segments are
// 64 KiB; the largest record is 1099 bytes.
func openGolden(dir string) (*wal.WAL, error) {
	return wal.Open(dir, wal.Options{Backend: wal.BackendPwrite, SegmentSize: 64 << 10, MaxRecordSize: 4096})
}

// framePayloads returns the payload of every frame the segment reader
// returns from the segment files of a golden log, read one by one up to
// each one's end or damage, by LSN: what the log held before the damage.
// (Not through inspect, which is under test.)
func framePayloads(t *testing.T, dir string) map[uint64][]byte {
	t.Helper()
	m := map[uint64][]byte{}
	bases, _, err := segment.List(dir)
	require.NoError(t, err)
	for _, b := range bases {
		r, err := segment.OpenReader(filepath.Join(dir, segment.FileName(b)), segment.ReaderOptions{})
		if err != nil {
			continue
		}
		for {
			rec, err := r.Next()
			if err != nil {
				break
			}
			m[rec.LSN] = bytes.Clone(rec.Payload)
		}
		require.NoError(t, r.Close())
	}
	return m
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		m[e.Name()] = b
	}
	return m
}

// TestRepair repairs a copy of every golden log and checks that wal.Open
// then succeeds, holds every record before the damage (with the payloads
// the intact log has), accepts appends, and that every byte the repair took
// out of the log is in a .broken file.
func TestRepair(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		last uint64 // the log's last LSN after the repair
		// changed: segments whose bytes the repair cut (a backup keeps
		// them); aside: segments renamed to .broken.
		changed, aside []string
	}{
		{dir: "intact", last: 237},
		{dir: "foreign-file", last: 237},
		{dir: "no-header", last: 237},
		{dir: "torn-tail", last: 236, changed: []string{"00000000000000000151.seg"}},
		{dir: "zeroed-tail", last: 236, changed: []string{"00000000000000000151.seg"}},
		{dir: "stale-incarnation", last: 229, changed: []string{"00000000000000000151.seg"}},
		{dir: "incomplete-batch", last: 237, changed: []string{"00000000000000000151.seg"}},
		{dir: "pipelined-crash", last: 232, changed: []string{"00000000000000000151.seg"}},
		// Damage at lsn 111, in the atomic batch 110-112: the log keeps 109.
		{dir: "bitflip-payload", last: 109, changed: []string{"00000000000000000071.seg"}, aside: []string{"00000000000000000151.seg"}},
		{dir: "bitflip-header", last: 109, changed: []string{"00000000000000000071.seg"}, aside: []string{"00000000000000000151.seg"}},
		{dir: "lsn-gap", last: 109, changed: []string{"00000000000000000071.seg"}, aside: []string{"00000000000000000151.seg"}},
		{dir: "duplicate-lsn", last: 109, changed: []string{"00000000000000000071.seg"}, aside: []string{"00000000000000000151.seg"}},
		{dir: "acknowledged-hole", last: 193, changed: []string{"00000000000000000151.seg"}},
		{dir: "bad-magic", last: 70, aside: []string{"00000000000000000071.seg", "00000000000000000151.seg"}},
		{dir: "header-checksum", last: 70, aside: []string{"00000000000000000071.seg", "00000000000000000151.seg"}},
		{dir: "name-mismatch", last: 70, aside: []string{"00000000000000000072.seg", "00000000000000000151.seg"}},
		{dir: "missing-middle-segment", last: 70, aside: []string{"00000000000000000151.seg"}},
		{dir: "recycled", last: 237},
		{dir: "recycled-lost-record", last: 149, aside: []string{"00000000000000000151.seg"}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(testdataDir, tc.dir))))
			orig := readDir(t, dir)
			want := framePayloads(t, dir)

			// --dry-run changes nothing.
			r := runWalctl("repair", "--dry-run", dir)
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, orig, readDir(t, dir), "--dry-run changed the log")

			r = runWalctl("repair", dir)
			require.Equal(t, 0, r.code, r.stderr)
			assert.Empty(t, r.stderr)
			assert.Contains(t, r.stdout, "the log now holds "+strconv.FormatUint(tc.last, 10)+" records (lsn 1-"+strconv.FormatUint(tc.last, 10)+")")
			after := readDir(t, dir)

			checkBackups(t, orig, after, tc.changed, tc.aside)

			// A second repair has nothing to do; verify finds the log intact.
			r = runWalctl("repair", dir)
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "nothing to repair")
			r = runWalctl("verify", dir)
			assert.Equal(t, 0, r.code, r.stdout)

			// The log opens and holds every record before the damage.
			w, err := openGolden(dir)
			require.NoError(t, err)
			defer w.Close()
			assert.Equal(t, uint64(1), w.FirstLSN())
			assert.Equal(t, tc.last, w.LastLSN())
			rd, err := w.NewReader(1)
			require.NoError(t, err)
			n := uint64(0)
			for {
				rec, err := rd.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				n++
				require.Equal(t, n, rec.LSN)
				require.True(t, bytes.Equal(want[rec.LSN], rec.Data), "lsn %d", rec.LSN)
			}
			require.NoError(t, rd.Close())
			assert.Equal(t, tc.last, n)
			// And goes on from there.
			lsn, err := w.Append([]byte("after the repair"))
			require.NoError(t, err)
			assert.Equal(t, tc.last+1, lsn)
			require.NoError(t, w.Close())
		})
	}
}

// checkBackups checks, comparing the directory before (orig) and after a
// repair, that every byte the repair removed is kept:
//   - a segment set aside is under NAME.broken, unchanged;
//   - a segment cut for damage has a whole copy under NAME.broken, and is
//     unchanged up to the cut and zero after it;
//   - a segment whose torn tail was cut keeps the tail's bytes under
//     NAME.tail-OFFSET.broken, and is unchanged but for those bytes, zeroed;
//   - every other file is unchanged.
func checkBackups(t *testing.T, orig, after map[string][]byte, changed, aside []string) {
	t.Helper()
	for name, o := range orig {
		switch {
		case slices.Contains(aside, name):
			assert.NotContains(t, after, name, "%s set aside", name)
			assert.Equal(t, o, after[name+".broken"], "%s.broken holds the segment", name)
		case slices.Contains(changed, name):
			cur := after[name]
			require.Len(t, cur, len(o), "%s keeps its size", name)
			if copyAll, ok := after[name+".broken"]; ok {
				assert.Equal(t, o, copyAll, "%s.broken is a copy of the damaged segment", name)
				cut := firstDiff(o, cur)
				require.GreaterOrEqual(t, cut, segment.DataOffset, "%s: header kept", name)
				assert.True(t, allZero(cur[cut:]), "%s: zero after the cut at %d", name, cut)
				continue
			}
			var tail string
			for n := range after {
				if strings.HasPrefix(n, name+".tail-") && strings.HasSuffix(n, ".broken") {
					tail = n
				}
			}
			require.NotEmpty(t, tail, "%s: no tail backup among %v", name, keys(after))
			off, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(tail, name+".tail-"), ".broken"))
			require.NoError(t, err)
			b := after[tail]
			require.NotEmpty(t, b)
			assert.Equal(t, o[off:off+len(b)], b, "%s holds the cut bytes", tail)
			assert.Equal(t, o[:off], cur[:off], "%s unchanged before the cut", name)
			assert.True(t, allZero(cur[off:off+len(b)]), "%s: cut bytes zeroed", name)
			assert.Equal(t, o[off+len(b):], cur[off+len(b):], "%s unchanged after the cut bytes", name)
		default:
			assert.Equal(t, o, after[name], "%s unchanged", name)
		}
	}
	// Nothing but the lock file and backups is new.
	for name := range after {
		if _, ok := orig[name]; !ok {
			assert.True(t, name == "LOCK" || strings.HasSuffix(name, ".broken"), "unexpected new file %s", name)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
