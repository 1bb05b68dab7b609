package wal

// Process crash loop: the test binary runs itself as a child that appends
// concurrently and durably, and is SIGKILLed at random moments.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Environment of the child process (TestCrashChild).
const (
	envChildDir     = "RINGWAL_CRASH_CHILD"         // log directory; the child does nothing without it
	envChildMode    = "RINGWAL_CRASH_CHILD_MODE"    // "append" (default) or "lock"
	envChildBackend = "RINGWAL_CRASH_CHILD_BACKEND" // Backend
	envChildSeed    = "RINGWAL_CRASH_CHILD_SEED"    // workload seed
	envChildWriters = "RINGWAL_CRASH_CHILD_WRITERS" // first writer id; the child uses crashWriters from there
)

const crashWriters = 6

// crashOpts makes rotation frequent (64 KiB segments) and exercises both
// pool buffers and heap batches (records up to 16 KiB, 8 KiB buffers).
func crashOpts(be Backend) Options {
	return Options{SegmentSize: 64 << 10, BufferSize: 8 << 10, BufferCount: 8, MaxRecordSize: 16 << 10, MaxInFlight: 4, Backend: be}
}

// TestCrashChild is the child process of TestCrashLoop and of the
// second-writer case of TestBadInputTable. Run directly, it skips.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envChildDir)
	if dir == "" {
		t.Skip("helper process: runs only as the child of TestCrashLoop / TestBadInputTable (" + envChildDir + " set)")
	}
	out := &childOut{}
	be := Backend(os.Getenv(envChildBackend))
	if os.Getenv(envChildMode) == "lock" {
		w, err := Open(dir, crashOpts(be))
		if err != nil {
			out.line("OPENFAIL %v", err)
			if errorsIsLocked(err) {
				out.line("LOCKED")
			}
			os.Exit(0)
		}
		out.line("OPENED %d %d", w.FirstLSN(), w.LastLSN())
		if err := w.Close(); err != nil {
			out.line("ERR close: %v", err)
		}
		os.Exit(0)
	}
	seed, _ := strconv.ParseUint(os.Getenv(envChildSeed), 10, 64)
	wbase, _ := strconv.ParseUint(os.Getenv(envChildWriters), 10, 32)
	w, err := Open(dir, crashOpts(be))
	if err != nil {
		out.line("ERR open: %v", err)
		os.Exit(3)
	}
	if w.Backend() != be {
		out.line("ERR backend %s, want %s", w.Backend(), be)
		os.Exit(3)
	}
	out.line("OPEN %d %d", w.FirstLSN(), w.LastLSN())

	for g := range crashWriters {
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			writer := uint32(wbase) + uint32(g)
			var seq uint64
			var line []byte
			for {
				recs := unitShape{maxBatch: 4, body: 1500, bigEvery: 25, bigMin: 9 << 10, bigSpan: 6 << 10}.next(rng, writer, seq)
				n := len(recs)
				lsn, err := appendUnit(w, recs)
				if err != nil {
					out.line("ERR append: %v", err)
					os.Exit(4)
				}
				// Report as soon as Append returned, one write per
				// acknowledgement (atomic on a pipe).
				line = line[:0]
				for i, p := range recs {
					line = fmt.Appendf(line, "A %d %d %d %d\n", lsn+uint64(i), writer, seq+uint64(i), crcOf(p))
				}
				out.write(line)
				seq += uint64(n)
			}
		}()
	}
	go func() {
		rng := rand.New(rand.NewPCG(seed, 1<<32))
		for {
			time.Sleep(time.Duration(5+rng.IntN(40)) * time.Millisecond)
			last := w.LastLSN()
			if last < 200 {
				continue
			}
			target := last - uint64(rng.IntN(200))
			out.line("TF %d", target) // before the call: the parent must allow it
			if err := w.TruncateFront(target); err != nil {
				out.line("ERR truncate front %d: %v", target, err)
				os.Exit(5)
			}
		}
	}()
	time.Sleep(60 * time.Second) // the parent kills the child long before
	out.line("ERR not killed within 60s")
	os.Exit(6)
}

func errorsIsLocked(err error) bool { return errors.Is(err, ErrLocked) }

// childOut writes whole lines to stdout, one write each.
type childOut struct{ mu sync.Mutex }

func (o *childOut) write(b []byte) {
	o.mu.Lock()
	os.Stdout.Write(b)
	o.mu.Unlock()
}

func (o *childOut) line(format string, a ...any) { o.write(fmt.Appendf(nil, format+"\n", a...)) }

// childLines collects the child's stdout and signals its first line of a
// given kind.
type childLines struct {
	mu      sync.Mutex
	buf     []byte
	lines   []string
	opened  chan struct{}
	onceOpn sync.Once
}

func (c *childLines) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	for {
		i := bytes.IndexByte(c.buf, '\n')
		if i < 0 {
			break
		}
		l := string(c.buf[:i])
		c.buf = c.buf[i+1:]
		c.lines = append(c.lines, l)
		if strings.HasPrefix(l, "OPEN ") || strings.HasPrefix(l, "ERR") {
			c.onceOpn.Do(func() { close(c.opened) })
		}
	}
	return len(p), nil
}

