package raftlog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// The kill test re-runs this test binary as a child that drives a store
// until it is killed with SIGKILL.
const childEnv = "RAFTLOG_KILL_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		killChild(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// killChild applies random operations to the store in dir forever. Before
// each it prints "begin <op>", after it returned nil "ok": the parent knows
// every acknowledged operation and the one (at most) in progress.
func killChild(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	s, err := Open(dir, testOptions())
	if err != nil {
		fail(err)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	term := uint64(1)
	if last > 0 {
		var l raft.Log
		if err := s.GetLog(last, &l); err != nil {
			fail(err)
		}
		term = l.Term + 1
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	out := os.Stdout // unbuffered: what was printed survives the kill
	do := func(op string, f func() error) {
		fmt.Fprintf(out, "begin %s\n", op)
		if err := f(); err != nil {
			fail(fmt.Errorf("%s: %w", op, err))
		}
		fmt.Fprintln(out, "ok")
	}
	for {
		switch op := rng.IntN(10); {
		case op < 6 || first == 0:
			next := last + 1
			if first == 0 && rng.IntN(2) == 0 {
				next = 1 + rng.Uint64N(1<<30)
			}
			n := 1 + rng.IntN(30)
			do(fmt.Sprintf("store %d %d %d", next, n, term), func() error {
				return s.StoreLogs(makeLogs(next, n, term))
			})
			if first == 0 {
				first = next
			}
			last = next + uint64(n) - 1
		case op < 8:
			hi := first + rng.Uint64N(last-first+1)
			do(fmt.Sprintf("delete %d %d", first, hi), func() error { return s.DeleteRange(first, hi) })
			if hi >= last {
				first, last = 0, 0
			} else {
				first = hi + 1
			}
		default:
			lo := first + rng.Uint64N(last-first+1)
			do(fmt.Sprintf("delete %d %d", lo, last), func() error { return s.DeleteRange(lo, last) })
			term++
			if lo == first {
				first, last = 0, 0
			} else {
				last = lo - 1
			}
		}
	}
}

// apply returns m after one operation line of the child.
func (m model) apply(t *testing.T, op string) model {
	n := model{first: m.first, last: m.last, terms: make(map[uint64]uint64, len(m.terms))}
	for k, v := range m.terms {
		n.terms[k] = v
	}
	var a, b, c uint64
	switch {
	case strings.HasPrefix(op, "store"):
		_, err := fmt.Sscanf(op, "store %d %d %d", &a, &b, &c)
		require.NoError(t, err)
		if n.first == 0 {
			n.first = a
		}
		for i := range b {
			n.terms[a+i] = c
		}
		n.last = a + b - 1
	case strings.HasPrefix(op, "delete"):
		_, err := fmt.Sscanf(op, "delete %d %d", &a, &b)
		require.NoError(t, err)
		switch {
		case a <= n.first && b >= n.last:
			n.first, n.last = 0, 0
		case a <= n.first:
			n.first = b + 1
		default:
			n.last = a - 1
		}
	default:
		t.Fatalf("unknown operation %q", op)
	}
	return n
}

// readModel reads everything the store holds.
func readModel(t *testing.T, s *Store) model {
	t.Helper()
	m := model{terms: map[uint64]uint64{}}
	m.first, _ = s.FirstIndex()
	m.last, _ = s.LastIndex()
	if m.first == 0 {
		return m
	}
	var l raft.Log
	for idx := m.first; idx <= m.last; idx++ {
		require.NoError(t, s.GetLog(idx, &l), "GetLog(%d)", idx)
		require.Equal(t, *makeLogs(idx, 1, l.Term)[0], l)
		m.terms[idx] = l.Term
	}
	return m
}

func (m model) same(o model) bool {
	if m.first != o.first || m.last != o.last {
		return false
	}
	for idx := m.first; m.first > 0 && idx <= m.last; idx++ {
		if m.terms[idx] != o.terms[idx] {
			return false
		}
	}
	return true
}

// TestKill9 kills a process that stores, compacts and truncates, at random
// moments, with SIGKILL, and checks after each kill that the store holds
// exactly what the acknowledged operations left, plus possibly the effect of
// the one in progress: nothing acknowledged is lost, nothing deleted comes
// back, nothing half-done shows.
func TestKill9(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(seedForTest(), 9))
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	m := model{terms: map[uint64]uint64{}}
	for round := range rounds {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(150+rng.IntN(250)) * time.Millisecond)
		require.NoError(t, cmd.Process.Kill())
		err := cmd.Wait()
		require.Error(t, err, "the child exits only when killed")
		require.Empty(t, stderr.String())

		acked, pending := 0, ""
		for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			switch {
			case line == "ok":
				m = m.apply(t, pending)
				pending = ""
				acked++
			case strings.HasPrefix(line, "begin "):
				pending = strings.TrimPrefix(line, "begin ")
			}
		}
		s := openTest(t, dir)
		got := readModel(t, s)
		require.NoError(t, s.Close())
		switch {
		case got.same(m):
		case pending != "" && got.same(m.apply(t, pending)):
			m = got
		default:
			t.Fatalf("round %d: store holds %d-%d; acknowledged state %d-%d, operation in progress %q",
				round, got.first, got.last, m.first, m.last, pending)
		}
		t.Logf("round %d: %d operations acknowledged, killed during %q; store holds %d-%d",
			round, acked, pending, got.first, got.last)
	}
}
