package inspect

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/wal"
)

// copyLog copies the golden log dir into a new temporary directory.
func copyLog(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(filepath.Join(testdata, dir))
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(testdata, dir, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644))
	}
	return dst
}

func openWAL(t *testing.T, dir string) (*wal.WAL, error) {
	return wal.Open(dir, wal.Options{Backend: wal.BackendPwrite, SegmentSize: 64 << 10, MaxRecordSize: 4096})
}

func TestPlanRepairVariants(t *testing.T) {
	for _, tc := range []struct {
		dir     string
		actions []string // "kind segment -> backup"
		last    uint64
	}{
		{dir: "intact", last: 237},
		{dir: "foreign-file", last: 237},
		{dir: "no-header", last: 237},
		{dir: "torn-tail", actions: []string{"cut tail 00000000000000000151.seg -> 00000000000000000151.seg.tail-46104.broken"}, last: 236},
		{dir: "incomplete-batch", actions: []string{"cut tail 00000000000000000151.seg -> 00000000000000000151.seg.tail-46331.broken"}, last: 237},
		{dir: "bitflip-payload", actions: []string{
			"set aside 00000000000000000151.seg -> 00000000000000000151.seg.broken",
			"cut damage 00000000000000000071.seg -> 00000000000000000071.seg.broken",
		}, last: 109},
		{dir: "bad-magic", actions: []string{
			"set aside 00000000000000000151.seg -> 00000000000000000151.seg.broken",
			"set aside 00000000000000000071.seg -> 00000000000000000071.seg.broken",
		}, last: 70},
		{dir: "missing-middle-segment", actions: []string{
			"set aside 00000000000000000151.seg -> 00000000000000000151.seg.broken",
		}, last: 70},
		{dir: "acknowledged-hole", actions: []string{
			"cut damage 00000000000000000151.seg -> 00000000000000000151.seg.broken",
		}, last: 193},
		{dir: "recycled", last: 237},
		{dir: "recycled-lost-record", actions: []string{
			"set aside 00000000000000000151.seg -> 00000000000000000151.seg.broken",
		}, last: 149},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			l, err := Scan(context.Background(), filepath.Join(testdata, tc.dir), Options{})
			require.NoError(t, err)
			res, err := PlanRepair(l)
			require.NoError(t, err)
			var got []string
			for _, a := range res.Actions {
				got = append(got, a.Kind.String()+" "+a.Segment+" -> "+a.Backup)
			}
			assert.Equal(t, tc.actions, got)
			assert.Equal(t, tc.last, res.LastLSN)
			assert.Equal(t, uint64(1), res.FirstLSN)
			assert.Equal(t, int(tc.last), res.Records)
		})
	}
}

func TestRepairRefusesUnsupportedVersion(t *testing.T) {
	dir := copyLog(t, "unknown-version")
	_, err := Repair(context.Background(), dir, RepairOptions{})
	var ie *InputError
	require.ErrorAs(t, err, &ie)
	assert.Contains(t, err.Error(), "unsupported format version 3")
	assertSameFiles(t, filepath.Join(testdata, "unknown-version"), dir, LockFileName)
}

func TestRepairDryRunChangesNothing(t *testing.T) {
	dir := copyLog(t, "bitflip-payload")
	res, err := Repair(context.Background(), dir, RepairOptions{DryRun: true})
	require.NoError(t, err)
	assert.Len(t, res.Actions, 2)
	assert.Nil(t, res.After)
	assertSameFiles(t, filepath.Join(testdata, "bitflip-payload"), dir)
}

// assertSameFiles checks that dirs a and b hold the same files with the
// same bytes, apart from the names in except (in b).
func assertSameFiles(t *testing.T, a, b string, except ...string) {
	t.Helper()
	read := func(dir string) map[string]string {
		m := map[string]string{}
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range ents {
			bs, err := os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
			m[e.Name()] = string(bs)
		}
		return m
	}
	ma, mb := read(a), read(b)
	for _, x := range except {
		delete(mb, x)
	}
	assert.Equal(t, len(ma), len(mb))
	for name, v := range ma {
		assert.True(t, v == mb[name], "%s differs", name)
	}
}

func TestRepairLockedByWriter(t *testing.T) {
	dir := copyLog(t, "torn-tail")
	// wal.Open cuts the torn tail itself; then holds the lock.
	w, err := openWAL(t, dir)
	require.NoError(t, err)
	defer w.Close()
	_, err = Repair(context.Background(), dir, RepairOptions{})
	require.ErrorIs(t, err, ErrLocked)
	var ie *InputError
	require.ErrorAs(t, err, &ie)

	// A dry run takes no lock.
	_, err = Repair(context.Background(), dir, RepairOptions{DryRun: true})
	require.NoError(t, err)
}

