package wal

import (
	"bytes"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/internal/ring"
	"github.com/ringwal/ringwal/segment"
)

// faultRing wraps a backend and damages one chain: the (n+1)-th submitted.
type faultRing struct {
	inner ring.Submitter
	n     int64
	fault string // "short", "eio-write", "eio-fsync", "ecanceled"
	// syncsOnly counts only chains that end in fdatasync (write-only
	// chains of AppendAsync records pass through uncounted).
	syncsOnly bool
	count     atomic.Int64
}

// fakeCompletion reports results decided by the test, after the real chain
// (if any) completed.
type fakeCompletion struct {
	done chan struct{}
	res  []int32
}

func (c *fakeCompletion) Done() <-chan struct{} { return c.done }
func (c *fakeCompletion) Results() []int32      { return c.res }

// afterDone returns the completion of a chain of n ops that reports real's
// results (real nil: none, all zero) once real completed and hook (nil:
// none) returned. hook gets the results, a copy padded to n, and may wait
// or change them.
func afterDone(real ring.Completion, n int, hook func(res []int32)) ring.Completion {
	fc := &fakeCompletion{done: make(chan struct{})}
	go func() {
		if real != nil {
			<-real.Done()
			fc.res = append(fc.res, real.Results()...)
		}
		fc.res = append(fc.res, make([]int32, n-len(fc.res))...)
		if hook != nil {
			hook(fc.res)
		}
		close(fc.done)
	}()
	return fc
}

func (f *faultRing) Submit(ops []ring.Op) (ring.Completion, error) {
	if f.syncsOnly && !slices.ContainsFunc(ops, func(op ring.Op) bool { return op.Kind == ring.Fdatasync }) {
		return f.inner.Submit(ops)
	}
	if f.count.Add(1)-1 != f.n {
		return f.inner.Submit(ops)
	}
	res := make([]int32, len(ops))
	switch f.fault {
	case "short":
		// Really write fewer bytes than the batch holds; like both
		// backends (and a linked io_uring chain), the short op cancels
		// the ops after it, which therefore never run.
		short := append([]ring.Op(nil), ops...)
		cut := len(short)
		for i := range short {
			if short[i].Kind.IsWrite() && len(short[i].Buf) > 8 {
				short[i].Buf = short[i].Buf[:len(short[i].Buf)-8]
				cut = i + 1
				break
			}
		}
		real, err := f.inner.Submit(short[:cut])
		if err != nil {
			return nil, err
		}
		return afterDone(real, len(ops), func(res []int32) {
			for i := cut; i < len(res); i++ {
				res[i] = -int32(syscall.ECANCELED)
			}
		}), nil
	case "eio-write":
		// The first op (a write) fails; the kernel cancels the rest.
		for i := range ops {
			res[i] = -int32(syscall.ECANCELED)
		}
		res[0] = -int32(syscall.EIO)
		c := &fakeCompletion{done: make(chan struct{}), res: res}
		close(c.done)
		return c, nil
	case "eio-fsync", "ecanceled":
		real, err := f.inner.Submit(ops)
		if err != nil {
			return nil, err
		}
		return afterDone(real, len(ops), func(res []int32) {
			for i, op := range ops {
				if op.Kind == ring.Fdatasync {
					if f.fault == "eio-fsync" {
						res[i] = -int32(syscall.EIO)
					} else {
						res[i] = -int32(syscall.ECANCELED)
					}
				}
			}
		}), nil
	}
	panic("unknown fault " + f.fault)
}

