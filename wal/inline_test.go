package wal

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInlineChains: on the pwrite backend a lone appender's chains run on
// its own goroutine (Stats.Inline), every record is durable when Append
// returns and reads back, and with the inline path off (noInline) none
// does. A segment's first batch, which writes the header, never runs inline.
func TestInlineChains(t *testing.T) {
	for _, off := range []bool{false, true} {
		o := smallOpts(BackendPwrite)
		o.noInline = off
		dir := t.TempDir()
		w := openT(t, dir, o)
		const n = 300 // several 64 KiB segments
		for i := uint64(1); i <= n; i++ {
			lsn, err := w.Append(payload(i, 700))
			require.NoError(t, err)
			require.Equal(t, i, lsn)
			require.GreaterOrEqual(t, w.durable.Load(), i, "durable when Append returns")
		}
		st := w.Stats()
		if off {
			assert.Zero(t, st.Inline)
			assert.NotContains(t, st.String(), "inline=")
		} else {
			assert.GreaterOrEqual(t, st.Rotations, uint64(2))
			// Every chain but the segments' first ones (header writes).
			assert.GreaterOrEqual(t, st.Inline, uint64(n)-st.Rotations-1)
			assert.Less(t, st.Inline, uint64(n))
			assert.Contains(t, st.String(), "inline=")
		}
		require.NoError(t, w.Close())
		w = openT(t, dir, o)
		recs := readAll(t, w, 1)
		require.Len(t, recs, n)
		for _, r := range recs {
			require.Equal(t, payload(r.LSN, 700), r.Data)
		}
		require.NoError(t, w.Close())
	}
}

// holdIO holds every fdatasync while gate is set, counts pwrites, and fails
// fdatasync with failSync once set.
type holdIO struct {
	osFileIO
	mu       sync.Mutex
	gate     chan struct{} // non-nil: fdatasync waits for it to close
	held     chan struct{} // closed when an fdatasync waits at the gate
	pwrites  atomic.Int64
	failSync atomic.Bool
}

func (g *holdIO) Pwrite(fd int, p []byte, off int64) (int, error) {
	g.pwrites.Add(1)
	return g.osFileIO.Pwrite(fd, p, off)
}

func (g *holdIO) Fdatasync(fd int) error {
	g.mu.Lock()
	gate, held := g.gate, g.held
	g.gate, g.held = nil, nil
	g.mu.Unlock()
	if gate != nil {
		close(held)
		<-gate
	}
	if g.failSync.Load() {
		return syscall.EIO
	}
	return g.osFileIO.Fdatasync(fd)
}

// TestInlineChainHoldsOthers: while a lone appender runs its chain, nothing
// else is submitted (no pwrite beside it); appenders, AppendAsync and Sync
// that come meanwhile go in the next chain once it completes, and all of
// them are durable after.
func TestInlineChainHoldsOthers(t *testing.T) {
	g := &holdIO{}
	o := smallOpts(BackendPwrite)
	o.fileIO = g
	w := openT(t, t.TempDir(), o)
	defer w.Close()
	_, err := w.Append(payload(1, 100)) // the segment's header chain
	require.NoError(t, err)

	gate, held := make(chan struct{}), make(chan struct{})
	var open sync.Once
	defer open.Do(func() { close(gate) }) // before Close, should the test fail
	g.mu.Lock()
	g.gate, g.held = gate, held
	g.mu.Unlock()
	before := w.Stats().Inline
	first := make(chan error, 1)
	go func() { _, err := w.Append(payload(2, 100)); first <- err }()
	<-held // the lone appender's fdatasync waits at the gate
	pw := g.pwrites.Load()
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			_, err := w.Append(payload(uint64(10+i), 100))
			assert.NoError(t, err)
		})
	}
	_, err = w.AppendAsync(payload(20, 100))
	require.NoError(t, err)
	wg.Go(func() { assert.NoError(t, w.Sync()) })
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.waiting == 4 // the held appender and the three after it
	}, 10*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // the Sync too, most likely
	assert.Equal(t, pw, g.pwrites.Load(), "nothing written beside the inline chain")
	assert.Equal(t, uint64(1), w.durable.Load(), "nothing durable past the first record yet")
	open.Do(func() { close(gate) })
	require.NoError(t, <-first)
	wg.Wait()
	assert.Equal(t, before+1, w.Stats().Inline, "the three went in one chain, not inline")
	assert.Equal(t, w.LastLSN(), w.durable.Load())
	assert.Len(t, readAll(t, w, 1), int(w.LastLSN()))
}

// TestInlineChainFailure: an fdatasync that fails in a chain its appender
// runs fails that Append and the log (never retried), acknowledges nothing
// after it, and a reopened log holds every record acknowledged before.
func TestInlineChainFailure(t *testing.T) {
	g := &holdIO{}
	o := smallOpts(BackendPwrite)
	o.fileIO = g
	dir := t.TempDir()
	w := openT(t, dir, o)
	for i := uint64(1); i <= 20; i++ {
		_, err := w.Append(payload(i, 300))
		require.NoError(t, err)
	}
	require.Greater(t, w.Stats().Inline, uint64(10))
	g.failSync.Store(true)
	_, err := w.Append(payload(21, 300))
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.EIO), "%v", err)
	_, err = w.Append(payload(22, 300))
	require.Error(t, err, "the log failed")
	assert.Equal(t, uint64(20), w.durable.Load())
	_ = w.Close()
	g.failSync.Store(false)
	w = openT(t, dir, smallOpts(BackendPwrite))
	defer w.Close()
	recs := readAll(t, w, 1)
	require.GreaterOrEqual(t, len(recs), 20, "every acknowledged record")
	for _, r := range recs[:20] {
		require.Equal(t, payload(r.LSN, 300), r.Data)
	}
}
