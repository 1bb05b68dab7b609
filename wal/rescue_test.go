package wal

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/internal/ring"
)

// lostRing passes chains to the real ring, except the at-th chain that ends
// in fdatasync: that one it never hands to the kernel, as if the kernel had
// taken it and never completed it. When gate is closed the chain "runs
// late": with late set its writes and syncs are done then (the same bytes,
// at the same place, as a late kernel write would), otherwise it completes
// cancelled, as when the ring is torn down.
type lostRing struct {
	inner ring.Submitter
	at    int64
	late  bool
	gate  chan struct{}

	syncs atomic.Int64
	done  chan struct{} // closed once the lost chain completed
}

func (r *lostRing) Submit(ops []ring.Op) (ring.Completion, error) {
	if ops[len(ops)-1].Kind != ring.Fdatasync || r.syncs.Add(1) != r.at {
		return r.inner.Submit(ops)
	}
	ops = slices.Clone(ops)
	fc := &fakeCompletion{done: make(chan struct{}), res: make([]int32, len(ops))}
	go func() {
		<-r.gate
		if r.late {
			execOps(osFileIO{}, ops, fc.res)
		} else {
			for i := range fc.res {
				fc.res[i] = -int32(syscall.ECANCELED)
			}
		}
		close(fc.done)
		close(r.done)
	}()
	return fc, nil
}

// A chain the kernel never completes must not leave its appender waiting
// forever: after rescueAfter the completer writes and syncs it itself, the
// appender gets its LSN, the records are durable, and the chain's buffer
// stays out of the pool until the kernel lets go of it.
func TestLostChainIsRescued(t *testing.T) {
	for _, late := range []bool{true, false} {
		t.Run(fmt.Sprintf("kernel-runs-it-late=%v", late), func(t *testing.T) {
			o := smallOpts(BackendURing)
			o.rescueAfter = time.Second
			lr := &lostRing{at: 3, late: late, gate: make(chan struct{}), done: make(chan struct{})}
			o.wrapSubmitter = func(s ring.Submitter) ring.Submitter { lr.inner = s; return lr }
			dir := t.TempDir()
			w := openT(t, dir, o)
			defer openGate(lr.gate) // after Close: the lost chain completes cancelled

			for i := range 10 {
				lsn, err := appendWithin(t, w, payload(uint64(i+1), 100), 10*time.Second)
				require.NoError(t, err)
				require.Equal(t, uint64(i+1), lsn)
			}
			// A real chain slower than rescueAfter (a loaded disk) is rescued
			// too and gives its buffer back when it completes; the lost
			// chain's buffer stays out of the pool.
			st := w.Stats()
			assert.GreaterOrEqual(t, st.Rescues, uint64(1))
			assert.Nil(t, st.Failed)
			assert.Contains(t, st.String(), fmt.Sprintf(" rescues=%d", st.Rescues))
			require.Eventually(t, func() bool { return w.Stats().Pool.InFlightCount == 1 },
				5*time.Second, 5*time.Millisecond, "the lost chain's buffer must stay out of the pool")
			time.Sleep(50 * time.Millisecond)
			assert.Equal(t, 1, w.Stats().Pool.InFlightCount, "the lost chain's buffer must stay out of the pool")

			size := func(lsn uint64) int { return 100 + 100*int(min(lsn/11, 1)) } // 100 B up to 10, then 200 B
			if late {
				// More segments behind the lost chain's: TruncateFront keeps
				// the lost chain's segment (and so every one after it) while
				// the chain is in the kernel, so its file stays open.
				batch := make([][]byte, 50)
				for w.Stats().Segments < 4 {
					next := w.LastLSN() + 1
					for i := range batch {
						batch[i] = payload(next+uint64(i), size(next+uint64(i)))
					}
					_, err := w.AppendBatch(batch)
					require.NoError(t, err)
				}
				require.NoError(t, w.TruncateFront(w.LastLSN()))
				assert.Equal(t, uint64(1), w.FirstLSN(), "the lost chain's segment must stay while the chain is pending")

				close(lr.gate)
				<-lr.done
				require.Eventually(t, func() bool { return w.Stats().Pool.InFlightCount == 0 },
					5*time.Second, 5*time.Millisecond, "the buffer goes back once the kernel completed the chain")
				require.NoError(t, w.TruncateFront(w.LastLSN()))
				assert.Greater(t, w.FirstLSN(), uint64(1), "dropped once the chain completed")
				last := w.LastLSN()
				require.NoError(t, w.TruncateBack(last-1))
				lsn, err := w.Append(payload(last, size(last)))
				require.NoError(t, err)
				require.Equal(t, last, lsn)
			} else {
				// Cutting the log back would let the pending write land on
				// new records later: refused while it is pending.
				err := w.TruncateBack(8)
				require.ErrorIs(t, err, ErrStalled)
			}
			first, last := w.FirstLSN(), w.LastLSN()
			start := time.Now()
			require.NoError(t, w.Close())
			assert.Less(t, time.Since(start), 3*time.Second, "Close waits a bounded time for the lost chain")

			// Everything acknowledged is on disk: only the rescue wrote the
			// lost chain's records when the kernel never ran it.
			w2 := openT(t, dir, smallOpts(BackendURing))
			defer w2.Close()
			recs := readAll(t, w2, first)
			require.Len(t, recs, int(last-first+1))
			for _, r := range recs {
				require.Equal(t, payload(r.LSN, size(r.LSN)), r.Data, "record %d", r.LSN)
			}
		})
	}
}