func TestFailStop(t *testing.T) {
	for _, fault := range []string{"short", "eio-write", "eio-fsync", "ecanceled"} {
		t.Run(fault, func(t *testing.T) {
			backends(t, func(t *testing.T, be Backend) {
				dir := t.TempDir()
				o := smallOpts(be)
				fr := &faultRing{n: 30, fault: fault}
				o.wrapSubmitter = func(s ring.Submitter) ring.Submitter { fr.inner = s; return fr }
				w, err := Open(dir, o)
				require.NoError(t, err)

				var mu sync.Mutex
				acked := map[uint64][]byte{}
				var firstErr error
				var wg sync.WaitGroup
				for g := range 4 {
					wg.Go(func() {
						for i := range 40 {
							p := payload(uint64(g<<16|i), 300)
							lsn, err := w.Append(p)
							mu.Lock()
							if err == nil {
								acked[lsn] = p
							} else if firstErr == nil {
								firstErr = err
							}
							mu.Unlock()
							if err != nil {
								assert.ErrorIs(t, err, ErrFailed)
								return
							}
						}
					})
				}
				wg.Wait()
				require.Error(t, firstErr, "the fault must surface")
				assert.ErrorIs(t, firstErr, ErrFailed)
				switch fault {
				case "short":
					assert.ErrorIs(t, firstErr, ring.ErrShortIO)
				case "eio-write", "eio-fsync":
					assert.ErrorIs(t, firstErr, syscall.EIO)
				case "ecanceled":
					assert.ErrorIs(t, firstErr, syscall.ECANCELED)
				}
				assert.Contains(t, firstErr.Error(), "segment 0000", "the error names the segment")
				_, err = w.Append([]byte("after failure"))
				assert.ErrorIs(t, err, ErrFailed, "fail-stop: no append after a failure")
				assert.Error(t, w.Stats().Failed)
				require.NoError(t, w.Close(), "Close still works")

				// Reopen without faults: everything acknowledged is there.
				o.wrapSubmitter = nil
				w, err = Open(dir, o)
				require.NoError(t, err)
				defer w.Close()
				for lsn, p := range acked {
					got, err := w.Read(lsn)
					require.NoError(t, err, "acknowledged lsn %d lost", lsn)
					require.Equal(t, p, got)
				}
				recs := readAll(t, w, 1)
				for i, r := range recs {
					require.Equal(t, uint64(i+1), r.LSN, "gap-free")
				}
			})
		})
	}
}

// reorderRing holds back the completion of the first chain submitted once
// it is armed until later chains completed, like the kernel may.
type reorderRing struct {
	inner ring.Submitter
	gate  chan struct{}
	armed atomic.Bool
	first atomic.Bool
	later atomic.Int64
}

func (r *reorderRing) Submit(ops []ring.Op) (ring.Completion, error) {
	c, err := r.inner.Submit(ops)
	if err != nil || !r.armed.Load() || !r.first.CompareAndSwap(false, true) {
		if err == nil {
			done := c.Done() // before the wal has c: it recycles c once completed
			go func() { <-done; r.later.Add(1) }()
		}
		return c, err
	}
	return afterDone(c, len(ops), func([]int32) { <-r.gate }), nil
}

func TestAcknowledgedInOrderWhenCompletionsReorder(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		o := smallOpts(be)
		o.MaxInFlight = 4
		rr := &reorderRing{gate: make(chan struct{})}
		o.wrapSubmitter = func(s ring.Submitter) ring.Submitter { rr.inner = s; return rr }
		w, err := Open(t.TempDir(), o)
		require.NoError(t, err)
		defer w.Close()
		defer func() { // before Close, even when the test fails early
			select {
			case <-rr.gate:
			default:
				close(rr.gate)
			}
		}()

		// A few lone appends first: each chain completes with one
		// appender waiting, so from then on a batch holding one appender
		// holds its share and joins a single chain in flight (the cohort
		// rule, pipelineLocked), the one way chains that appenders wait
		// for overlap.
		const warm = 3
		for i := range warm {
			_, err := w.Append(payload(uint64(100+i), 100))
			require.NoError(t, err)
		}
		rr.armed.Store(true)

		var returned atomic.Int64
		done := make(chan uint64, 4)
		for i := range 4 {
			go func() {
				lsn, err := w.Append(payload(uint64(i), 5000))
				assert.NoError(t, err)
				returned.Add(1)
				done <- lsn
			}()
			time.Sleep(5 * time.Millisecond) // separate chains
		}
		require.Eventually(t, func() bool { return rr.later.Load() >= 1 }, 10*time.Second, time.Millisecond,
			"later chains complete while the first is held")
		time.Sleep(50 * time.Millisecond)
		assert.Zero(t, returned.Load(), "no append may return before the chain ahead of it completed")
		assert.Equal(t, uint64(warm), w.LastLSN(), "the durable point cannot pass the held chain")
		close(rr.gate)
		for range 4 {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("appends did not complete after the held chain did")
			}
		}
		assert.Equal(t, uint64(warm+4), w.LastLSN())
		assert.GreaterOrEqual(t, w.Stats().MaxInFlight, 2, "chains overlapped")
	})
}

