package wal

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringwal/ringwal/internal/ring"
)

// TestReadRingUnavailable: on io_uring, a replay ring that cannot be set up
// (its registration refused) fails neither Open nor a reader. The log
// appends through io_uring, says why in its log once, and its readers (and
// a verifying Open) read with pread.
func TestReadRingUnavailable(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	o := Options{
		Backend:       BackendURing,
		SegmentSize:   64 << 10,
		MaxRecordSize: 4 << 10,
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
		newReadRing:   func() (*readRing, error) { return nil, fmt.Errorf("register: %w", syscall.ENOMEM) },
		VerifyOnOpen:  true,
	}
	w, err := Open(dir, o)
	require.NoError(t, err)
	require.Equal(t, BackendURing, w.Backend())
	want := make([][]byte, 300)
	for i := range want {
		want[i] = bytes.Repeat([]byte{byte(i)}, 500+i)
		_, err := w.Append(want[i])
		require.NoError(t, err)
	}
	require.Greater(t, w.Stats().Segments, 1, "the records span segments")
	check := func(w *WAL) {
		got := readAll(t, w, 1)
		require.Len(t, got, len(want))
		for i, r := range got {
			require.Equal(t, want[i], r.Data, "lsn %d", r.LSN)
		}
		assert.Zero(t, w.Stats().ReadFixedOps)
	}
	check(w)
	assert.Contains(t, logs.String(), "replay reads with pread", "the first reader says why")
	assert.Contains(t, logs.String(), "cannot allocate memory")
	assert.Equal(t, 1, strings.Count(logs.String(), "read ring unavailable"), "once, not per reader")
	check(w)
	require.NoError(t, w.Close())

	w, err = Open(dir, o) // VerifyOnOpen reads every segment with pread
	require.NoError(t, err)
	check(w)
	require.NoError(t, w.Close())
}

const envMemlockChild = "RINGWAL_MEMLOCK_CHILD" // the child's RLIMIT_MEMLOCK in KiB

// TestMemlockChild is TestMemlock's child: it lowers its RLIMIT_MEMLOCK,
// opens a log in the directory named by its argument with the default
// options (BackendAuto), appends, reads back and prints what it got.
func TestMemlockChild(t *testing.T) {
	lim := os.Getenv(envMemlockChild)
	if lim == "" {
		t.Skip("helper process: runs only as the child of TestMemlock (" + envMemlockChild + " set)")
	}
	var kib uint64
	_, err := fmt.Sscan(lim, &kib)
	require.NoError(t, err)
	rl := unix.Rlimit{Cur: kib << 10, Max: kib << 10}
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_MEMLOCK, &rl))
	w, err := Open(os.Getenv(envChildDir), Options{})
	if err != nil {
		fmt.Printf("OPENFAIL %v\n", err)
		return
	}
	for i := range 100 {
		_, err := w.Append([]byte(fmt.Sprintf("record %d", i)))
		require.NoError(t, err)
	}
	got := readAll(t, w, 1)
	for i, rec := range got {
		require.Equal(t, fmt.Sprintf("record %d", i), string(rec.Data))
	}
	fmt.Printf("RESULT backend=%s read=%d readfixed=%t\n", w.Backend(), len(got), w.Stats().ReadFixedOps > 0)
	require.NoError(t, w.Close())
}

// memlockUID is the user TestMemlock's child runs as when the test runs as
// root: one no process uses. io_uring counts registered buffers against
// the user's locked memory, summed over all its processes, so under nobody
// (65534) any other unprivileged process locking memory at the same time
// (another test, a daemon) would push the child over its limit: a CI run
// failed that way while an io_uring replay ran as nobody beside it.
const memlockUID = 61991

// TestMemlock opens logs with the default options in an unprivileged process
// (as root, the child runs as uid memlockUID: root's CAP_IPC_LOCK bypasses
// the limit) under three RLIMIT_MEMLOCK values. 8 MiB, a common default, holds
// both default pools: io_uring writes and READ_FIXED replay. 5 MiB holds the
// write pool only: io_uring writes, pread replay. 3 MiB holds neither:
// BackendAuto falls back to pwrite. Every case opens, appends and reads
// everything back.
func TestMemlock(t *testing.T) {
	require.NoError(t, ring.Probe(), "io_uring must work here (this test covers how Open degrades, not whether it can)")
	exe, err := os.Executable()
	require.NoError(t, err)
	// A copy of the test binary and a directory that nobody can use.
	base, err := os.MkdirTemp(openTempDir(t), "ringwal-memlock-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755))
	bin := filepath.Join(base, "wal.test")
	data, err := os.ReadFile(exe)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, data, 0o755))

	for _, c := range []struct {
		kib       int
		backend   Backend
		readFixed bool
	}{
		{8 << 10, BackendURing, true},
		{5 << 10, BackendURing, false},
		{3 << 10, BackendPwrite, false},
	} {
		t.Run(fmt.Sprintf("memlock=%dKiB", c.kib), func(t *testing.T) {
			dir := filepath.Join(base, fmt.Sprintf("log-%d", c.kib))
			require.NoError(t, os.Mkdir(dir, 0o777))
			require.NoError(t, os.Chmod(dir, 0o777))
			cmd := exec.Command(bin, "-test.run=^TestMemlockChild$", "-test.count=1", "-test.timeout=1m")
			cmd.Env = append(os.Environ(), envMemlockChild+"="+fmt.Sprint(c.kib), envChildDir+"="+dir, "TMPDIR="+base)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if os.Geteuid() == 0 {
				cmd.SysProcAttr.Credential = &syscall.Credential{Uid: memlockUID, Gid: memlockUID}
			}
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "child:\n%s", out)
			want := fmt.Sprintf("RESULT backend=%s read=100 readfixed=%t", c.backend, c.readFixed)
			require.True(t, strings.Contains(string(out), want), "want %q; child:\n%s", want, out)
		})
	}
}

