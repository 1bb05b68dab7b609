package bufpool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newRing returns a real io_uring instance. io_uring is expected on every
// machine this project tests on: its absence is a failure, never a skip.
func newRing(t testing.TB) *Ring {
	t.Helper()
	r, err := NewRing(64)
	require.NoError(t, err, "io_uring must be available here (the pwrite fallback has its own tests)")
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func newPool(t testing.TB, size, count int) *Pool {
	t.Helper()
	p, err := New(newRing(t), size, count)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// fakeRegistrar records registrations; it lets misuse tests run without a
// kernel, and lets us inject a registration failure.
type fakeRegistrar struct {
	registered   int
	unregistered int
	failWith     error
}

func (f *fakeRegistrar) RegisterBuffers(bufs [][]byte) error {
	if f.failWith != nil {
		return f.failWith
	}
	f.registered = len(bufs)
	return nil
}

func (f *fakeRegistrar) UnregisterBuffers() error { f.unregistered++; return nil }

func TestCreation(t *testing.T) {
	p := newPool(t, 4096, 16)
	assert.Equal(t, 4096, p.BufferSize())
	assert.Equal(t, 16, p.TotalCount())
	assert.Equal(t, 16, p.AvailableCount())
	assert.Equal(t, 0, p.AcquiredCount())
	assert.False(t, p.IsExhausted())
}

func TestNewRejectsBadArguments(t *testing.T) {
	reg := &fakeRegistrar{}
	for _, tc := range []struct {
		name        string
		r           Registrar
		size, count int
	}{
		{"nil ring", nil, 4096, 4},
		{"zero size", reg, 0, 4},
		{"negative size", reg, -1, 4},
		{"size over kernel limit", reg, MaxBufferSize + 1, 1},
		{"zero count", reg, 4096, 0},
		{"count over uint16", reg, 4096, MaxBufferCount + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.r, tc.size, tc.count)
			require.Error(t, err)
			assert.Nil(t, p)
		})
	}
	assert.Zero(t, reg.registered, "nothing registered on refusal")
}

func TestNewReportsRegistrationFailure(t *testing.T) {
	_, err := New(&fakeRegistrar{failWith: syscall.ENOMEM}, 4096, 4)
	require.Error(t, err)
	assert.ErrorIs(t, err, syscall.ENOMEM, "callers must be able to see the memlock errno to fall back")
}

func TestAcquireReleaseFIFO(t *testing.T) {
	p := newPool(t, 4096, 4)
	i0, _, err := p.Acquire()
	require.NoError(t, err)
	i1, _, err := p.Acquire()
	require.NoError(t, err)
	assert.Equal(t, uint16(0), i0)
	assert.Equal(t, uint16(1), i1)
	assert.Equal(t, 2, p.AvailableCount())

	require.NoError(t, p.Release(i0))
	// FIFO: buffers 2 and 3 were free before 0 came back.
	for _, want := range []uint16{2, 3, 0} {
		idx, _, err := p.Acquire()
		require.NoError(t, err)
		assert.Equal(t, want, idx)
	}
}

func TestExhaustion(t *testing.T) {
	p := newPool(t, 4096, 2)
	_, _, err := p.Acquire()
	require.NoError(t, err)
	_, _, ok := p.TryAcquire()
	require.True(t, ok)
	assert.True(t, p.IsExhausted())

	_, _, err = p.Acquire()
	assert.ErrorIs(t, err, ErrPoolExhausted)
	_, _, ok = p.TryAcquire()
	assert.False(t, ok)

	s := p.Stats()
	assert.Equal(t, uint64(2), s.Acquisitions)
	assert.Equal(t, uint64(2), s.Exhaustions, "both Acquire and TryAcquire count an exhaustion")
}

func TestBufferAccessAfterRelease(t *testing.T) {
	p := newPool(t, 4096, 2)
	idx, buf, err := p.Acquire()
	require.NoError(t, err)
	copy(buf, "hello")
	require.NoError(t, p.Release(idx))
	got, err := p.Get(idx)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got[:5]), "Get works on a free buffer and sees the same memory")
	assert.Len(t, got, 4096)
	_, err = p.Get(2)
	assert.ErrorIs(t, err, ErrInvalidIndex)
}

func TestStats(t *testing.T) {
	p := newPool(t, 4096, 16)
	s := p.Stats()
	assert.Equal(t, Stats{TotalCount: 16, AvailableCount: 16, BufferSize: 4096, TotalBytes: 65536}, s)
	assert.Equal(t, "BufferPool(16 available/16 total, 4.1 kB each, 66 kB total)", s.String())
}

