package raftlog

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// model is what the store must hold: entry index -> term (contents follow
// from makeLogs), over [first, last]; first == 0 when empty.
type model struct {
	first, last uint64
	terms       map[uint64]uint64
}

func (m *model) check(t *testing.T, s *Store) {
	t.Helper()
	first, err := s.FirstIndex()
	require.NoError(t, err)
	last, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, []uint64{m.first, m.last}, []uint64{first, last}, "first, last")
	var l raft.Log
	if m.first > 0 {
		for idx := m.first; idx <= m.last; idx++ {
			require.NoError(t, s.GetLog(idx, &l), "GetLog(%d)", idx)
			require.Equal(t, *makeLogs(idx, 1, m.terms[idx])[0], l, "GetLog(%d)", idx)
		}
		require.Equal(t, raft.ErrLogNotFound, s.GetLog(m.first-1, &l))
	}
	require.Equal(t, raft.ErrLogNotFound, s.GetLog(m.last+1, &l))
}

// TestRandomOperations drives the store with the operations raft makes, in
// random order, reopening it now and then, and compares it with a model
// after every step.
func TestRandomOperations(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedForTest(), 2))
	s := openTest(t, t.TempDir())
	defer func() { s.Close() }()
	m := &model{terms: map[uint64]uint64{}}
	term := uint64(1)
	steps := 400
	if testing.Short() {
		steps = 100
	}
	for step := range steps {
		switch op := rng.IntN(20); {
		case op < 10: // append a batch
			n := 1 + rng.IntN(40)
			next := m.last + 1
			if m.first == 0 && rng.IntN(3) == 0 {
				next = 1 + rng.Uint64N(1<<20) // an empty store starts anywhere
			}
			storeRange(t, s, next, n, n, term)
			if m.first == 0 {
				m.first = next
			}
			for i := range uint64(n) {
				m.terms[next+i] = term
			}
			m.last = next + uint64(n) - 1
		case op < 13 && m.first > 0: // compaction
			hi := m.first + rng.Uint64N(m.last-m.first+1)
			require.NoError(t, s.DeleteRange(m.first-rng.Uint64N(m.first), hi))
			if hi >= m.last {
				m.first, m.last = 0, 0
			} else {
				m.first = hi + 1
			}
		case op < 17 && m.first > 0: // conflict: drop a suffix, later term
			lo := m.first + rng.Uint64N(m.last-m.first+1)
			require.NoError(t, s.DeleteRange(lo, lo+rng.Uint64N(1000)+(m.last-lo)))
			term++
			if lo == m.first {
				m.first, m.last = 0, 0
			} else {
				m.last = lo - 1
			}
		case op < 18 && m.first > 0: // everything, as after a snapshot install
			require.NoError(t, s.DeleteRange(m.first, m.last))
			m.first, m.last = 0, 0
		case op < 19:
			s = reopen(t, s)
		}
		if m.first == 0 {
			m.last = 0
		}
		m.check(t, s)
		if t.Failed() {
			t.Fatalf("step %d", step)
		}
	}
	s = reopen(t, s)
	m.check(t, s)
	t.Logf("runs in META at the end: %d, segments: %d", len(s.meta.runs), segmentCount(t, s))
}

// seedForTest is 1, or $RAFTLOG_SEED to explore other sequences.
func seedForTest() uint64 {
	if v, err := strconv.ParseUint(os.Getenv("RAFTLOG_SEED"), 10, 64); err == nil {
		return v
	}
	return 1
}
