package wal

// Fault injection on the submission path, under concurrency: a wrapping
// ring (the unexported Options.wrapSubmitter hook) damages chains chosen at
// random, and delays and reorders completions. fault_test.go's faultRing
// damages one chosen chain; this one lets many goroutines, rotations and
// faults meet.

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/internal/ring"
)

// Chain faults. The failing ones make the log fail (fail-stop); delay and
// reorder must change nothing but timing.
const (
	faultShort     = "short-write"    // a write really moves fewer bytes; the rest of the chain is cancelled
	faultEIOWrite  = "eio-write"      // a write fails with EIO; what came before it in the chain ran
	faultENOSPC    = "enospc-write"   // a write fails with ENOSPC
	faultEIOSync   = "eio-fdatasync"  // the data was written, the fdatasync reports EIO
	faultCancel    = "ecanceled-sync" // the fdatasync reports ECANCELED with nothing failed before it
	faultEIODir    = "eio-dir-fsync"  // the directory fsync of a segment's first chain fails
	faultDelay     = "delay"          // the completion arrives up to 2ms late
	faultReorder   = "reorder"        // the completion is held until a later chain completed
	faultsFailures = "short-write eio-write enospc-write eio-fdatasync ecanceled-sync eio-dir-fsync"
)

// chaosRing wraps a backend and injects faults into random chains.
type chaosRing struct {
	inner ring.Submitter

	mu        sync.Mutex
	rng       *rand.Rand
	pFail     float64 // chance that a chain gets a failing fault
	pTiming   float64 // chance that a chain's completion is delayed or held
	n         int64
	firstFail int64 // submission index of the first failing fault, -1 if none
	firstKind string
	counts    map[string]int

	completed atomic.Int64 // inner chains completed
}

func newChaosRing(seed uint64, pFail, pTiming float64) *chaosRing {
	return &chaosRing{rng: rand.New(rand.NewPCG(seed, 3)), pFail: pFail, pTiming: pTiming, firstFail: -1, counts: map[string]int{}}
}

// wantCause is the error the first failing fault must surface as.
func wantCause(kind string) error {
	switch kind {
	case faultShort:
		return ring.ErrShortIO
	case faultENOSPC:
		return syscall.ENOSPC
	case faultCancel:
		return syscall.ECANCELED
	}
	return syscall.EIO
}

