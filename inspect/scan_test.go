package inspect

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/segment"
	"github.com/ringwal/ringwal/wal"
)

const testdata = "../testdata"

// TestScanVariants checks what a scan makes of every golden log: its
// records, its problems (kind and place) and its active segment. The
// expectations follow testdata/README.md, with atomic batches honoured.
func TestScanVariants(t *testing.T) {
	for _, tc := range []struct {
		dir      string
		records  int
		problems []string // "kind segment:offset"
		active   string
	}{
		{dir: "intact", records: 237, active: "00000000000000000151.seg"},
		{dir: "torn-tail", records: 236, problems: []string{"note 00000000000000000151.seg:46104"}, active: "00000000000000000151.seg"},
		{dir: "zeroed-tail", records: 236, problems: []string{"note 00000000000000000151.seg:46104"}, active: "00000000000000000151.seg"},
		// The damaged frame (lsn 111) is in the atomic batch 110-112: lsn 110
		// is not part of the log.
		{dir: "bitflip-payload", records: 70 + 39 + 87, problems: []string{"corruption 00000000000000000071.seg:26349"}, active: "00000000000000000151.seg"},
		{dir: "bitflip-header", records: 70 + 39 + 87, problems: []string{"corruption 00000000000000000071.seg:26349"}, active: "00000000000000000151.seg"},
		{dir: "bad-magic", records: 70 + 87, problems: []string{"corruption 00000000000000000071.seg:0"}, active: "00000000000000000151.seg"},
		{dir: "header-checksum", records: 70 + 87, problems: []string{"corruption 00000000000000000071.seg:60"}, active: "00000000000000000151.seg"},
		{dir: "unknown-version", records: 150, problems: []string{"unsupported 00000000000000000151.seg:8"}},
		{dir: "lsn-gap", records: 70 + 39 + 87, problems: []string{"corruption 00000000000000000071.seg:26349"}, active: "00000000000000000151.seg"},
		{dir: "duplicate-lsn", records: 70 + 39 + 87, problems: []string{"corruption 00000000000000000071.seg:26349"}, active: "00000000000000000151.seg"},
		{dir: "missing-middle-segment", records: 70 + 87, problems: []string{"corruption 00000000000000000151.seg:0"}, active: "00000000000000000151.seg"},
		{dir: "name-mismatch", records: 70 + 87, problems: []string{"corruption 00000000000000000072.seg:24"}, active: "00000000000000000151.seg"},
		{dir: "foreign-file", records: 237, problems: []string{
			"note 0000000000000000000a.seg", "note 00000000000000000238.seg.tmp", "note 0001.seg", "note notes.txt",
		}, active: "00000000000000000151.seg"},
		{dir: "no-header", records: 237, problems: []string{"note 00000000000000000238.seg:0"}, active: "00000000000000000151.seg"},
		{dir: "stale-incarnation", records: 229, problems: []string{"note 00000000000000000151.seg:41393"}, active: "00000000000000000151.seg"},
		{dir: "incomplete-batch", records: 237, problems: []string{"note 00000000000000000151.seg:46331"}, active: "00000000000000000151.seg"},
		{dir: "pipelined-crash", records: 232, problems: []string{"note 00000000000000000151.seg:43632"}, active: "00000000000000000151.seg"},
		{dir: "acknowledged-hole", records: 193, problems: []string{"corruption 00000000000000000151.seg:24419"}, active: "00000000000000000151.seg"},
		// Stale frames after the last frame of a recycled segment are not
		// the log, nor damage.
		{dir: "recycled", records: 237, active: "00000000000000000151.seg"},
		{dir: "recycled-lost-record", records: 70 + 79 + 87, problems: []string{"corruption 00000000000000000151.seg:0"}, active: "00000000000000000151.seg"},
		// Version 2, padded batches: the padding is neither records nor
		// damage, a file cut in it ends cleanly, and a hole is still found.
		{dir: "padded", records: 153, active: "00000000000000000104.seg"},
		{dir: "padded-cut-padding", records: 153, active: "00000000000000000104.seg"},
		{dir: "padded-acknowledged-hole", records: 129, problems: []string{"corruption 00000000000000000104.seg:24606"}, active: "00000000000000000104.seg"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			l, err := Scan(context.Background(), filepath.Join(testdata, tc.dir), Options{})
			require.NoError(t, err)
			assert.True(t, l.Dir)
			assert.Equal(t, tc.records, l.Records())
			var got []string
			for _, p := range l.Problems {
				place := p.Segment
				if p.Offset >= 0 {
					place = fmt.Sprintf("%s:%d", p.Segment, p.Offset)
				}
				got = append(got, p.Kind.String()+" "+place)
			}
			assert.Equal(t, tc.problems, got)
			var active []string
			for _, s := range l.Segments {
				if s.Active {
					active = append(active, s.Name)
				}
			}
			if tc.active == "" {
				assert.Empty(t, active)
			} else {
				assert.Equal(t, []string{tc.active}, active)
			}
			wantIntact := true
			for _, p := range tc.problems {
				if p[:4] != "note" {
					wantIntact = false
				}
			}
			assert.Equal(t, wantIntact, l.Intact())
		})
	}
}