func TestCloseDuringAppends(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := smallOpts(be)
		w := openT(t, dir, o)
		var mu sync.Mutex
		acked := map[uint64][]byte{}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					p := payload(uint64(g<<16|i), 500)
					lsn, err := w.Append(p)
					if err != nil {
						assert.True(t, errors.Is(err, ErrClosed), "got %v", err)
						return
					}
					mu.Lock()
					acked[lsn] = p
					mu.Unlock()
				}
			})
		}
		time.Sleep(100 * time.Millisecond)
		require.NoError(t, w.Close())
		wg.Wait()
		w = openT(t, dir, o)
		defer w.Close()
		require.NotEmpty(t, acked)
		for lsn, p := range acked {
			got, err := w.Read(lsn)
			require.NoError(t, err)
			require.Equal(t, p, got)
		}
	})
}

// appendThroughSlowRing opens a log with o whose chains each complete delay
// late, and has writers goroutines each append (and wait for) each records
// of size bytes; it fails the test if they are not done in 10 s. It returns
// the open log and the ring, which recorded how many records each chain
// carried and how many overlapped another.
func appendThroughSlowRing(t *testing.T, o Options, delay time.Duration, writers, each, size int) (*WAL, *slowRing) {
	t.Helper()
	sr := &slowRing{delay: delay, slow: -1, frameSize: segment.FrameSize(size)}
	o.wrapSubmitter = func(s ring.Submitter) ring.Submitter { sr.inner = s; return sr }
	w := openT(t, t.TempDir(), o)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				_, err := w.Append(payload(uint64(g<<16|i), size))
				if !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		require.NoError(t, w.Close())
		t.Fatal("the appenders did not finish in 10 s")
	}
	return w, sr
}

// TestDurableBatchesWait: while a chain is in flight, a batch that
// appenders wait for waits for it and grows, however large its records;
// only the cohort rule (half of the waiting appenders, one chain in flight)
// lets it overlap. 32 appenders of 16 KiB records used to send a chain
// every half buffer (8 records) with up to MaxInFlight of them in flight.
// AppendAsync batches still go out from half a buffer on and use the
// depth.
func TestDurableBatchesWait(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		const writers, each, size = 32, 12, 16 << 10
		w, sr := appendThroughSlowRing(t, Options{Backend: be}, 3*time.Millisecond, writers, each, size)
		defer w.Close()
		st := w.Stats()
		sr.mu.Lock()
		recs := slices.Clone(sr.recs)
		sr.mu.Unlock()
		slices.Sort(recs)
		t.Logf("records per chain (sorted): %v; %v", recs, st)
		assert.LessOrEqual(t, st.MaxInFlight, 2, "durable batches pipeline two deep, no deeper")
		assert.GreaterOrEqual(t, recs[len(recs)/2], 12, "median records per chain")
		assert.Equal(t, uint64(writers*each), w.LastLSN())

		// Bulk: AppendAsync batches of half a buffer go out while others
		// are in flight.
		for i := range 200 {
			_, err := w.AppendAsync(payload(uint64(i), size))
			require.NoError(t, err)
		}
		require.NoError(t, w.Sync())
		assert.Greater(t, w.Stats().MaxInFlight, 2, "bulk chains use the depth")
	})
}