// appendWithin appends p, failing the test if Append has not returned in d.
func appendWithin(t *testing.T, w *WAL, p []byte, d time.Duration) (uint64, error) {
	t.Helper()
	type result struct {
		lsn uint64
		err error
	}
	ch := make(chan result, 1)
	go func() {
		lsn, err := w.Append(p)
		ch <- result{lsn, err}
	}()
	select {
	case r := <-ch:
		return r.lsn, r.err
	case <-time.After(d):
		t.Fatalf("Append still waiting after %v: the lost chain was not rescued", d)
		return 0, nil
	}
}

// failSyncIO fails every fdatasync with EIO.
type failSyncIO struct{ osFileIO }

func (failSyncIO) Fdatasync(int) error { return syscall.EIO }

// A rescue whose own fdatasync fails acknowledges nothing and fails the log
// (never retry a failed sync). The lost chain is the first one, so that no
// real chain slower than the rescue delay (a loaded machine) is rescued
// through the failing fdatasync before it.
func TestFailedRescueFailsTheLog(t *testing.T) {
	o := smallOpts(BackendURing)
	o.rescueAfter = 200 * time.Millisecond
	o.fileIO = failSyncIO{}
	lr := &lostRing{at: 1, gate: make(chan struct{}), done: make(chan struct{})}
	defer close(lr.gate)
	o.wrapSubmitter = func(s ring.Submitter) ring.Submitter { lr.inner = s; return lr }
	w := openT(t, t.TempDir(), o)
	_, err := appendWithin(t, w, payload(1, 100), 10*time.Second)
	require.Error(t, err)
	require.True(t, errors.Is(err, syscall.EIO), "got %v", err)
	_, err = w.Append(payload(2, 100))
	require.Error(t, err, "a failed log acknowledges nothing more")
	st := w.Stats()
	assert.Equal(t, uint64(1), st.Rescues)
	assert.Contains(t, st.String(), "failed=", "a failed log says so in its one-line stats")
	_ = w.Close()
}

// everyLostRing never hands a chain ending in fdatasync to the kernel once
// it has passed `from` of them, as if the kernel had stopped completing
// them; the chains stay "in the kernel" until gate is closed, then complete
// cancelled.
type everyLostRing struct {
	inner ring.Submitter
	from  int64
	gate  chan struct{}
	syncs atomic.Int64
}

func (r *everyLostRing) Submit(ops []ring.Op) (ring.Completion, error) {
	if ops[len(ops)-1].Kind != ring.Fdatasync || r.syncs.Add(1) < r.from {
		return r.inner.Submit(ops)
	}
	fc := &fakeCompletion{done: make(chan struct{}), res: make([]int32, len(ops))}
	go func() {
		<-r.gate
		for i := range fc.res {
			fc.res[i] = -int32(syscall.ECANCELED)
		}
		close(fc.done)
	}()
	return fc, nil
}

// TestLostChainsDoNotDrainThePool: rescued chains keep their registered
// buffers while the kernel holds them. When the kernel holds enough of them
// that no buffer is left and none can come back, appends must still go on
// (written from heap buffers), not wait for a buffer forever. (A raftlog
// race run hung that way: four chains rescued, the appender in
// AcquireWait.)
func TestLostChainsDoNotDrainThePool(t *testing.T) {
	o := smallOpts(BackendURing)
	o.BufferCount, o.MaxInFlight = 2, 2
	o.rescueAfter = 200 * time.Millisecond
	lr := &everyLostRing{from: 3, gate: make(chan struct{})}
	o.wrapSubmitter = func(s ring.Submitter) ring.Submitter { lr.inner = s; return lr }
	dir := t.TempDir()
	w := openT(t, dir, o)
	defer openGate(lr.gate)
	const n = 12
	for i := range n {
		lsn, err := appendWithin(t, w, payload(uint64(i+1), 300), 10*time.Second)
		require.NoError(t, err)
		require.Equal(t, uint64(i+1), lsn)
	}
	st := w.Stats()
	assert.GreaterOrEqual(t, st.Rescues, uint64(3), "chains rescued")
	assert.Nil(t, st.Failed)
	require.NoError(t, w.Close())

	w2 := openT(t, dir, smallOpts(BackendURing))
	defer w2.Close()
	recs := readAll(t, w2, 1)
	require.Len(t, recs, n)
	for _, r := range recs {
		require.Equal(t, payload(r.LSN, 300), r.Data)
	}
}

// openGate closes gate unless the test already did.
func openGate(gate chan struct{}) {
	select {
	case <-gate:
	default:
		close(gate)
	}
}