func (c *chaosRing) Submit(ops []ring.Op) (ring.Completion, error) {
	c.mu.Lock()
	idx := c.n
	c.n++
	kind := ""
	var writes, syncs []int
	dirSync := -1
	for i, op := range ops {
		switch {
		case op.Kind.IsWrite():
			writes = append(writes, i)
		case op.Kind == ring.Fdatasync:
			syncs = append(syncs, i)
		case op.Kind == ring.Fsync:
			dirSync = i
		}
	}
	// A segment's first chain (header, data, fdatasync, directory fsync) is
	// rare and interesting: it fails eight times as often.
	pFail := c.pFail
	if dirSync >= 0 {
		pFail = min(1, 8*pFail)
	}
	switch r := c.rng.Float64(); {
	case r < pFail:
		kinds := strings.Fields(faultsFailures)
		kind = kinds[c.rng.IntN(len(kinds))]
		switch {
		case kind == faultEIODir && dirSync < 0:
			kind = faultEIOSync
		case dirSync >= 0 && c.rng.IntN(3) == 0:
			kind = faultEIODir
		}
	case r < pFail+c.pTiming:
		kind = faultDelay
		if c.rng.IntN(2) == 0 {
			kind = faultReorder
		}
	}
	switch {
	case len(writes) == 0 && (kind == faultShort || kind == faultEIOWrite || kind == faultENOSPC),
		len(syncs) == 0 && (kind == faultEIOSync || kind == faultCancel):
		kind = "" // not applicable to this chain
	}
	if kind != "" {
		c.counts[kind]++
	}
	if kind != "" && kind != faultDelay && kind != faultReorder && c.firstFail < 0 {
		c.firstFail, c.firstKind = idx, kind
	}
	wi := -1
	if len(writes) > 0 {
		wi = writes[c.rng.IntN(len(writes))]
	}
	cut := 0
	if wi >= 0 {
		cut = c.rng.IntN(len(ops[wi].Buf))
	}
	hold := time.Duration(c.rng.IntN(2000)) * time.Microsecond
	c.mu.Unlock()

	// The inner completion is never handed to the wal: it would recycle it
	// (pwrite jobs are pooled) while this wrapper still watches it.
	submit := func(ops []ring.Op) (ring.Completion, error) {
		comp, err := c.inner.Submit(ops)
		if err == nil {
			done := comp.Done()
			go func() { <-done; c.completed.Add(1) }()
		}
		return comp, err
	}
	// The faults below report results decided here (afterDone), once the
	// real chain (if any) is done with the buffers.
	cancelFrom := func(res []int32, i int) {
		for j := i; j < len(res); j++ {
			res[j] = -int32(syscall.ECANCELED)
		}
	}

	switch kind {
	case faultShort:
		if wi < 0 {
			break
		}
		// Like the kernel: the write moves cut bytes, and the ops linked
		// after it are cancelled.
		short := append([]ring.Op(nil), ops[:wi+1]...)
		short[wi].Buf = short[wi].Buf[:cut]
		real, err := submit(short)
		if err != nil {
			return nil, err
		}
		return afterDone(real, len(ops), func(res []int32) { cancelFrom(res, wi+1) }), nil
	case faultEIOWrite, faultENOSPC:
		if wi < 0 {
			break
		}
		var real ring.Completion
		if wi > 0 {
			var err error
			if real, err = submit(ops[:wi]); err != nil {
				return nil, err
			}
		}
		errno := syscall.EIO
		if kind == faultENOSPC {
			errno = syscall.ENOSPC
		}
		return afterDone(real, len(ops), func(res []int32) {
			cancelFrom(res, wi)
			res[wi] = -int32(errno)
		}), nil
	case faultEIOSync, faultCancel, faultEIODir:
		at := dirSync
		if kind != faultEIODir {
			if len(syncs) == 0 {
				break
			}
			at = syncs[0]
		}
		real, err := submit(ops)
		if err != nil {
			return nil, err
		}
		errno := syscall.EIO
		if kind == faultCancel {
			errno = syscall.ECANCELED
		}
		return afterDone(real, len(ops), func(res []int32) {
			cancelFrom(res, at)
			res[at] = -int32(errno)
		}), nil
	case faultDelay, faultReorder:
		mark := c.completed.Load()
		real, err := submit(ops)
		if err != nil {
			return nil, err
		}
		return afterDone(real, len(ops), func([]int32) {
			if kind == faultDelay {
				time.Sleep(hold)
				return
			}
			// Held until a chain submitted after this one completed
			// (or 20ms passed: nothing else may be in flight).
			deadline := time.Now().Add(20 * time.Millisecond)
			for c.completed.Load() < mark+2 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Microsecond)
			}
		}), nil
	}
	real, err := submit(ops)
	if err != nil {
		return nil, err
	}
	return afterDone(real, len(ops), nil), nil
}