func TestRepairTakenBackupName(t *testing.T) {
	dir := copyLog(t, "bad-magic")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "00000000000000000071.seg.broken"), []byte("older"), 0o644))
	res, err := Repair(context.Background(), dir, RepairOptions{})
	require.NoError(t, err)
	require.Len(t, res.Actions, 2)
	assert.Equal(t, "00000000000000000071.seg.1.broken", res.Actions[1].Backup)
	b, err := os.ReadFile(filepath.Join(dir, "00000000000000000071.seg.broken"))
	require.NoError(t, err)
	assert.Equal(t, "older", string(b), "an earlier backup is never overwritten")
	orig, err := os.ReadFile(filepath.Join(testdata, "bad-magic", "00000000000000000071.seg"))
	require.NoError(t, err)
	b, err = os.ReadFile(filepath.Join(dir, "00000000000000000071.seg.1.broken"))
	require.NoError(t, err)
	assert.Equal(t, orig, b)
	// The set-aside copy can still be read by walctl dump: its name says
	// which segment it was.
	l, err := Scan(context.Background(), filepath.Join(dir, "00000000000000000071.seg.1.broken"), Options{})
	require.NoError(t, err)
	assert.Equal(t, "00000000000000000071.seg.1.broken", l.Segments[0].Name)
}

// TestRepairFinishesInterrupted starts from the state a repair interrupted
// after its first step leaves (the last segment set aside, the damaged one
// not yet cut) and checks that a second repair finishes the job.
func TestRepairFinishesInterrupted(t *testing.T) {
	dir := copyLog(t, "bitflip-payload")
	require.NoError(t, os.Rename(filepath.Join(dir, "00000000000000000151.seg"), filepath.Join(dir, "00000000000000000151.seg.broken")))
	res, err := Repair(context.Background(), dir, RepairOptions{})
	require.NoError(t, err)
	require.Len(t, res.Actions, 1)
	assert.Equal(t, CutDamage, res.Actions[0].Kind)
	require.NotNil(t, res.After)
	assert.True(t, res.After.Intact())
	assert.Equal(t, uint64(109), res.After.LastLSN())

	res, err = Repair(context.Background(), dir, RepairOptions{})
	require.NoError(t, err)
	assert.Empty(t, res.Actions, "a repaired log needs nothing more")
}

// TestRepairFirstSegmentDamaged: everything is set aside, the directory has
// no segment left, and wal.Open starts a new log.
func TestRepairFirstSegmentDamaged(t *testing.T) {
	dir := copyLog(t, "intact")
	p := filepath.Join(dir, "00000000000000000001.seg")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	b[3] ^= 0xff
	require.NoError(t, os.WriteFile(p, b, 0o644))
	res, err := Repair(context.Background(), dir, RepairOptions{})
	require.NoError(t, err)
	assert.Len(t, res.Actions, 3)
	assert.Zero(t, res.Segments)
	assert.Nil(t, res.After)
	for _, n := range []string{"00000000000000000001.seg.broken", "00000000000000000071.seg.broken", "00000000000000000151.seg.broken"} {
		assert.FileExists(t, filepath.Join(dir, n))
	}
	w, err := openWAL(t, dir)
	require.NoError(t, err)
	assert.Equal(t, uint64(0), w.LastLSN())
	require.NoError(t, w.Close())
}

// TestTrailingHeaderlessSegments: a crash during rotation can leave more
// than one file without a header at the end of the log. They are notes, the
// segment before them is the last one (its torn tail is a note too), and
// after a repair wal.Open agrees.
func TestTrailingHeaderlessSegments(t *testing.T) {
	dir := copyLog(t, "torn-tail")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "00000000000000000237.seg"), make([]byte, 64<<10), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "00000000000000000300.seg"), nil, 0o644))
	l, err := Scan(context.Background(), dir, Options{})
	require.NoError(t, err)
	assert.True(t, l.Intact(), "%v", l.Problems)
	require.Len(t, l.Segments, 5)
	assert.True(t, l.Segments[2].Last)
	assert.True(t, l.Segments[2].Active)
	assert.True(t, l.Segments[3].Unfinished())
	assert.True(t, l.Segments[4].Unfinished())
	assert.Equal(t, 3, l.Count(Note))

	res, err := Repair(context.Background(), dir, RepairOptions{})
	require.NoError(t, err)
	require.Len(t, res.Actions, 1)
	assert.Equal(t, CutTail, res.Actions[0].Kind)
	w, err := openWAL(t, dir)
	require.NoError(t, err)
	assert.Equal(t, uint64(236), w.LastLSN())
	require.NoError(t, w.Close())
}

// TestHeaderlessSegmentInTheMiddle: a segment without a header that a
// segment with one follows is damage, and the repair sets both aside.
func TestHeaderlessSegmentInTheMiddle(t *testing.T) {
	dir := copyLog(t, "intact")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "00000000000000000100.seg"), make([]byte, 64<<10), 0o644))
	l, err := Scan(context.Background(), dir, Options{})
	require.NoError(t, err)
	require.Len(t, l.Problems, 1)
	assert.Equal(t, Corruption, l.Problems[0].Kind)
	assert.Equal(t, "00000000000000000100.seg", l.Problems[0].Segment)

	res, err := Repair(context.Background(), dir, RepairOptions{})
	require.NoError(t, err)
	assert.Len(t, res.Actions, 2)
	w, err := openWAL(t, dir)
	require.NoError(t, err)
	assert.Equal(t, uint64(150), w.LastLSN())
	require.NoError(t, w.Close())
}