// TestScanCountsPadding: in a clean log every byte from DataOffset to a
// segment's end is a frame header, payload or padding, and only the
// version 2 logs hold padding.
func TestScanCountsPadding(t *testing.T) {
	for _, dir := range []string{"intact", "padded", "padded-cut-padding"} {
		l, err := Scan(context.Background(), filepath.Join(testdata, dir), Options{})
		require.NoError(t, err)
		var pad int64
		for _, s := range l.Segments {
			assert.Equal(t, s.End-segment.DataOffset, s.PayloadBytes+int64(s.Records*segment.FrameHeaderSize)+s.PadBytes, "%s/%s", dir, s.Name)
			pad += s.PadBytes
		}
		if dir == "intact" {
			assert.Zero(t, pad, dir)
		} else {
			assert.Positive(t, pad, dir)
		}
	}
}

// TestScanRecordsInOrder checks the Record callback against the payloads the
// generator wrote ("record N. " repeated) and the From/To bounds.
func TestScanRecordsInOrder(t *testing.T) {
	var lsns []uint64
	_, err := Scan(context.Background(), filepath.Join(testdata, "intact"), Options{From: 68, To: 73,
		Record: func(s *Segment, rec segment.Record) error {
			lsns = append(lsns, rec.LSN)
			want := fmt.Sprintf("record %d. ", rec.LSN)
			if len(rec.Payload) >= len(want) {
				assert.Equal(t, want, string(rec.Payload[:len(want)]))
			}
			return nil
		}})
	require.NoError(t, err)
	assert.Equal(t, []uint64{68, 69, 70, 71, 72, 73}, lsns)
}

// TestScanResync reads past damage and checks where it resumes.
func TestScanResync(t *testing.T) {
	for _, tc := range []struct {
		dir        string
		resumeLSN  uint64
		firstAfter uint64 // first record printed after the damage
		records    int
	}{
		// The frames after the damaged lsn 111 carry 112 on.
		{dir: "bitflip-payload", resumeLSN: 112, firstAfter: 112, records: 70 + 39 + 39 + 87},
		// A valid frame with lsn 112 where 111 belongs; the real 112 follows.
		{dir: "lsn-gap", resumeLSN: 112, firstAfter: 112, records: 70 + 39 + 39 + 87},
		// A valid frame with lsn 110 where 111 belongs; 112 follows.
		{dir: "duplicate-lsn", resumeLSN: 112, firstAfter: 112, records: 70 + 39 + 39 + 87},
		// The zeroed frame is lsn 194; 195 follows.
		{dir: "acknowledged-hole", resumeLSN: 195, firstAfter: 195, records: 193 + 43},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			var lsns []uint64
			var probs []Problem
			l, err := Scan(context.Background(), filepath.Join(testdata, tc.dir), Options{Resync: true,
				Record:  func(s *Segment, rec segment.Record) error { lsns = append(lsns, rec.LSN); return nil },
				Problem: func(p Problem) error { probs = append(probs, p); return nil },
			})
			require.NoError(t, err)
			require.Len(t, probs, 1)
			assert.Equal(t, tc.resumeLSN, probs[0].ResumeLSN)
			assert.Greater(t, probs[0].ResumeOffset, probs[0].Offset)
			assert.Equal(t, tc.records, l.Records())
			assert.Len(t, lsns, tc.records)
			for i := 1; i < len(lsns); i++ {
				assert.Less(t, lsns[i-1], lsns[i], "records come in LSN order")
			}
			assert.Contains(t, lsns, tc.firstAfter)
		})
	}
}

