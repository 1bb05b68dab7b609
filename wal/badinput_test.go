package wal

// Bad input: each case gets a clear error (a sentinel callers can test with
// errors.Is, or a message naming what is wrong), never a panic, and loses
// nothing that was acknowledged.

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/segment"
)

// badLog is a log with some acknowledged records, and what they are.
type badLog struct {
	dir  string
	o    Options
	want map[uint64][]byte
}

// newBadLog makes a log of n records of 700 bytes over several segments.
func newBadLog(t *testing.T, be Backend, n int) *badLog {
	t.Helper()
	l := &badLog{dir: t.TempDir(), o: smallOpts(be), want: map[uint64][]byte{}}
	w := openT(t, l.dir, l.o)
	for i := range n {
		p := payload(uint64(i+1), 700)
		lsn, err := w.Append(p)
		require.NoError(t, err)
		l.want[lsn] = p
	}
	require.NoError(t, w.Close())
	return l
}

// verify reopens the log and checks that every acknowledged record at or
// after from is there, byte-identical, and that the log is gap-free.
func (l *badLog) verify(t *testing.T) {
	t.Helper()
	w := openT(t, l.dir, l.o)
	defer w.Close()
	recs := readAll(t, w, w.FirstLSN())
	for i, r := range recs {
		require.Equal(t, w.FirstLSN()+uint64(i), r.LSN, "gap-free")
	}
	for lsn, p := range l.want {
		if lsn < w.FirstLSN() {
			continue
		}
		got, err := w.Read(lsn)
		require.NoError(t, err, "acknowledged lsn %d lost", lsn)
		require.Equal(t, p, got, "lsn %d", lsn)
	}
}

// noPanic runs f and fails the test if it panics.
func noPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s panicked: %v", what, r)
		}
	}()
	f()
}

// snapshotDir reads every file of dir (not LOCK).
func snapshotDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		if e.Name() == LockFileName || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = b
	}
	return out
}

func segPaths(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	sort.Strings(names)
	return names
}

