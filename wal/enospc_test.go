package wal

// Full disk, for real: a small tmpfs mounted by the test (root only; CI runs
// as root).
//
// The wal writes records only into segments prepared ahead (zero-filled or
// fallocated, then synced), so a full disk shows when the next segment is
// prepared: the rotation that needs it fails. These tests fill the disk
// while appenders run and right at rotation, and check that Append returns
// an error wrapping ENOSPC, nothing acknowledged is lost, the log reopens on
// the full disk, and appends succeed again once space is freed, without a
// reopen.

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/segment"
)

// mountTmpfs mounts a tmpfs of the given size on a fresh directory and
// unmounts it when the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root): full-disk and read-only cases are not run")
	}
	dir := t.TempDir()
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0755"))
	unmountAtCleanup(t, dir)
	return dir
}

// unmountAtCleanup unmounts the file system mounted on dir when the test
// ends.
func unmountAtCleanup(t *testing.T, dir string) {
	t.Cleanup(func() {
		// A closed io_uring instance drops its file references from a
		// kernel worker, a little later: EBUSY for a moment is expected.
		var err error
		for range 200 {
			if err = syscall.Unmount(dir, 0); !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("unmount %s: %v (files left open?)", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// fillDisk writes a file until the file system is full and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler-")
	require.NoError(t, err)
	defer f.Close()
	for _, chunk := range []int{256 << 10, 4 << 10, 512, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				require.ErrorIs(t, err, syscall.ENOSPC)
				break
			}
		}
	}
	return f.Name()
}

func fullDiskOpts(be Backend, pa Prealloc) Options {
	return Options{SegmentSize: 256 << 10, BufferSize: 16 << 10, BufferCount: 8, MaxRecordSize: 32 << 10,
		Backend: be, Prealloc: pa}
}

// fullDiskConfigs runs f for each backend and preallocation mode.
func fullDiskConfigs(t *testing.T, f func(t *testing.T, o Options)) {
	backends(t, func(t *testing.T, be Backend) {
		for _, pa := range []Prealloc{PreallocZero, PreallocFallocate} {
			name := map[Prealloc]string{PreallocZero: "zero", PreallocFallocate: "fallocate"}[pa]
			t.Run(name, func(t *testing.T) { f(t, fullDiskOpts(be, pa)) })
		}
	})
}

// TestFullDisk fills a 4 MiB tmpfs under running appenders, again and again:
// each cycle 4 goroutines append until the disk is full and every one of
// them got an error wrapping ENOSPC; the records acknowledged so far are all
// readable; every other cycle the log is closed and reopened on the full
// disk; then space is freed and the very next append succeeds, on the same
// open log. A TruncateFront at the start of each cycle makes room for the
// next.
//
// Knobs: RINGWAL_SEED, RINGWAL_ENOSPC_CYCLES (cycles per configuration,
// default 3).
func TestFullDisk(t *testing.T) {
	seed := testSeed(t)
	cycles := envInt(t, envENOSPC, 3)
	var mu sync.Mutex
	total := map[string]int{}
	fullDiskConfigs(t, func(t *testing.T, o Options) {
		rng := testRand(t, seed)
		mnt := mountTmpfs(t, "4m")
		dir := filepath.Join(mnt, "log")
		m := newLogModel()
		w := openT(t, dir, o)
		defer func() { w.Close() }()
		enospcErrs, reopens, acked, logFilled := 0, 0, 0, 0
		for cycle := range cycles {
			if last := w.LastLSN(); last > 0 {
				m.requestTruncateFront(last)
				require.NoError(t, w.TruncateFront(last))
			}
			var amu sync.Mutex
			var errs []error
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for g := range 4 {
				grng := rand.New(rand.NewPCG(rng.Uint64(), uint64(g)))
				writer := uint32(cycle+1)*16 + uint32(g)
				wg.Go(func() {
					var seq uint64
					for {
						recs := unitShape{maxBatch: 3, body: 2000, bigEvery: 30, bigMin: 17 << 10, bigSpan: 8 << 10}.next(grng, writer, seq)
						n := len(recs)
						lsn, err := appendUnit(w, recs)
						amu.Lock()
						if err != nil {
							errs = append(errs, err)
							amu.Unlock()
							return
						}
						for i, p := range recs {
							m.ack(lsn+uint64(i), ackRec{writer: writer, seq: seq + uint64(i), sum: crcOf(p)})
							acked++
						}
						amu.Unlock()
						seq += uint64(n)
						select {
						case <-stop:
							return
						default:
						}
					}
				})
			}
			// Fill the disk at a random moment: during appends, during the
			// preparation of the next segment, or between rotations.
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
			filler := fillDisk(t, mnt)
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				close(stop)
				<-done
				t.Fatalf("cycle %d: appends went on for 30s on a full disk", cycle)
			}
			require.Len(t, errs, 4)
			for _, err := range errs {
				require.ErrorIs(t, err, syscall.ENOSPC, "cycle %d", cycle)
				assert.NotErrorIs(t, err, ErrFailed, "a full disk at rotation does not fail the log")
				assert.Contains(t, err.Error(), "prepare segment")
				enospcErrs++
			}
			require.NoError(t, w.Stats().Failed)
			// Still full: what was acknowledged reads back.
			for lsn, a := range m.acked {
				if lsn >= w.FirstLSN() {
					data, err := w.Read(lsn)
					require.NoError(t, err)
					require.Equal(t, a.sum, crcOf(data))
				}
			}
			if cycle%2 == 1 {
				// Reopen on the full disk.
				require.NoError(t, w.Close())
				recs, first, last, bad := checkLog(dir, o, m)
				require.Empty(t, bad, "cycle %d: log [%d, %d] reopened on a full disk", cycle, first, last)
				m.recovered(recs)
				w = openT(t, dir, o)
				reopens++
			}
			fi, err := os.Stat(filler)
			require.NoError(t, err)
			require.NoError(t, os.Remove(filler))
			if fi.Size() < o.SegmentSize {
				// The log filled the disk before the filler started (a
				// fast machine, no race detector): removing the filler
				// frees nothing. Free space the way a user would, by
				// dropping what a checkpoint covers.
				if last := w.LastLSN(); last > 0 {
					m.requestTruncateFront(last)
					require.NoError(t, w.TruncateFront(last))
				}
				logFilled++
			}
			// Space is back: the very next append succeeds. It may need a
			// new segment (the active one is full).
			p := tpMake(2, uint64(cycle), 1, 0, 20000)
			lsn, err := w.Append(p)
			require.NoError(t, err, "cycle %d: append after space was freed", cycle)
			m.ack(lsn, ackRec{writer: 2, seq: uint64(cycle), sum: crcOf(p)})
			m.maxAcked[2] = uint64(cycle) + 1
		}
		require.NoError(t, w.Close())
		recs, first, last, bad := checkLog(dir, o, m)
		require.Empty(t, bad, "log [%d, %d] at the end", first, last)
		require.NotEmpty(t, recs)
		w = openT(t, dir, o)
		mu.Lock()
		total["cycles"] += cycles
		total["enospc"] += enospcErrs
		total["reopens"] += reopens
		total["acked"] += acked
		total["logFilled"] += logFilled
		total["configs"]++
		mu.Unlock()
	})
	t.Logf("FIGURES full-disk configurations=%d cycles=%d enospc-errors=%d reopens-on-full-disk=%d acked=%d lost=0 filled-by-the-log=%d",
		total["configs"], total["cycles"], total["enospc"], total["reopens"], total["acked"], total["logFilled"])
}

// TestFullDiskAtRotation fills the disk with the log idle, then appends one
// record at a time: the appends that fit in the active segment (and in the
// segment prepared before the disk filled up) succeed, and the first one
// that needs another segment gets ENOSPC, with every earlier record intact.
// Also: a new log cannot be created on a full disk (a clear ENOSPC error, no
// segment left behind), and TruncateBack, which writes a copy of the
// segment it cuts, fails on a full disk with ENOSPC and stops the log (it is
// fail-stop), which reopens with every record up to the truncation point.
func TestFullDiskAtRotation(t *testing.T) {
	fullDiskConfigs(t, func(t *testing.T, o Options) {
		mnt := mountTmpfs(t, "4m")
		dir := filepath.Join(mnt, "log")
		w := openT(t, dir, o)
		defer func() { w.Close() }()
		var want [][]byte
		for i := range 100 {
			p := payload(uint64(i+1), 1000)
			_, err := w.Append(p)
			require.NoError(t, err)
			want = append(want, p)
		}
		// Let the preparer finish the next segment: the disk fills behind
		// it.
		time.Sleep(50 * time.Millisecond)
		segsBefore := w.Stats().Segments
		filler := fillDisk(t, mnt)
		var err error
		for i := len(want); ; i++ {
			p := payload(uint64(i+1), 1000)
			w.mu.Lock()
			needsSegment := w.tail+int64(segment.FrameSize(len(p))) > o.SegmentSize
			w.mu.Unlock()
			_, err = w.Append(p)
			if err != nil {
				require.True(t, needsSegment, "append %d failed though the active segment had room: %v", i+1, err)
				break
			}
			want = append(want, p)
			require.Less(t, i, 2000, "appends never hit the full disk")
		}
		require.ErrorIs(t, err, syscall.ENOSPC)
		assert.Contains(t, err.Error(), "prepare segment")
		assert.LessOrEqual(t, w.Stats().Segments, segsBefore+1, "at most the segment prepared before the disk filled was used")
		assert.Equal(t, uint64(len(want)), w.LastLSN())

		// TruncateBack needs room for a copy of the segment it cuts.
		cut := uint64(len(want) - 5)
		err = w.TruncateBack(cut)
		require.ErrorIs(t, err, syscall.ENOSPC)
		require.ErrorIs(t, err, ErrFailed, "a TruncateBack that failed half-way stops the log")
		require.NoError(t, w.Close())
		w = openT(t, dir, o)
		last := w.LastLSN()
		assert.GreaterOrEqual(t, last, cut, "TruncateBack never drops what it was asked to keep")
		recs := readAll(t, w, 1)
		require.Len(t, recs, int(last))
		for i, r := range recs {
			require.Equal(t, want[i], r.Data)
		}
		require.NoError(t, os.Remove(filler))
		require.NoError(t, w.TruncateBack(cut))
		lsn, err := w.Append([]byte("space again"))
		require.NoError(t, err)
		assert.Equal(t, cut+1, lsn)
		require.NoError(t, w.Close())

		// A new log on a full disk.
		filler = fillDisk(t, mnt)
		fresh := filepath.Join(mnt, "fresh")
		_, err = Open(fresh, o)
		require.ErrorIs(t, err, syscall.ENOSPC)
		names, _ := segmentNames(fresh)
		assert.Empty(t, names, "no segment is left behind")
		require.NoError(t, os.Remove(filler))
		w = openT(t, fresh, o)
		_, err = w.Append([]byte("x"))
		require.NoError(t, err)
	})
}