func TestStatsAfterAcquire(t *testing.T) {
	p := newPool(t, 4096, 16)
	for range 4 {
		_, _, err := p.Acquire()
		require.NoError(t, err)
	}
	s := p.Stats()
	assert.Equal(t, 12, s.AvailableCount)
	assert.Equal(t, 4, s.AcquiredCount)
	assert.Equal(t, uint64(4), s.Acquisitions)
	assert.Equal(t, uint64(0), s.Exhaustions)
	assert.Equal(t, "BufferPool(12 available/16 total, 4.1 kB each, 66 kB total)", s.String())
}

// Gap 1: every buffer starts on a page boundary and buffers never overlap,
// even when the size is not a multiple of the page.
func TestBuffersArePageAligned(t *testing.T) {
	page := uintptr(os.Getpagesize())
	for _, size := range []int{1, 512, 4096, 5000, 65536} {
		mk := New
		if size%2 == 0 {
			mk = NewHeap // the heap arena too
		}
		p, err := mk(&fakeRegistrar{}, size, 7)
		require.NoError(t, err)
		var prevEnd uintptr
		for i := range p.TotalCount() {
			b, err := p.Get(uint16(i))
			require.NoError(t, err)
			require.Len(t, b, size)
			require.Equal(t, size, cap(b), "a buffer's capacity must not reach into its neighbour")
			start := uintptr(unsafe.Pointer(&b[0]))
			assert.Zero(t, start%page, "size %d: buffer %d at %#x is not page-aligned", size, i, start)
			assert.GreaterOrEqual(t, start, prevEnd, "buffers overlap")
			prevEnd = start + uintptr(size)
		}
		require.NoError(t, p.Close())
	}
}

// Gap 2: misuse is refused in every build and leaves the pool untouched.
func TestRefusedReleaseLeavesPoolUnchanged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, p *Pool) uint16
		want  error
	}{
		{"invalid index", func(t *testing.T, p *Pool) uint16 { return 99 }, ErrInvalidIndex},
		{"double release", func(t *testing.T, p *Pool) uint16 {
			idx, _, err := p.Acquire()
			require.NoError(t, err)
			require.NoError(t, p.Release(idx))
			return idx
		}, ErrNotAcquired},
		{"never acquired", func(t *testing.T, p *Pool) uint16 { return 3 }, ErrNotAcquired},
		{"in flight", func(t *testing.T, p *Pool) uint16 {
			idx, _, err := p.Acquire()
			require.NoError(t, err)
			require.NoError(t, p.MarkInFlight(idx))
			return idx
		}, ErrInFlight},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(&fakeRegistrar{}, 4096, 4)
			require.NoError(t, err)
			_, _, _ = p.Acquire() // some state to preserve
			idx := tc.setup(t, p)
			before := p.Stats()
			freeBefore := append([]uint16(nil), p.freeOrder()...)

			err = p.Release(idx)
			require.ErrorIs(t, err, tc.want)

			assert.Equal(t, before, p.Stats(), "a refused release must not change the counters")
			assert.Equal(t, freeBefore, p.freeOrder(), "a refused release must not change the free list")
		})
	}
}

// freeOrder lists the free indices in the order they will be handed out.
func (p *Pool) freeOrder() []uint16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]uint16, 0, p.n)
	for i := range p.n {
		out = append(out, p.free[(p.head+i)%len(p.free)])
	}
	return out
}

func TestInFlightTracking(t *testing.T) {
	p, err := New(&fakeRegistrar{}, 4096, 2)
	require.NoError(t, err)
	idx, _, err := p.Acquire()
	require.NoError(t, err)
	assert.ErrorIs(t, p.CompleteInFlight(idx), ErrNotInFlight)
	require.NoError(t, p.MarkInFlight(idx))
	require.NoError(t, p.MarkInFlight(idx))
	assert.True(t, p.IsInFlight(idx))
	assert.Equal(t, 1, p.InFlightCount())
	require.NoError(t, p.CompleteInFlight(idx))
	assert.ErrorIs(t, p.Release(idx), ErrInFlight, "one op still pending")
	require.NoError(t, p.CompleteInFlight(idx))
	assert.False(t, p.IsInFlight(idx))
	require.NoError(t, p.Release(idx))
	assert.ErrorIs(t, p.MarkInFlight(idx), ErrNotAcquired, "a free buffer cannot go to the kernel")
	assert.ErrorIs(t, p.MarkInFlight(7), ErrInvalidIndex)
}