// openTempDir returns a temporary directory whose ancestors every user may
// pass through (the child may run as nobody).
func openTempDir(t *testing.T) string {
	for _, d := range []string{os.TempDir(), "/tmp", "/var/tmp", "/dev/shm"} {
		ok := true
		for p := d; ok; p = filepath.Dir(p) {
			fi, err := os.Stat(p)
			ok = err == nil && fi.IsDir() && fi.Mode().Perm()&0o001 != 0
			if p == filepath.Dir(p) {
				break
			}
		}
		if ok {
			return d
		}
	}
	t.Fatal("no temporary directory that an unprivileged child can reach")
	return ""
}

// TestRecordDataAfterClose: a record's Data kept past its validity (here
// after the Reader and the log are closed) is a programming error, but it
// must read stale or unchanged bytes, not crash the process: on io_uring,
// Data is a slice of a registered read buffer, which Close must not unmap.
func TestRecordDataAfterClose(t *testing.T) {
	for _, be := range []Backend{BackendURing, BackendPwrite} {
		t.Run(string(be), func(t *testing.T) {
			w, err := Open(t.TempDir(), Options{Backend: be})
			require.NoError(t, err)
			want := bytes.Repeat([]byte("kept "), 200)
			_, err = w.Append(want)
			require.NoError(t, err)
			r, err := w.NewReader(1)
			require.NoError(t, err)
			rec, err := r.Next()
			require.NoError(t, err)
			require.NoError(t, r.Close())
			require.NoError(t, w.Close())
			runtime.GC()
			assert.Equal(t, want, rec.Data)
		})
	}
}

// TestReadRingOnFirstReader: on io_uring the replay ring and its locked
// buffers are made by the first reader, not by Open: a log that only
// appends never sets them up. A reader that outlives Close keeps the ring
// until it is closed itself.
func TestReadRingOnFirstReader(t *testing.T) {
	w, err := Open(t.TempDir(), Options{Backend: BackendURing})
	require.NoError(t, err)
	for i := range 50 {
		_, err := w.Append([]byte(fmt.Sprint(i)))
		require.NoError(t, err)
	}
	w.reads.mu.Lock()
	tried := w.reads.tried
	w.reads.mu.Unlock()
	assert.False(t, tried, "Open and appends made no replay ring")

	require.Len(t, readAll(t, w, 1), 50)
	assert.Positive(t, w.Stats().ReadFixedOps, "the first reader made the ring and read through it")

	r, err := w.NewReader(1)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	got := readRest(t, r)
	require.Len(t, got, 50, "the reader reads on after Close")
	for i, rec := range got {
		require.Equal(t, fmt.Sprint(i), string(rec.Data))
	}
	require.NoError(t, r.Close())
	_, err = w.NewReader(1)
	assert.ErrorIs(t, err, ErrClosed)
}

// TestReplayLargeRecords: records larger than a reader's window (1 MiB) are
// read with ReadAt into a buffer of their own, between records read from
// lent windows (io_uring) or the reader's window (pwrite); sizes around the
// window and the READ_FIXED chunk, and records spanning several chunks, all
// read back intact, from the start and from the middle.
func TestReplayLargeRecords(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := Options{Backend: be, SegmentSize: 32 << 20, MaxRecordSize: 5 << 20}
		w := openT(t, dir, o)
		sizes := []int{10, replayBuffer - 24, replayBuffer - 23, replayBuffer, 100, readChunk - 24, readChunk + 1,
			3 << 20, 7, 5 << 20, 2*readChunk + 5, 1000, replayBuffer + 1}
		var want [][]byte
		for round := range 3 {
			for i, n := range sizes {
				p := payload(uint64(round*100+i), n)
				_, err := w.Append(p)
				require.NoError(t, err)
				want = append(want, p)
			}
		}
		require.NoError(t, w.Close())
		w = openT(t, dir, o)
		defer w.Close()
		for _, from := range []uint64{1, uint64(len(sizes)) + 4} {
			got := readAll(t, w, from)
			require.Len(t, got, len(want)-int(from)+1)
			for i, r := range got {
				require.True(t, bytes.Equal(want[int(from)-1+i], r.Data), "lsn %d: %d bytes, want %d", r.LSN, len(r.Data), len(want[int(from)-1+i]))
			}
		}
	})
}