// TestChaosRing runs rounds of 8 concurrent appenders (single records,
// atomic batches, records larger than a buffer; 64 KiB segments, so
// rotation is frequent) through a chaosRing, on both backends. Each round
// injects failures into random chains with a random probability (none in
// one round of four: only delays and reorders), and checks:
//   - fail-stop: once a chain failed, every append returns an error
//     wrapping ErrFailed and the first fault's cause (EIO, ENOSPC,
//     ECANCELED or ring.ErrShortIO), naming the segment; later appends are
//     refused; Stats reports the failure; Close works;
//   - nothing acknowledged is lost: reopening (without faults) finds every
//     acknowledged record byte-identical, gap-free, nothing that was not
//     appended, and the reopened log takes appends;
//   - delays and reorders alone fail nothing.
//
// Knobs: RINGWAL_SEED, RINGWAL_FAULT_ROUNDS (rounds per backend, default 20).
func TestChaosRing(t *testing.T) {
	seed := testSeed(t)
	rounds := envInt(t, envFaultRound, 20)
	backends(t, func(t *testing.T, be Backend) {
		rng := testRand(t, seed)
		dir := t.TempDir()
		m := newLogModel()
		counts := map[string]int{}
		failedRounds, cleanRounds, acked, chains := 0, 0, 0, int64(0)
		for round := range rounds {
			pFail := 0.0
			if round%4 != 3 {
				pFail = 0.002 + rng.Float64()*0.03
			}
			cr := newChaosRing(rng.Uint64(), pFail, 0.15)
			o := crashOpts(be)
			o.wrapSubmitter = func(s ring.Submitter) ring.Submitter { cr.inner = s; return cr }
			w, err := Open(dir, o)
			require.NoError(t, err)
			require.Equal(t, be, w.Backend())

			var mu sync.Mutex
			var errs []error
			var wg sync.WaitGroup
			for g := range 8 {
				grng := rand.New(rand.NewPCG(rng.Uint64(), uint64(g)))
				writer := uint32(round+1)*16 + uint32(g)
				wg.Go(func() {
					var seq uint64
					for seq < 120 {
						recs := unitShape{maxBatch: 3, body: 1500, bigEvery: 25, bigMin: 9 << 10, bigSpan: 5 << 10}.next(grng, writer, seq)
						n := len(recs)
						lsn, err := appendUnit(w, recs)
						mu.Lock()
						if err != nil {
							errs = append(errs, err)
							mu.Unlock()
							return
						}
						for i, p := range recs {
							m.ack(lsn+uint64(i), ackRec{writer: writer, seq: seq + uint64(i), sum: crcOf(p)})
							acked++
						}
						mu.Unlock()
						seq += uint64(n)
					}
				})
			}
			wg.Wait()

			cr.mu.Lock()
			firstKind, firstFail := cr.firstKind, cr.firstFail
			for k, v := range cr.counts {
				counts[k] += v
			}
			chains += cr.n
			cr.mu.Unlock()
			if firstFail < 0 {
				require.Empty(t, errs, "round %d: no failure was injected (only delays and reorders), yet appends failed", round)
				require.NoError(t, w.Stats().Failed)
				cleanRounds++
			} else {
				require.NotEmpty(t, errs, "round %d: %s injected into chain %d went unnoticed", round, firstKind, firstFail)
				cause := wantCause(firstKind)
				for _, err := range errs {
					require.ErrorIs(t, err, ErrFailed, "round %d", round)
					require.ErrorIs(t, err, cause, "round %d: first fault %s in chain %d", round, firstKind, firstFail)
					require.Contains(t, err.Error(), "segment 0", "the error names the segment")
				}
				_, err := w.Append(tpMake(1, 0, 1, 0, 50))
				require.ErrorIs(t, err, ErrFailed, "fail-stop: no append after a failure")
				require.ErrorIs(t, w.Stats().Failed, cause)
				failedRounds++
			}
			require.NoError(t, w.Close(), "round %d: Close after %s", round, firstKind)

			recs, first, last, bad := checkLog(dir, crashOpts(be), m)
			if len(bad) > 0 {
				t.Fatalf("round %d (first fault %s in chain %d), log [%d, %d]:\n  %s\nreproduce with %s=%d %s=%d",
					round, firstKind, firstFail, first, last, strings.Join(bad, "\n  "), envSeed, seed, envFaultRound, rounds)
			}
			m.recovered(recs)
		}
		// The reopened log takes appends.
		w := openT(t, dir, crashOpts(be))
		lsn, err := w.Append([]byte("after the chaos"))
		require.NoError(t, err)
		require.Equal(t, w.LastLSN(), lsn)
		require.NoError(t, w.Close())

		require.Positive(t, failedRounds, "no round failed: the faults were never injected")
		require.Positive(t, cleanRounds)
		var parts []string
		total := 0
		for _, k := range append(strings.Fields(faultsFailures), faultDelay, faultReorder) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
			total += counts[k]
		}
		t.Logf("FIGURES fault-injection backend=%s rounds=%d (failed %d, clean %d) chains=%d faults-injected=%d [%s] acked=%d lost=0",
			be, rounds, failedRounds, cleanRounds, chains, total, strings.Join(parts, " "), acked)
	})
}