// badInputCases is the table. Each case returns how many bad inputs it
// tried.
var badInputCases = []struct {
	name string
	run  func(t *testing.T, be Backend) int
}{
	{"nil and empty records", func(t *testing.T, be Backend) int {
		l := newBadLog(t, be, 10)
		w := openT(t, l.dir, l.o)
		defer w.Close()
		lsn, err := w.Append(nil)
		require.NoError(t, err, "a nil record is an empty record")
		l.want[lsn] = []byte{}
		lsn, err = w.Append([]byte{})
		require.NoError(t, err)
		l.want[lsn] = []byte{}
		first, err := w.AppendBatch([][]byte{nil, {}, []byte("x")})
		require.NoError(t, err)
		l.want[first], l.want[first+1], l.want[first+2] = []byte{}, []byte{}, []byte("x")
		_, err = w.AppendBatch(nil)
		assert.ErrorIs(t, err, ErrEmptyBatch)
		_, err = w.AppendBatch([][]byte{})
		assert.ErrorIs(t, err, ErrEmptyBatch)
		data, err := w.Read(lsn)
		require.NoError(t, err)
		assert.Empty(t, data)
		require.NoError(t, w.Close())
		l.verify(t)
		return 5
	}},
	{"record over the limit", func(t *testing.T, be Backend) int {
		l := newBadLog(t, be, 10)
		w := openT(t, l.dir, l.o)
		defer w.Close()
		last := w.LastLSN()
		_, err := w.Append(make([]byte, l.o.MaxRecordSize+1))
		assert.ErrorIs(t, err, ErrRecordTooLarge)
		assert.ErrorContains(t, err, "16385 bytes, limit 16384")
		_, err = w.AppendBatch([][]byte{[]byte("ok"), make([]byte, l.o.MaxRecordSize+1)})
		assert.ErrorIs(t, err, ErrRecordTooLarge)
		big := make([][]byte, 5)
		for i := range big {
			big[i] = make([]byte, 15<<10)
		}
		_, err = w.AppendBatch(big)
		assert.ErrorIs(t, err, ErrBatchTooLarge)
		assert.Equal(t, last, w.LastLSN(), "nothing of a refused batch was written")
		p := payload(99, l.o.MaxRecordSize) // exactly the limit is fine
		lsn, err := w.Append(p)
		require.NoError(t, err)
		l.want[lsn] = p
		require.NoError(t, w.Close())
		l.verify(t)
		return 3
	}},
	{"use after Close", func(t *testing.T, be Backend) int {
		l := newBadLog(t, be, 10)
		w := openT(t, l.dir, l.o)
		require.NoError(t, w.Close())
		noPanic(t, "methods after Close", func() {
			_, err := w.Append([]byte("x"))
			assert.ErrorIs(t, err, ErrClosed)
			_, err = w.AppendBatch([][]byte{[]byte("x")})
			assert.ErrorIs(t, err, ErrClosed)
			_, err = w.Read(1)
			assert.ErrorIs(t, err, ErrClosed)
			_, err = w.NewReader(1)
			assert.ErrorIs(t, err, ErrClosed)
			assert.ErrorIs(t, w.TruncateFront(5), ErrClosed)
			assert.ErrorIs(t, w.TruncateBack(5), ErrClosed)
			_ = w.Stats()
			_, _ = w.FirstLSN(), w.LastLSN()
		})
		l.verify(t)
		return 6
	}},
	{"Close twice", func(t *testing.T, be Backend) int {
		l := newBadLog(t, be, 10)
		w := openT(t, l.dir, l.o)
		require.NoError(t, w.Close())
		assert.ErrorIs(t, w.Close(), ErrClosed)
		assert.ErrorIs(t, w.Close(), ErrClosed)
		l.verify(t)
		return 2
	}},
	{"reader used across Close", func(t *testing.T, be Backend) int {
		l := newBadLog(t, be, 10)
		w := openT(t, l.dir, l.o)
		r, err := w.NewReader(1)
		require.NoError(t, err)
		_, err = r.Next()
		require.NoError(t, err)
		require.NoError(t, w.Close())
		noPanic(t, "Reader.Next after Close", func() {
			for range 20 {
				if _, err := r.Next(); err != nil {
					break
				}
			}
			_ = r.Close()
			_ = r.Close()
		})
		l.verify(t)
		return 1
	}},
	{"Close during appends", func(t *testing.T, be Backend) int {
		l := newBadLog(t, be, 10)
		w := openT(t, l.dir, l.o)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					p := payload(uint64(1000+g<<16|i), 10+i%2000)
					var lsn uint64
					var err error
					if i%5 == 4 {
						lsn, err = w.AppendBatch([][]byte{p, p[:10]})
					} else {
						lsn, err = w.Append(p)
					}
					if err != nil {
						assert.ErrorIs(t, err, ErrClosed)
						return
					}
					mu.Lock()
					l.want[lsn] = p
					if i%5 == 4 {
						l.want[lsn+1] = p[:10]
					}
					mu.Unlock()
				}
			})
		}
		time.Sleep(30 * time.Millisecond)
		require.NoError(t, w.Close())
		wg.Wait()
		l.verify(t)
		return 1
	}},
	{"lsn out of range", func(t *testing.T, be Backend) int {
		l := newBadLog(t, be, 400)
		w := openT(t, l.dir, l.o)
		defer w.Close()
		require.NoError(t, w.TruncateFront(200))
		first, last := w.FirstLSN(), w.LastLSN()
		require.Greater(t, first, uint64(1))
		n := 0
		for _, lsn := range []uint64{0, first - 1, last + 1, last + 2, math.MaxUint64} {
			_, err := w.Read(lsn)
			assert.ErrorIs(t, err, ErrNotFound, "Read(%d)", lsn)
			assert.ErrorContains(t, err, "not in [")
			n++
		}
		for _, lsn := range []uint64{0, first - 1, last + 2, math.MaxUint64} {
			_, err := w.NewReader(lsn)
			assert.ErrorIs(t, err, ErrOutOfRange, "NewReader(%d)", lsn)
			n++
		}
		r, err := w.NewReader(last + 1) // the end: valid, and empty
		require.NoError(t, err)
		_, err = r.Next()
		assert.ErrorIs(t, err, io.EOF)
		r.Close()
		for _, lsn := range []uint64{last + 2, math.MaxUint64} {
			assert.ErrorIs(t, w.TruncateFront(lsn), ErrOutOfRange, "TruncateFront(%d)", lsn)
			n++
		}
		require.NoError(t, w.TruncateFront(0), "TruncateFront below the start drops nothing")
		require.NoError(t, w.TruncateFront(first), "TruncateFront at the start drops nothing")
		assert.Equal(t, first, w.FirstLSN())
		for _, lsn := range []uint64{0, first - 2} {
			err := w.TruncateBack(lsn)
			assert.ErrorIs(t, err, ErrOutOfRange, "TruncateBack(%d)", lsn)
			assert.ErrorContains(t, err, "before the start")
			n++
		}
		for _, lsn := range []uint64{last, last + 1, math.MaxUint64} {
			require.NoError(t, w.TruncateBack(lsn), "TruncateBack(%d): nothing after it to drop", lsn)
			n++
		}
		assert.Equal(t, last, w.LastLSN())
		require.NoError(t, w.Close())
		l.verify(t)
		return n
	}},
	{"directory that is a file", func(t *testing.T, be Backend) int {
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, []byte("not a log"), 0o644))
		_, err := Open(file, smallOpts(be))
		assert.ErrorContains(t, err, "not a directory")
		assert.ErrorContains(t, err, file)
		_, err = Open(filepath.Join(file, "sub"), smallOpts(be))
		assert.ErrorIs(t, err, syscall.ENOTDIR)
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		assert.Equal(t, "not a log", string(b), "the file is untouched")
		return 2
	}},
	{"read-only file system", func(t *testing.T, be Backend) int {
		mnt := mountTmpfs(t, "8m")
		l := &badLog{dir: filepath.Join(mnt, "log"), o: smallOpts(be), want: map[uint64][]byte{}}
		w := openT(t, l.dir, l.o)
		for i := range 50 {
			p := payload(uint64(i+1), 700)
			lsn, err := w.Append(p)
			require.NoError(t, err)
			l.want[lsn] = p
		}
		require.NoError(t, w.Close())
		// As root, permission bits are not checked: a read-only mount is
		// what refuses the writes.
		require.NoError(t, remount(t, mnt, syscall.MS_RDONLY))
		_, err := Open(l.dir, l.o)
		assert.ErrorIs(t, err, syscall.EROFS)
		assert.ErrorContains(t, err, l.dir)
		_, err = Open(filepath.Join(mnt, "new"), l.o)
		assert.ErrorIs(t, err, syscall.EROFS)
		require.NoError(t, remount(t, mnt, 0))
		l.verify(t)
		return 2
	}},
	{"segment header overwritten", func(t *testing.T, be Backend) int {
		n := 0
		base := newBadLog(t, be, 400)
		for _, which := range []string{"first", "middle", "last"} {
			for _, how := range []string{"garbage", "other segment's header", "flipped bit"} {
				l := &badLog{dir: filepath.Join(t.TempDir(), "log"), o: base.o, want: base.want}
				require.NoError(t, os.CopyFS(l.dir, os.DirFS(base.dir)))
				segs := segPaths(t, l.dir)
				require.Greater(t, len(segs), 3)
				victim := map[string]string{"first": segs[0], "middle": segs[len(segs)/2], "last": segs[len(segs)-1]}[which]
				orig, err := os.ReadFile(victim)
				require.NoError(t, err)
				bad := bytes.Clone(orig)
				switch how {
				case "garbage":
					for i := range segment.HeaderSize {
						bad[i] = byte(i*7 + 3)
					}
				case "other segment's header":
					other := segs[0]
					if other == victim {
						other = segs[1]
					}
					ob, err := os.ReadFile(other)
					require.NoError(t, err)
					copy(bad, ob[:segment.HeaderSize])
				case "flipped bit":
					bad[30] ^= 0x04 // in BaseLSN/Size
				}
				require.NoError(t, os.WriteFile(victim, bad, 0o644))
				before := snapshotDir(t, l.dir)
				_, err = Open(l.dir, l.o)
				require.Error(t, err, "%s segment, %s", which, how)
				assert.ErrorIs(t, err, segment.ErrCorrupt, "%s segment, %s", which, how)
				var ce *segment.CorruptionError
				if assert.ErrorAs(t, err, &ce) {
					assert.Equal(t, filepath.Base(victim), ce.Segment, "the error names the segment")
				}
				assert.Equal(t, before, snapshotDir(t, l.dir), "a refused Open modifies nothing")
				// The header restored, everything is there.
				require.NoError(t, os.WriteFile(victim, orig, 0o644))
				l.verify(t)
				n++
			}
		}
		return n
	}},
	{"foreign files in the directory", func(t *testing.T, be Backend) int {
		l := newBadLog(t, be, 200)
		foreign := map[string][]byte{
			"notes.txt":                    []byte("hello"),
			"00000000000000000001.seg.bak": []byte("a backup"),
			"123.seg":                      []byte("wrong width"),
			"0000000000000000000x.seg":     []byte("not digits"),
			"00000000000000000000.seg":     []byte("base lsn 0"),
			"LOCK.old":                     {},
		}
		for name, b := range foreign {
			require.NoError(t, os.WriteFile(filepath.Join(l.dir, name), b, 0o644))
		}
		require.NoError(t, os.Mkdir(filepath.Join(l.dir, "00000000000000099999.seg"), 0o755))
		l.verify(t)
		for name, b := range foreign {
			got, err := os.ReadFile(filepath.Join(l.dir, name))
			require.NoError(t, err, "%s was removed", name)
			assert.Equal(t, b, got, "%s was changed", name)
		}
		fi, err := os.Stat(filepath.Join(l.dir, "00000000000000099999.seg"))
		require.NoError(t, err)
		assert.True(t, fi.IsDir())

		// A foreign file named like a segment after the last one is read
		// as one: refused as corruption, named, and left alone.
		w := openT(t, l.dir, l.o)
		next := segment.FileName(w.LastLSN() + 1)
		require.NoError(t, w.Close())
		junk := bytes.Repeat([]byte("not a segment "), 1000)
		require.NoError(t, os.WriteFile(filepath.Join(l.dir, next), junk, 0o644))
		_, err = Open(l.dir, l.o)
		assert.ErrorIs(t, err, segment.ErrCorrupt)
		assert.ErrorContains(t, err, next)
		got, err := os.ReadFile(filepath.Join(l.dir, next))
		require.NoError(t, err)
		assert.Equal(t, junk, got)
		require.NoError(t, os.Remove(filepath.Join(l.dir, next)))

		// Names ending in .tmp are the wal's own unfinished files: removed
		// at Open (segment.TempFileSuffix).
		tmp := filepath.Join(l.dir, "scratch.tmp")
		require.NoError(t, os.WriteFile(tmp, []byte("x"), 0o644))
		l.verify(t)
		_, err = os.Stat(tmp)
		assert.ErrorIs(t, err, os.ErrNotExist, "a *.tmp file is taken for a leftover and removed")
		return len(foreign) + 3
	}},
	{"second writer process", func(t *testing.T, be Backend) int {
		l := newBadLog(t, be, 20)
		w := openT(t, l.dir, l.o)
		run := func() []string {
			cmd, out, stderr := childCmd(l.dir, envChildMode+"=lock", envChildBackend+"="+string(be))
			require.NoError(t, cmd.Run(), "child: %s", stderr)
			return out.lines
		}
		lines := run()
		_, locked := childScan(lines, "LOCKED")
		assert.True(t, locked, "a second process must get ErrLocked, got %q", lines)
		// In this process too.
		_, err := Open(l.dir, l.o)
		assert.ErrorIs(t, err, ErrLocked)
		p := payload(77, 500)
		lsn, err := w.Append(p)
		require.NoError(t, err, "the first writer is unaffected")
		l.want[lsn] = p
		require.NoError(t, w.Close())
		lines = run()
		_, opened := childScan(lines, "OPENED")
		assert.True(t, opened, "once the first writer closed, another process opens the log, got %q", lines)
		l.verify(t)
		return 2
	}},
	{"concurrent TruncateFront and TruncateBack with appends", concurrentTruncation},
}