// childCmd prepares the test binary as a child running TestCrashChild.
func childCmd(dir string, env ...string) (*exec.Cmd, *childLines, *bytes.Buffer) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), envChildDir+"="+dir)
	cmd.Env = append(cmd.Env, env...)
	out := &childLines{opened: make(chan struct{})}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	// The child must not outlive a test binary that dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, out, &stderr
}

// crashFigures are the counts TestCrashLoop reports.
type crashFigures struct {
	kills, killsBeforeOpen, acked, checked, truncFronts, recovered, maxSegments int
}

// TestCrashLoop SIGKILLs a child appending durably with 6 goroutines (and
// calling TruncateFront), at random moments, again and again in one
// directory; after each kill it reopens the log and checks: Open succeeds,
// every acknowledged record is there and byte-identical, the log is
// gap-free, and every record is one a writer appended (self-checking
// payloads), in its writer's order, with atomic batches whole.
//
// Knobs: RINGWAL_SEED, RINGWAL_CRASH_ITERS (kills per backend, default 15).
func TestCrashLoop(t *testing.T) {
	seed := testSeed(t)
	iters := envInt(t, envCrashIters, 15)
	backends(t, func(t *testing.T, be Backend) {
		rng := testRand(t, seed)
		dir := t.TempDir()
		m := newLogModel()
		var fig crashFigures
		for it := range iters {
			childSeed := rng.Uint64()
			cmd, out, stderr := childCmd(dir,
				envChildBackend+"="+string(be),
				envChildSeed+"="+strconv.FormatUint(childSeed, 10),
				envChildWriters+"="+strconv.Itoa((it+1)*100))
			require.NoError(t, cmd.Start())
			// Mostly kill while appending (after Open, at a random moment
			// up to 250ms in: several rotations and TruncateFronts); one
			// time in eight, at a random moment during start-up and
			// recovery.
			early := rng.IntN(8) == 0
			delay := time.Duration(rng.Int64N(int64(250 * time.Millisecond)))
			if early {
				delay = time.Duration(rng.Int64N(int64(60 * time.Millisecond)))
			} else {
				select {
				case <-out.opened:
				case <-time.After(30 * time.Second):
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("iteration %d: child did not open the log within 30s; stderr:\n%s", it, stderr)
				}
			}
			time.Sleep(delay)
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			err := cmd.Wait()
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL,
				"iteration %d: child was not killed by SIGKILL (%v); stderr:\n%s\nstdout:\n%s", it, err, stderr, strings.Join(out.lines, "\n"))
			fig.kills++

			opened := false
			for _, l := range out.lines {
				f := strings.Fields(l)
				switch {
				case len(f) == 0:
				case f[0] == "ERR":
					t.Fatalf("iteration %d: child failed: %s\nstderr:\n%s", it, l, stderr)
				case f[0] == "OPEN":
					opened = true
				case f[0] == "A" && len(f) == 5:
					lsn, _ := strconv.ParseUint(f[1], 10, 64)
					writer, _ := strconv.ParseUint(f[2], 10, 32)
					seq, _ := strconv.ParseUint(f[3], 10, 64)
					sum, _ := strconv.ParseUint(f[4], 10, 32)
					m.ack(lsn, ackRec{writer: uint32(writer), seq: seq, sum: uint32(sum)})
					fig.acked++
				case f[0] == "TF" && len(f) == 2:
					lsn, _ := strconv.ParseUint(f[1], 10, 64)
					m.requestTruncateFront(lsn)
					fig.truncFronts++
				}
			}
			if !opened {
				fig.killsBeforeOpen++
			}

			recs, first, last, bad := checkLog(dir, crashOpts(be), m)
			if len(bad) > 0 {
				t.Fatalf("iteration %d (killed after %v, early=%v), log [%d, %d]:\n  %s\nreproduce with %s=%d %s=%d",
					it, delay, early, first, last, strings.Join(bad, "\n  "), envSeed, seed, envCrashIters, iters)
			}
			m.recovered(recs)
			fig.checked += len(m.acked)
			fig.recovered += len(recs)
			segs, _ := segmentNames(dir)
			fig.maxSegments = max(fig.maxSegments, len(segs))
		}
		require.Positive(t, fig.acked, "the children acknowledged nothing: the test tested nothing")
		require.Less(t, fig.killsBeforeOpen, fig.kills, "every kill came before Open")
		t.Logf("FIGURES crash-loop backend=%s kills=%d (before open: %d) acked=%d acked-checks=%d truncate-front-calls=%d records-recovered-total=%d max-segments=%d lost=0",
			be, fig.kills, fig.killsBeforeOpen, fig.acked, fig.checked, fig.truncFronts, fig.recovered, fig.maxSegments)
	})
}

// segmentNames lists the segment files of dir.
func segmentNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".seg") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// childScan is a helper for tests that only need the child's lines.
func childScan(lines []string, prefix string) (string, bool) {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l, true
		}
	}
	return "", false
}