// Gap 3: Close refuses while buffers are out, then unregisters; later calls
// fail.
func TestCloseRefusedWhileBusy(t *testing.T) {
	reg := &fakeRegistrar{}
	p, err := New(reg, 4096, 2)
	require.NoError(t, err)
	idx, _, err := p.Acquire()
	require.NoError(t, err)
	assert.ErrorIs(t, p.Close(), ErrBusy, "acquired")

	require.NoError(t, p.MarkInFlight(idx))
	assert.ErrorIs(t, p.Close(), ErrBusy, "in flight")
	require.NoError(t, p.CompleteInFlight(idx))
	assert.ErrorIs(t, p.Close(), ErrBusy, "still acquired")
	require.NoError(t, p.Release(idx))
	assert.Zero(t, reg.unregistered)

	require.NoError(t, p.Close())
	assert.Equal(t, 1, reg.unregistered)
	assert.ErrorIs(t, p.Close(), ErrClosed)
	_, _, err = p.Acquire()
	assert.ErrorIs(t, err, ErrClosed)
	_, _, ok := p.TryAcquire()
	assert.False(t, ok)
	_, _, err = p.AcquireWait(context.Background())
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, p.Release(0), ErrClosed)
	_, err = p.Get(0)
	assert.ErrorIs(t, err, ErrClosed)
}

func TestCloseWithRealRing(t *testing.T) {
	r := newRing(t)
	p, err := New(r, 4096, 4)
	require.NoError(t, err)
	require.NoError(t, p.Close())
	// The ring's buffer table is free again: a second pool can register.
	p2, err := New(r, 8192, 2)
	require.NoError(t, err)
	require.NoError(t, p2.Close())
}

// Gap 4: AcquireWait blocks until a release, and honours cancellation.
func TestAcquireWaitWakesOnRelease(t *testing.T) {
	p := newPool(t, 4096, 1)
	idx, _, err := p.Acquire()
	require.NoError(t, err)

	got := make(chan uint16)
	go func() {
		i, _, err := p.AcquireWait(context.Background())
		assert.NoError(t, err)
		got <- i
	}()
	select {
	case <-got:
		t.Fatal("AcquireWait returned while the pool was exhausted")
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, p.Release(idx))
	select {
	case i := <-got:
		assert.Equal(t, idx, i)
	case <-time.After(10 * time.Second):
		t.Fatal("AcquireWait did not wake on release")
	}
	assert.Equal(t, uint64(1), p.Stats().Exhaustions, "a waiting acquisition counts one exhaustion")
	require.NoError(t, p.Release(idx))
}

func TestAcquireWaitCancel(t *testing.T) {
	p := newPool(t, 4096, 1)
	idx, _, err := p.Acquire()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, _, err := p.AcquireWait(ctx)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("AcquireWait ignored cancellation")
	}
	assert.Equal(t, 0, p.AvailableCount(), "a cancelled wait takes nothing")
	require.NoError(t, p.Release(idx))
	assert.Equal(t, 1, p.AvailableCount())
}

// Gap 5: many goroutines; run with -race. Each buffer must have exactly one
// holder at a time.
func TestConcurrentAcquireRelease(t *testing.T) {
	const count, workers, rounds = 8, 32, 300
	p := newPool(t, 4096, count)
	var holders [count]atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				var idx uint16
				var buf []byte
				var err error
				if i%2 == 0 {
					idx, buf, err = p.AcquireWait(context.Background())
				} else {
					var ok bool
					if idx, buf, ok = p.TryAcquire(); !ok {
						continue
					}
				}
				if !assert.NoError(t, err) {
					return
				}
				if n := holders[idx].Add(1); n != 1 {
					t.Errorf("buffer %d has %d holders", idx, n)
				}
				buf[0] = byte(w)
				buf[len(buf)-1] = byte(i)
				holders[idx].Add(-1)
				assert.NoError(t, p.Release(idx))
			}
		}()
	}
	wg.Wait()
	s := p.Stats()
	assert.Equal(t, count, s.AvailableCount)
	assert.Zero(t, s.AcquiredCount)
	assert.Positive(t, s.Acquisitions)
}

func TestWriteFixedReadFixedRoundTrip(t *testing.T) {
	for _, heap := range []bool{false, true} {
		t.Run(fmt.Sprintf("heap=%t", heap), func(t *testing.T) { roundTrip(t, heap) })
	}
}