func TestScanSingleFile(t *testing.T) {
	l, err := Scan(context.Background(), filepath.Join(testdata, "torn-tail", "00000000000000000151.seg"), Options{})
	require.NoError(t, err)
	assert.False(t, l.Dir)
	require.Len(t, l.Segments, 1)
	assert.Equal(t, 86, l.Records())
	require.Len(t, l.Problems, 1)
	assert.Equal(t, Note, l.Problems[0].Kind, "a single file is read as a last segment")

	// A copy under a name that is not a segment name is read by its magic,
	// without the name check.
	l, err = Scan(context.Background(), filepath.Join(testdata, "foreign-file", "0001.seg"), Options{})
	require.NoError(t, err)
	assert.Equal(t, 70, l.Records())
	assert.True(t, l.Intact())
}

func TestScanInputErrors(t *testing.T) {
	empty := t.TempDir()
	foreign := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("hi"), 0o644))
	loop := filepath.Join(t.TempDir(), "loop")
	require.NoError(t, os.Symlink(loop, loop))
	for _, tc := range []struct {
		path    string
		dirOnly bool
		reason  string
	}{
		{path: filepath.Join(empty, "nope"), reason: "no such file or directory"},
		{path: empty, reason: "empty directory, not a log"},
		{path: foreign, reason: "not a log directory"},
		{path: filepath.Join(foreign, "notes.txt"), reason: "not a segment file"},
		{path: filepath.Join(testdata, "foreign-file", "0000000000000000000a.seg"), reason: "not a segment file"},
		{path: loop, reason: "too many levels of symbolic links"},
		{path: filepath.Join(testdata, "intact", "00000000000000000001.seg"), dirOnly: true, reason: "not a directory"},
	} {
		_, err := Scan(context.Background(), tc.path, Options{DirOnly: tc.dirOnly})
		var ie *InputError
		require.ErrorAs(t, err, &ie, tc.path)
		assert.Contains(t, err.Error(), tc.reason)
		assert.Equal(t, tc.path, ie.Path)
	}
}

func TestSegmentBase(t *testing.T) {
	for name, want := range map[string]uint64{
		"00000000000000000071.seg":                  71,
		"00000000000000000071.seg.broken":           71,
		"00000000000000000071.seg.2.broken":         71,
		"00000000000000000071.seg.tmp":              71,
		"00000000000000000071.seg.tail-5.tmp":       0,
		"00000000000000000071.seg.tail-4096.broken": 0,
		"0001.seg":   0,
		"notes.txt":  0,
		".broken":    0,
		"x.2.broken": 0,
	} {
		got, ok := segmentBase(name)
		assert.Equal(t, want, got, name)
		assert.Equal(t, want != 0, ok, name)
	}
}

// TestScanLiveLog scans a log while a wal appends to it, rotates and
// truncates its front: every scan succeeds and finds no damage, only notes
// (a torn tail where an append is in flight, a prepared segment, a segment
// removed under it).
func TestScanLiveLog(t *testing.T) {
	dir := t.TempDir()
	w, err := wal.Open(dir, wal.Options{Backend: wal.BackendPwrite, SegmentSize: 64 << 10, MaxRecordSize: 4096})
	require.NoError(t, err)
	defer w.Close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 100+g*300)
			for !stop.Load() {
				if _, err := w.Append(p); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			time.Sleep(20 * time.Millisecond)
			if last := w.LastLSN(); last > 500 {
				if err := w.TruncateFront(last - 300); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	scans := 0
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline) || scans < 5; scans++ {
		l, err := Scan(context.Background(), dir, Options{MaxRecordSize: 4096})
		require.NoError(t, err)
		for _, p := range l.Problems {
			assert.Equal(t, Note, p.Kind, "live log: %s", p)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d scans of a live log", scans)
}

func TestScanCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Scan(ctx, filepath.Join(testdata, "intact"), Options{})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestScanProgress(t *testing.T) {
	var last, total int64
	calls := 0
	l, err := Scan(context.Background(), filepath.Join(testdata, "intact"), Options{Progress: func(done, tot int64) {
		assert.GreaterOrEqual(t, done, last, "progress never goes back")
		last, total = done, tot
		calls++
	}})
	require.NoError(t, err)
	assert.Positive(t, calls)
	assert.Equal(t, l.FileBytes(), total)
	assert.Equal(t, total, last)
}