// remount changes a tmpfs mount's flags (MS_RDONLY, or 0 for read-write).
// A read-only remount fails with EBUSY while a file on the mount is still
// open for writing. After a closed log's io_uring ring, the kernel drops the
// last references of the ring's completed requests to their files a little
// later (task_work of the submitting threads, ring teardown in a
// workqueue): on a loaded machine the first remount can come too early, so
// EBUSY is retried for a few seconds.
func remount(t *testing.T, mnt string, flags uintptr) error {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT|flags, "")
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBadInputTable runs every bad-input case on both backends.
func TestBadInputTable(t *testing.T) {
	var total, cases atomic.Int64
	for _, c := range badInputCases {
		t.Run(c.name, func(t *testing.T) {
			backends(t, func(t *testing.T, be Backend) {
				var n int
				noPanic(t, c.name, func() { n = c.run(t, be) })
				if !t.Failed() && !t.Skipped() {
					total.Add(int64(n))
					cases.Add(1)
				}
			})
		})
	}
	t.Logf("FIGURES bad-input cases=%d runs=%d (cases x backends, passed) inputs-tried=%d lost=0", len(badInputCases), cases.Load(), total.Load())
}

// concurrentTruncation appends from 6 goroutines while another calls
// TruncateFront and TruncateBack at random, then reopens and checks the log
// against a history with a logical clock:
//   - every record is one that an Append acknowledged, at its LSN (nothing
//     that was not appended, no record of a truncated incarnation of an
//     LSN);
//   - an acknowledged record is there unless a TruncateBack below its LSN
//     ended after the append began, or a TruncateFront above it was
//     requested;
//   - the log is gap-free.
func concurrentTruncation(t *testing.T, be Backend) int {
	dir := t.TempDir()
	o := smallOpts(be)
	w := openT(t, dir, o)
	var clock atomic.Int64
	type ackEv struct {
		lsn        uint64
		sum        uint32
		start, end int64
	}
	type tbEv struct {
		lsn        uint64
		start, end int64
	}
	var mu sync.Mutex
	var acks []ackEv
	var tbs []tbEv
	var tfMax uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 11))
			for seq := uint64(0); !stop.Load(); seq++ {
				p := tpMake(uint32(g), seq, 1, 0, tpHeader+rng.IntN(1200))
				start := clock.Add(1)
				lsn, err := w.Append(p)
				end := clock.Add(1)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				acks = append(acks, ackEv{lsn, crcOf(p), start, end})
				mu.Unlock()
			}
		})
	}
	tries := 0
	rng := rand.New(rand.NewPCG(1, 2))
	for range 150 {
		time.Sleep(time.Millisecond)
		last := w.LastLSN()
		switch rng.IntN(4) {
		case 0:
			lsn := last - uint64(rng.IntN(int(min(last, 10))+1))
			start := clock.Add(1)
			err := w.TruncateBack(lsn)
			end := clock.Add(1)
			if err != nil {
				// A TruncateFront may have moved the start past lsn.
				require.ErrorIs(t, err, ErrOutOfRange)
				continue
			}
			mu.Lock()
			tbs = append(tbs, tbEv{lsn, start, end})
			mu.Unlock()
		case 1:
			if last < 100 {
				continue
			}
			lsn := last - uint64(rng.IntN(100))
			mu.Lock()
			tfMax = max(tfMax, lsn)
			mu.Unlock()
			require.NoError(t, w.TruncateFront(lsn))
		default:
			continue
		}
		tries++
	}
	stop.Store(true)
	wg.Wait()
	require.NoError(t, w.Close())

	w = openT(t, dir, o)
	defer w.Close()
	first, last := w.FirstLSN(), w.LastLSN()
	recs := readAll(t, w, first)
	require.Len(t, recs, int(last-first+1), "gap-free")
	byLSN := map[uint64]uint32{}
	for i, r := range recs {
		require.Equal(t, first+uint64(i), r.LSN)
		_, err := tpParse(r.Data)
		require.NoError(t, err, "lsn %d was never appended", r.LSN)
		byLSN[r.LSN] = crcOf(r.Data)
	}
	ackedAt := map[[2]uint64]bool{}
	for _, a := range acks {
		ackedAt[[2]uint64{a.lsn, uint64(a.sum)}] = true
	}
	for lsn, sum := range byLSN {
		require.True(t, ackedAt[[2]uint64{lsn, uint64(sum)}], "lsn %d holds a record no Append acknowledged there", lsn)
	}
	if tfMax == 0 {
		require.Equal(t, uint64(1), first)
	} else {
		require.LessOrEqual(t, first, tfMax)
	}
	mustKeep := 0
	for _, a := range acks {
		gone := a.lsn < first && a.lsn < tfMax
		for _, tb := range tbs {
			if tb.lsn < a.lsn && tb.end > a.start {
				gone = true
				break
			}
		}
		if gone {
			continue
		}
		mustKeep++
		sum, ok := byLSN[a.lsn]
		require.True(t, ok, "acknowledged lsn %d lost (log [%d, %d])", a.lsn, first, last)
		require.Equal(t, a.sum, sum, "acknowledged lsn %d changed", a.lsn)
	}
	require.Positive(t, mustKeep)
	require.NotEmpty(t, tbs, "no TruncateBack succeeded")
	t.Logf("%d appends, %d TruncateBack, TruncateFront up to %d, %d records that had to survive did", len(acks), len(tbs), tfMax, mustKeep)
	return tries
}