func roundTrip(t *testing.T, heap bool) {
	r := newRing(t)
	mk := New
	if heap {
		mk = NewHeap
	}
	p, err := mk(r, 8192, 4)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })

	path := filepath.Join(t.TempDir(), "data")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	defer f.Close()

	wi, wbuf, err := p.Acquire()
	require.NoError(t, err)
	for i := range wbuf {
		wbuf[i] = byte(i * 7)
	}
	pw, err := p.SubmitWriteFixed(r, int(f.Fd()), wi, 4096, 6000)
	require.NoError(t, err)
	assert.ErrorIs(t, p.Release(wi), ErrInFlight, "no release before the completion")
	n, err := pw.Wait()
	require.NoError(t, err)
	assert.Equal(t, 6000, n)
	require.NoError(t, p.Release(wi))

	// A plain read sees the same bytes.
	plain := make([]byte, 6000)
	_, err = f.ReadAt(plain, 4096)
	require.NoError(t, err)
	assert.Equal(t, wbuf[:6000], plain)

	ri, rbuf, err := p.Acquire()
	require.NoError(t, err)
	clear(rbuf)
	pr, err := p.SubmitReadFixed(r, int(f.Fd()), ri, 4096, 6000)
	require.NoError(t, err)
	n, err = pr.Wait()
	require.NoError(t, err)
	assert.Equal(t, 6000, n)
	assert.Equal(t, plain, rbuf[:6000])
	assert.NotEqual(t, pw.ID, pr.ID, "ids identify completions")
	require.NoError(t, p.Release(ri))

	// A read past the end is short, and says so.
	ri, _, err = p.Acquire()
	require.NoError(t, err)
	pr, err = p.SubmitReadFixed(r, int(f.Fd()), ri, 8192, 4096)
	require.NoError(t, err)
	n, err = pr.Wait()
	assert.Equal(t, 4096+6000-8192, n)
	assert.Error(t, err)
	require.NoError(t, p.Release(ri))
}

func TestSubmitFixedRefusesMisuse(t *testing.T) {
	r := newRing(t)
	p, err := New(r, 4096, 2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	f, err := os.CreateTemp(t.TempDir(), "x")
	require.NoError(t, err)
	defer f.Close()
	fd := int(f.Fd())

	_, err = p.SubmitWriteFixed(r, fd, 0, 0, 100)
	assert.ErrorIs(t, err, ErrNotAcquired, "a free buffer cannot be written")
	_, err = p.SubmitWriteFixed(r, fd, 9, 0, 100)
	assert.ErrorIs(t, err, ErrInvalidIndex)
	idx, _, err := p.Acquire()
	require.NoError(t, err)
	_, err = p.SubmitWriteFixed(r, fd, idx, 0, 4097)
	assert.Error(t, err, "longer than the buffer")
	_, err = p.SubmitWriteFixed(r, fd, idx, 0, 0)
	assert.Error(t, err)
	_, err = p.SubmitWriteFixed(r, fd, idx, -1, 10)
	assert.Error(t, err)
	_, err = p.SubmitWriteFixed(nil, fd, idx, 0, 10)
	assert.Error(t, err)
	assert.False(t, p.IsInFlight(idx), "refused submissions leave nothing in flight")
	require.NoError(t, p.Release(idx))
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{ErrPoolExhausted, ErrInvalidIndex, ErrNotAcquired, ErrInFlight, ErrNotInFlight, ErrBusy, ErrClosed}
	for i, a := range all {
		for j, b := range all {
			assert.Equal(t, i == j, errors.Is(a, b))
		}
	}
}

// A NewHeap pool's buffers stay readable after Close: a slice kept past the
// pool (a caller holding lent bytes too long) reads what was last read into
// it, through garbage collections, instead of faulting as an unmapped New
// pool's would.
func TestHeapBufferOutlivesClose(t *testing.T) {
	r := newRing(t)
	p, err := NewHeap(r, 8192, 2)
	require.NoError(t, err)
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	require.NoError(t, err)
	defer f.Close()
	want := bytes.Repeat([]byte("ringwal!"), 1024)
	_, err = f.WriteAt(want, 0)
	require.NoError(t, err)

	idx, buf, err := p.Acquire()
	require.NoError(t, err)
	pr, err := p.SubmitReadFixed(r, int(f.Fd()), idx, 0, len(want))
	require.NoError(t, err)
	n, err := pr.Wait()
	require.NoError(t, err)
	require.Equal(t, len(want), n)
	kept := buf[:n]
	require.NoError(t, p.Release(idx))
	require.NoError(t, p.Close())
	_, err = p.Get(idx)
	assert.ErrorIs(t, err, ErrClosed)
	runtime.GC()
	runtime.GC()
	assert.Equal(t, want, kept)
}