// TestPipelinedCohorts: appenders that each wait for their own small record
// get a second chain in flight as soon as the open batch holds half of
// them, instead of every appender waiting for two fdatasyncs in a row; and
// the batch is not split further (no chains of one or two records).
//
// This is the cohort rule alone: the completer does not gather (see
// TestCompleterGathersCohort). Gathering sends a whole cohort as one chain
// whenever a completion leaves nothing in flight, so with it most chains
// here find nothing in flight (on io_uring 12 of 80 overlapped another), and
// the rule has little left to pipeline.
func TestPipelinedCohorts(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		const writers, each, size = 16, 60, 100
		w, sr := appendThroughSlowRing(t, Options{Backend: be, noGather: true}, 3*time.Millisecond, writers, each, size)
		defer w.Close()
		sr.mu.Lock()
		defer sr.mu.Unlock()
		small := 0
		for _, n := range sr.recs {
			if n <= 2 {
				small++
			}
		}
		t.Logf("records per chain: %v", sr.recs)
		t.Logf("%d chains, %d submitted while another was in flight, %d of 2 records or fewer; %v",
			len(sr.recs), sr.overlap, small, w.Stats())
		// 55-70% of chains overlap here (0 at depth 1); a chain that finds
		// nothing in flight (see below) does not.
		assert.Greater(t, sr.overlap, len(sr.recs)/3, "chains overlap the one before")
		assert.LessOrEqual(t, w.Stats().MaxInFlight, 2, "small batches pipeline two deep, no deeper")
		// A chain of one record goes out whenever the first appender back
		// finds nothing in flight: about a fifth of the chains here, half
		// of them at depth 1 (a lone leader, then everyone else), and more
		// than half if any open batch joined the chain in flight.
		assert.Less(t, small, len(sr.recs)/3, "batches are not split into chains of a record or two")
		assert.Equal(t, uint64(writers*each), w.LastLSN())
	})
}

// TestCompleterGathersCohort: when a chain's completion leaves nothing in
// flight, the appenders it woke get their turn before the open batch goes,
// so they go as one chain. Before, the first appender back found nothing in
// flight and went with the two or three who beat it there, and everybody
// else waited for that chain and then their own.
func TestCompleterGathersCohort(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		const writers, each, size = 16, 40, 100
		w, sr := appendThroughSlowRing(t, Options{Backend: be}, 3*time.Millisecond, writers, each, size)
		defer w.Close()
		sr.mu.Lock()
		alone := slices.Clone(sr.alone)
		sr.mu.Unlock()
		slices.Sort(alone)
		t.Logf("records per chain submitted with nothing in flight (sorted): %v; %v", alone, w.Stats())
		require.NotEmpty(t, alone)
		assert.GreaterOrEqual(t, alone[len(alone)/2], writers/2,
			"median records of the chains that found nothing in flight")
		assert.Equal(t, uint64(writers*each), w.LastLSN())
	})
}

// TestGatheringEndsWhenNobodyComesBack: the appenders a completion woke may
// not come back (here: they are done). A lone append made while the log
// gathers them still becomes durable: its batch goes once half the chain's
// time (at most 10 ms) has passed, on the timer if nobody else comes to
// seal it.
func TestGatheringEndsWhenNobodyComesBack(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		// Chains 50 ms late: the gathering after the last one lasts
		// maxGatherWait (10 ms), which the lone append below comes well
		// inside of. The last appenders to finish leave gatherings that
		// nobody but the clock ends, too.
		const writers, each, size = 16, 5, 100
		w, _ := appendThroughSlowRing(t, Options{Backend: be}, 50*time.Millisecond, writers, each, size)
		defer w.Close()
		w.mu.Lock()
		gathering := w.gathering
		w.mu.Unlock()
		done := make(chan error, 1)
		go func() {
			_, err := w.Append(payload(1, size))
			done <- err
		}()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("a lone append made while gathering (gathering at the start: %v) did not return in 10 s", gathering)
		}
		t.Logf("gathering when the lone append came: %v; %v", gathering, w.Stats())
		assert.True(t, gathering, "the last chain's completion started gathering: this test checks how it ends")
		assert.Equal(t, uint64(writers*each+1), w.LastLSN())
	})
}

// feedRing counts the chains that only write (they end in the writeback
// hint) and those of them not submitted from the feeder goroutine, and
// fails the submission of write-only chains once failWrites is set.
type feedRing struct {
	inner ring.Submitter

	mu         sync.Mutex
	writeOnly  int // write-only chains submitted
	elsewhere  int // of those, submitted by another goroutine than the feeder
	failWrites bool
}

func (f *feedRing) Submit(ops []ring.Op) (ring.Completion, error) {
	if n := len(ops); n > 0 && ops[n-1].Kind == ring.SyncRange {
		stack := make([]byte, 64<<10)
		stack = stack[:runtime.Stack(stack, false)]
		f.mu.Lock()
		f.writeOnly++
		if !bytes.Contains(stack, []byte("wal.(*WAL).feeder(")) {
			f.elsewhere++
		}
		fail := f.failWrites
		f.mu.Unlock()
		if fail {
			return nil, syscall.EAGAIN
		}
	}
	return f.inner.Submit(ops)
}

// TestFeederSubmitsWriteOnlyChains: on io_uring, chains of AppendAsync
// records are checksummed and submitted by the feeder goroutine, not by an
// appender holding the log's lock, and read back whole. A write-only chain
// the feeder cannot submit fails the log: Sync reports it, later appends
// are refused, and every record made durable before stays readable.
func TestFeederSubmitsWriteOnlyChains(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(BackendURing)
	fr := &feedRing{}
	o.wrapSubmitter = func(s ring.Submitter) ring.Submitter { fr.inner = s; return fr }
	w := openT(t, dir, o)
	var want [][]byte
	for i := range 400 {
		p := bytes.Repeat([]byte{byte(i)}, 100+i%900)
		want = append(want, p)
		_, err := w.AppendAsync(p)
		require.NoError(t, err)
	}
	require.NoError(t, w.Sync())
	fr.mu.Lock()
	require.Positive(t, fr.writeOnly, "AppendAsync batches made write-only chains")
	assert.Zero(t, fr.elsewhere, "write-only chains submitted by an appender, under the log's lock")
	fr.failWrites = true
	fr.mu.Unlock()
	durable := w.LastLSN()
	require.Equal(t, uint64(len(want)), durable)

	// Enough for write-only chains while nothing waits for them.
	var err error
	for i := 0; i < 4000 && err == nil; i++ {
		_, err = w.AppendAsync(bytes.Repeat([]byte{0xee}, 500))
	}
	if err == nil {
		err = w.Sync()
	}
	require.ErrorIs(t, err, ErrFailed)
	assert.ErrorIs(t, err, syscall.EAGAIN)
	_, err = w.Append([]byte("after"))
	require.ErrorIs(t, err, ErrFailed)
	assert.Equal(t, durable, w.LastLSN(), "nothing became durable past the failure")
	require.NoError(t, w.Close())

	o.wrapSubmitter = nil
	w = openT(t, dir, o)
	defer w.Close()
	r, err := w.NewReader(1)
	require.NoError(t, err)
	defer r.Close()
	for i, p := range want {
		rec, err := r.Next()
		require.NoError(t, err, "record %d", i+1)
		require.Equal(t, p, rec.Data, "record %d", i+1)
	}
}
