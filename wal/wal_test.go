package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
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

// backends runs f once per backend. The io_uring run requires io_uring: if it
// is missing here, Open fails and so does the test.
func backends(t *testing.T, f func(t *testing.T, b Backend)) {
	for _, b := range []Backend{BackendURing, BackendPwrite} {
		t.Run(string(b), func(t *testing.T) { f(t, b) })
	}
}

// smallOpts makes rotation frequent: 64 KiB segments, 8 KiB buffers.
func smallOpts(b Backend) Options {
	return Options{SegmentSize: 64 << 10, BufferSize: 8 << 10, BufferCount: 8, MaxRecordSize: 16 << 10, Backend: b}
}

func openT(t *testing.T, dir string, o Options) *WAL {
	t.Helper()
	w, err := Open(dir, o)
	require.NoError(t, err)
	require.Equal(t, o.Backend, w.Backend())
	return w
}

// payload makes a self-validating record: lsn hint, length, crc.
func payload(id uint64, size int) []byte {
	if size < 16 {
		size = 16
	}
	p := make([]byte, size)
	binary.LittleEndian.PutUint64(p, id)
	for i := 16; i < size; i++ {
		p[i] = byte(id*31 + uint64(i))
	}
	binary.LittleEndian.PutUint32(p[8:], uint32(size))
	binary.LittleEndian.PutUint32(p[12:], crc32.ChecksumIEEE(p[16:]))
	return p
}

// requireRecords reads the whole log and checks that it holds want, in
// order, from LSN 1.
func requireRecords(t *testing.T, w *WAL, want [][]byte) {
	t.Helper()
	recs := readAll(t, w, 1)
	require.Len(t, recs, len(want))
	for i, r := range recs {
		assert.Equal(t, want[i], r.Data, "lsn %d", r.LSN)
	}
}

// readAll returns every record from lsn on.
func readAll(t *testing.T, w *WAL, from uint64) []Record {
	t.Helper()
	r, err := w.NewReader(from)
	require.NoError(t, err)
	defer r.Close()
	return readRest(t, r)
}

// readRest returns the records r has left (Data copied).
func readRest(t *testing.T, r *Reader) []Record {
	t.Helper()
	var out []Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		rec.Data = bytes.Clone(rec.Data)
		out = append(out, rec)
	}
}

func TestAppendReadReopen(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		w := openT(t, dir, smallOpts(be))
		assert.Equal(t, uint64(1), w.FirstLSN())
		assert.Equal(t, uint64(0), w.LastLSN())

		const writers, each = 16, 50
		var mu sync.Mutex
		got := map[uint64][]byte{}
		var wg sync.WaitGroup
		for g := range writers {
			wg.Go(func() {
				for i := range each {
					p := payload(uint64(g*1000+i), 10+(g*7+i*13)%3000)
					lsn, err := w.Append(p)
					if !assert.NoError(t, err) {
						return
					}
					assert.GreaterOrEqual(t, w.LastLSN(), lsn, "acknowledged before durable")
					mu.Lock()
					_, dup := got[lsn]
					assert.False(t, dup, "lsn %d handed out twice", lsn)
					got[lsn] = p
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.Len(t, got, writers*each)
		assert.Equal(t, uint64(writers*each), w.LastLSN())
		check := func(w *WAL) {
			for lsn, p := range got {
				data, err := w.Read(lsn)
				require.NoError(t, err)
				require.Equal(t, p, data, "lsn %d", lsn)
			}
			recs := readAll(t, w, 1)
			require.Len(t, recs, len(got))
			for i, r := range recs {
				require.Equal(t, uint64(i+1), r.LSN)
				require.Equal(t, got[r.LSN], r.Data)
			}
		}
		check(w)
		st := w.Stats()
		assert.Equal(t, be, st.Backend)
		assert.Equal(t, uint64(writers*each), st.Records)
		assert.Positive(t, st.Rotations, "64 KiB segments must rotate")
		assert.GreaterOrEqual(t, st.AvgBatch, 1.0)
		require.NoError(t, w.Close())
		assert.ErrorIs(t, w.Close(), ErrClosed)

		w = openT(t, dir, smallOpts(be))
		defer w.Close()
		assert.Equal(t, uint64(writers*each), w.LastLSN())
		check(w)
		lsn, err := w.Append([]byte("after reopen"))
		require.NoError(t, err)
		assert.Equal(t, uint64(writers*each+1), lsn)
	})
}

func TestRotationUnder64Appenders(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		w := openT(t, dir, smallOpts(be))
		const writers, each = 64, 40
		var wg sync.WaitGroup
		var mu sync.Mutex
		acked := map[uint64][]byte{}
		for g := range writers {
			wg.Go(func() {
				for i := range each {
					p := payload(uint64(g<<16|i), 200+(g*31+i)%900)
					lsn, err := w.Append(p)
					if !assert.NoError(t, err) {
						return
					}
					mu.Lock()
					acked[lsn] = p
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		st := w.Stats()
		t.Logf("stats: %v rotations=%d", st, st.Rotations)
		assert.Greater(t, st.Rotations, uint64(5))
		require.NoError(t, w.Close())

		w = openT(t, dir, smallOpts(be))
		defer w.Close()
		recs := readAll(t, w, w.FirstLSN())
		require.Len(t, recs, writers*each)
		for _, r := range recs {
			require.Equal(t, acked[r.LSN], r.Data)
		}
		assert.Equal(t, w.Stats().Segments, len(segPaths(t, dir)))
	})
}

func TestAppendBatchAndLargeRecords(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := smallOpts(be)
		w := openT(t, dir, o)
		var want [][]byte
		add := func(ps ...[]byte) {
			first, err := w.AppendBatch(ps)
			require.NoError(t, err)
			require.Equal(t, uint64(len(want)+1), first)
			want = append(want, ps...)
		}
		add([]byte("a"), []byte("b"), []byte("c"))
		add(payload(1, 12<<10))                          // larger than a buffer: heap batch
		add(payload(2, 5000), payload(3, 5000))          // spans two buffers
		add(payload(4, 3000), []byte{}, payload(5, 100)) // empty record inside
		_, err := w.AppendBatch(nil)
		assert.ErrorIs(t, err, ErrEmptyBatch)
		_, err = w.Append(make([]byte, o.MaxRecordSize+1))
		assert.ErrorIs(t, err, ErrRecordTooLarge)
		big := make([][]byte, 8)
		for i := range big {
			big[i] = make([]byte, 10<<10)
		}
		_, err = w.AppendBatch(big)
		assert.ErrorIs(t, err, ErrBatchTooLarge)
		require.NoError(t, w.Close())

		w = openT(t, dir, o)
		defer w.Close()
		requireRecords(t, w, want)
	})
}

func TestReplayUsesReadFixed(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		w := openT(t, dir, Options{Backend: be, SegmentSize: 4 << 20, MaxRecordSize: 1 << 20})
		want := map[uint64][]byte{}
		for i := range 3000 {
			p := payload(uint64(i), 100+i%2000)
			lsn, err := w.Append(p)
			require.NoError(t, err)
			want[lsn] = p
		}
		require.NoError(t, w.Close())
		w = openT(t, dir, Options{Backend: be, SegmentSize: 4 << 20, MaxRecordSize: 1 << 20})
		defer w.Close()
		afterRecovery := w.Stats().ReadFixedOps
		recs := readAll(t, w, w.FirstLSN())
		require.Len(t, recs, len(want))
		for _, r := range recs {
			require.Equal(t, want[r.LSN], r.Data)
		}
		// Start in the middle too.
		mid := readAll(t, w, 1234)
		require.Len(t, mid, len(want)-1233)
		require.Equal(t, want[1234], mid[0].Data)
		st := w.Stats()
		if be == BackendURing {
			assert.Positive(t, afterRecovery, "recovery scans with READ_FIXED")
			assert.Greater(t, st.ReadFixedOps, afterRecovery, "replay reads with READ_FIXED")
			assert.Greater(t, st.ReadFixedBytes, uint64(3<<20))
		} else {
			assert.Zero(t, st.ReadFixedOps)
		}
	})
}

func TestErrLocked(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, smallOpts(BackendPwrite))
	_, err := Open(dir, smallOpts(BackendPwrite))
	assert.ErrorIs(t, err, ErrLocked)
	require.NoError(t, w.Close())
	w = openT(t, dir, smallOpts(BackendPwrite))
	require.NoError(t, w.Close())
}

func TestBackendAutoUsesURing(t *testing.T) {
	w, err := Open(t.TempDir(), Options{})
	require.NoError(t, err)
	defer w.Close()
	assert.Equal(t, BackendURing, w.Backend(), "io_uring is expected on this machine")
}

func TestTruncateFrontAndBack(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := smallOpts(be)
		w := openT(t, dir, o)
		for i := range 600 {
			_, err := w.Append(payload(uint64(i+1), 500))
			require.NoError(t, err)
		}
		segsBefore := w.Stats().Segments
		require.Greater(t, segsBefore, 3)

		require.NoError(t, w.TruncateFront(300))
		first := w.FirstLSN()
		assert.LessOrEqual(t, first, uint64(300))
		assert.Greater(t, first, uint64(1))
		assert.Less(t, w.Stats().Segments, segsBefore)
		_, err := w.Read(first - 1)
		assert.ErrorIs(t, err, ErrNotFound)

		require.NoError(t, w.TruncateBack(450))
		assert.Equal(t, uint64(450), w.LastLSN())
		_, err = w.Read(451)
		assert.ErrorIs(t, err, ErrNotFound)
		lsn, err := w.Append([]byte("replacement 451"))
		require.NoError(t, err)
		assert.Equal(t, uint64(451), lsn)
		assert.ErrorIs(t, w.TruncateBack(first-2), ErrOutOfRange)
		assert.ErrorIs(t, w.TruncateFront(1000), ErrOutOfRange)
		require.NoError(t, w.Close())

		w = openT(t, dir, o)
		defer w.Close()
		assert.Equal(t, first, w.FirstLSN())
		assert.Equal(t, uint64(451), w.LastLSN())
		data, err := w.Read(451)
		require.NoError(t, err)
		assert.Equal(t, "replacement 451", string(data))
		recs := readAll(t, w, first)
		require.Len(t, recs, int(451-first+1))
		for _, r := range recs[:len(recs)-1] {
			assert.Equal(t, payload(r.LSN, 500), r.Data)
		}

		// Truncate back to empty, then reuse the LSNs.
		require.NoError(t, w.TruncateBack(first-1))
		assert.Equal(t, first-1, w.LastLSN())
		lsn, err = w.Append([]byte("again"))
		require.NoError(t, err)
		assert.Equal(t, first, lsn)
	})
}

// TruncateBack into the middle of an atomic batch keeps the records before
// the cut: they are no longer an incomplete batch.
func TestTruncateBackInsideBatch(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := smallOpts(be)
		w := openT(t, dir, o)
		for i := range 10 {
			_, err := w.Append(payload(uint64(i+1), 100))
			require.NoError(t, err)
		}
		batch := make([][]byte, 10)
		for i := range batch {
			batch[i] = payload(uint64(11+i), 100)
		}
		first, err := w.AppendBatch(batch)
		require.NoError(t, err)
		require.Equal(t, uint64(11), first)
		require.NoError(t, w.TruncateBack(18))
		require.Equal(t, uint64(18), w.LastLSN())
		require.NoError(t, w.Close())

		w = openT(t, dir, o)
		assert.Equal(t, uint64(18), w.LastLSN(), "the kept part of the batch survives reopen")
		// And a later torn batch cuts back to 18, not to 10.
		start := w.tail
		_, err = w.AppendBatch([][]byte{payload(19, 100), payload(20, 100)})
		require.NoError(t, err)
		require.NoError(t, w.Close())
		patchFile(t, lastSegment(t, dir), start+int64(segment.FrameSize(100))+10, make([]byte, 20))
		w = openT(t, dir, o)
		defer w.Close()
		assert.Equal(t, uint64(18), w.LastLSN())
		recs := readAll(t, w, 1)
		require.Len(t, recs, 18)
		for _, r := range recs {
			assert.Equal(t, payload(r.LSN, 100), r.Data)
		}
	})
}

// lastSegment returns the path of the newest segment.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	names := segPaths(t, dir)
	require.NotEmpty(t, names)
	return names[len(names)-1]
}

// patchFile overwrites the bytes at off of the file at path with b: the
// corrupt step of the recovery tests.
func patchFile(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// fillLog appends records 1..n of size bytes (payload(lsn, size)) to a new
// log in dir, closes it and returns its segment paths, oldest first.
func fillLog(t *testing.T, dir string, o Options, n, size int) []string {
	t.Helper()
	w := openT(t, dir, o)
	for i := range n {
		_, err := w.Append(payload(uint64(i+1), size))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return segPaths(t, dir)
}

// Torn tail cut at every byte of the last batch: whatever survives, the log
// opens, holds a prefix of what was written with no gap, and accepts appends.
func TestTornTailEveryByte(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		base := t.TempDir()
		o := smallOpts(be)
		w := openT(t, base, o)
		for i := range 20 {
			_, err := w.Append(payload(uint64(i+1), 100))
			require.NoError(t, err)
		}
		start := w.tail
		_, err := w.AppendBatch([][]byte{payload(21, 150), payload(22, 90), payload(23, 60)})
		require.NoError(t, err)
		end := w.tail
		require.NoError(t, w.Close())
		orig, err := os.ReadFile(lastSegment(t, base))
		require.NoError(t, err)
		name := filepath.Base(lastSegment(t, base))
		// The batch's frames; after them, up to end, its padding if it
		// has any (a durable batch, padded if the padding is small enough).
		frames := start + int64(segment.FrameSize(150)+segment.FrameSize(90)+segment.FrameSize(60))
		require.True(t, end == frames || end == segment.PadToPage(frames), "end %d, frames end %d", end, frames)

		cuts := []int64{}
		for cut := start; cut < frames; cut++ {
			cuts = append(cuts, cut)
		}
		if end > frames {
			// Cut in the padding: nothing of the batch is lost.
			cuts = append(cuts, frames, (frames+end)/2, end-1)
		}
		for _, cut := range cuts {
			want := uint64(20)
			if cut >= frames {
				want = 23
			}
			dir := t.TempDir()
			torn := bytes.Clone(orig)
			clear(torn[cut:end])
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), torn, 0o644))
			w, err := Open(dir, o)
			require.NoError(t, err, "cut at %d", cut)
			assert.Equal(t, want, w.LastLSN(), "cut at %d: the atomic batch is all or nothing", cut)
			recs := readAll(t, w, w.FirstLSN())
			require.Equal(t, int(want-w.FirstLSN()+1), len(recs))
			lsn, err := w.Append([]byte("new"))
			require.NoError(t, err)
			require.Equal(t, want+1, lsn)
			require.NoError(t, w.Close())
			w, err = Open(dir, o)
			require.NoError(t, err)
			assert.Equal(t, want+1, w.LastLSN())
			require.NoError(t, w.Close())
		}
	})
}

// Crash, recovery with a shorter rewrite, crash again: records of the first
// incarnation never come back.
func TestStaleBytesNeverReappear(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := smallOpts(be)
		o.NoPadding = true // the image below lays a pipelined writer's frames, packed
		w := openT(t, dir, o)
		for i := range 10 {
			_, err := w.Append(payload(uint64(i+1), 100))
			require.NoError(t, err)
		}
		cutAt := w.tail
		for i := 10; i < 20; i++ {
			_, err := w.Append(payload(uint64(i+1), 100))
			require.NoError(t, err)
		}
		oldEnd := w.tail
		require.NoError(t, w.Close())
		// Crash 1 of a pipelined writer: records 11..20 were in flight
		// (written while 10 was the durable watermark) and 11 is torn.
		path := lastSegment(t, dir)
		img, err := os.ReadFile(path)
		require.NoError(t, err)
		h, err := segment.ParseHeader(img[:segment.HeaderSize])
		require.NoError(t, err)
		frames := img[:cutAt]
		for i := uint64(11); i <= 20; i++ {
			frames = segment.AppendFrame(frames, h.Salt, segment.FrameHeader{LSN: i, Lag: uint32(i - 10)}, payload(i, 100))
		}
		require.Equal(t, oldEnd, int64(len(frames)))
		copy(img, frames)
		img[cutAt+40] ^= 0xff
		require.NoError(t, os.WriteFile(path, img, 0o644))

		w = openT(t, dir, o)
		require.Equal(t, uint64(10), w.LastLSN())
		// A shorter rewrite: 3 small records where 10 larger ones were.
		for i := range 3 {
			_, err := w.Append([]byte(fmt.Sprintf("second incarnation %d", i)))
			require.NoError(t, err)
		}
		newEnd := w.tail
		require.NoError(t, w.Close()) // crash 2 (everything was synced)

		check := func() {
			w := openT(t, dir, o)
			defer w.Close()
			assert.Equal(t, uint64(13), w.LastLSN(), "records 14..20 of the first incarnation must not reappear")
			recs := readAll(t, w, 1)
			require.Len(t, recs, 13)
			assert.Equal(t, "second incarnation 2", string(recs[12].Data))
		}
		check() // the cut region was zeroed: nothing to find
		// Second guard: even if the zeroing had been lost, the old frames
		// carry an older epoch and are not taken as part of the log.
		patchFile(t, path, newEnd, img[newEnd:oldEnd])
		check()
	})
}

func TestCorruptionIsReported(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(BackendPwrite)
	o.NoPadding = true // the damage's offset is counted in packed frames
	names := fillLog(t, dir, o, 300, 400)
	require.Greater(t, len(names), 2)
	// Flip a bit in the middle of the first segment.
	off := int64(segment.DataOffset + 10*segment.FrameSize(400) + 30)
	img, err := os.ReadFile(names[0])
	require.NoError(t, err)
	b := []byte{img[off] ^ 0x10}
	patchFile(t, names[0], off, b)
	damagedAt := int64(segment.DataOffset + 10*segment.FrameSize(400))

	// By default Open reads only the last segment; the damage in a sealed
	// one is reported, with segment and offset, by whatever reads it.
	w := openT(t, dir, o)
	r, err := w.NewReader(1)
	require.NoError(t, err)
	for lsn := uint64(1); lsn <= 10; lsn++ {
		rec, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, lsn, rec.LSN)
	}
	_, err = r.Next()
	var ce *segment.CorruptionError
	require.ErrorAs(t, err, &ce, "the reader stops at the damage")
	assert.Equal(t, filepath.Base(names[0]), ce.Segment)
	assert.Equal(t, damagedAt, ce.Offset)
	require.NoError(t, r.Close())
	_, err = w.Read(11)
	require.ErrorAs(t, err, &ce, "Read verifies the sealed segment before using it")
	assert.ErrorIs(t, err, segment.ErrCorrupt)
	assert.Equal(t, filepath.Base(names[0]), ce.Segment)
	assert.Equal(t, damagedAt, ce.Offset)
	lsn, err := w.Append([]byte("appends go on"))
	require.NoError(t, err)
	require.NoError(t, w.TruncateBack(lsn-1))
	require.NoError(t, w.Close())

	// VerifyOnOpen: Open reads every segment and refuses the log.
	o.VerifyOnOpen = true
	_, err = Open(dir, o)
	require.Error(t, err)
	require.ErrorAs(t, err, &ce)
	assert.ErrorIs(t, err, segment.ErrCorrupt)
	assert.Equal(t, filepath.Base(names[0]), ce.Segment)
	assert.Equal(t, damagedAt, ce.Offset)
	o.VerifyOnOpen = false

	// The operator's choice: keep what is good.
	o.Recovery = RecoverTruncate
	w, err = Open(dir, o)
	require.NoError(t, err)
	assert.Equal(t, uint64(10), w.LastLSN())
	require.NoError(t, w.Close())
	broken, _ := filepath.Glob(filepath.Join(dir, "*.broken"))
	assert.Len(t, broken, len(names), "later segments are kept aside and the damaged one copied, nothing deleted")
	orig, err := os.ReadFile(names[0] + ".broken")
	require.NoError(t, err)
	assert.Equal(t, b[0], orig[off], "the copy holds the damaged bytes")
}

// RecoverTruncate never keeps part of an atomic batch: damage inside one
// drops the whole batch.
func TestRecoverTruncateDropsWholeBatch(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(BackendPwrite)
	o.SegmentSize = 256 << 10 // one segment, with every durable append padded to a page
	w := openT(t, dir, o)
	for i := range 5 {
		_, err := w.Append(payload(uint64(i+1), 100))
		require.NoError(t, err)
	}
	batchAt := w.tail
	_, err := w.AppendBatch([][]byte{payload(6, 100), payload(7, 100), payload(8, 100)})
	require.NoError(t, err)
	for i := 8; i < 20; i++ {
		_, err := w.Append(payload(uint64(i+1), 100))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	// Damage the second record of the batch (LSN 7); acknowledged records
	// follow, so this is corruption, not a torn tail.
	patchFile(t, lastSegment(t, dir), batchAt+int64(segment.FrameSize(100))+30, []byte{0xee})

	_, err = Open(dir, o)
	require.ErrorIs(t, err, segment.ErrCorrupt)
	o.Recovery = RecoverTruncate
	w = openT(t, dir, o)
	defer w.Close()
	assert.Equal(t, uint64(5), w.LastLSN(), "LSN 6 belongs to the damaged batch and goes with it")
	lsn, err := w.Append([]byte("next"))
	require.NoError(t, err)
	assert.Equal(t, uint64(6), lsn)
}

func TestMissingMiddleSegment(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(BackendPwrite)
	names := fillLog(t, dir, o, 300, 400)
	require.Greater(t, len(names), 2)
	require.NoError(t, os.Remove(names[1]))
	_, err := Open(dir, o)
	require.ErrorIs(t, err, segment.ErrCorrupt)
	assert.Contains(t, err.Error(), "missing")
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err := Open(file, Options{})
	assert.ErrorContains(t, err, "not a directory")

	for _, o := range []Options{
		{SegmentSize: 8 << 10},
		{BufferCount: 1},
		{MaxInFlight: -1},
		{Backend: "fast"},
		{MaxRecordSize: segment.MaxRecordSizeLimit + 1},
		{SegmentSize: 1 << 40},
	} {
		_, err := Open(t.TempDir(), o)
		assert.Error(t, err, "%+v", o)
	}

	w := openT(t, t.TempDir(), smallOpts(BackendPwrite))
	_, err = w.Append(nil)
	require.NoError(t, err, "an empty record is valid")
	_, err = w.Read(0)
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = w.Read(99)
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = w.NewReader(99)
	assert.ErrorIs(t, err, ErrOutOfRange)
	require.NoError(t, w.Close())
	_, err = w.Append([]byte("x"))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = w.Read(1)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, w.TruncateBack(0), ErrClosed)
	assert.ErrorIs(t, w.TruncateFront(1), ErrClosed)
}

// Random reads, replay, TruncateFront and appends at once (run with -race):
// every read of an LSN still in the log returns its exact record.
func TestReadsDuringTruncateAndAppend(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		w := openT(t, t.TempDir(), smallOpts(be))
		defer w.Close()
		for i := range 200 {
			_, err := w.Append(payload(uint64(i+1), 300))
			require.NoError(t, err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { // appender, as the LSN says
			defer wg.Done()
			for i := 201; i <= 800; i++ {
				lsn, err := w.Append(payload(uint64(i), 300))
				if !assert.NoError(t, err) || !assert.Equal(t, uint64(i), lsn) {
					return
				}
			}
		}()
		go func() { // truncator
			defer wg.Done()
			for range 12 {
				if last := w.LastLSN(); last > 100 {
					assert.NoError(t, w.TruncateFront(last-100))
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		go func() { // reader
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				first, last := w.FirstLSN(), w.LastLSN()
				for lsn := first; lsn <= last; lsn += 7 {
					data, err := w.Read(lsn)
					if err != nil {
						assert.ErrorIs(t, err, ErrNotFound, "lsn %d", lsn) // truncated meanwhile
						continue
					}
					assert.Equal(t, payload(lsn, 300), data, "lsn %d", lsn)
				}
			}
		}()
		time.Sleep(200 * time.Millisecond)
		close(stop)
		wg.Wait()
		recs := readAll(t, w, w.FirstLSN())
		require.NotEmpty(t, recs)
		assert.Equal(t, uint64(800), recs[len(recs)-1].LSN)
	})
}

func TestAppendAsyncAndSync(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := smallOpts(be)
		w := openT(t, dir, o)
		const n = 3000
		for i := range n {
			lsn, err := w.AppendAsync(payload(uint64(i+1), 50+i%400))
			require.NoError(t, err)
			require.Equal(t, uint64(i+1), lsn)
		}
		require.NoError(t, w.Sync())
		assert.Equal(t, uint64(n), w.LastLSN(), "Sync returns once everything before it is durable")
		// Async records and waiting appenders mix.
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 200 {
					var err error
					if (g+i)%2 == 0 {
						_, err = w.AppendAsync([]byte("async"))
					} else {
						_, err = w.Append([]byte("sync"))
					}
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		require.NoError(t, w.Sync())
		assert.Equal(t, uint64(n+800), w.LastLSN())
		_, err := w.AppendAsync([]byte("flushed by Close"))
		require.NoError(t, err)
		require.NoError(t, w.Close())
		assert.ErrorIs(t, w.Sync(), ErrClosed)
		_, err = w.AppendAsync([]byte("x"))
		assert.ErrorIs(t, err, ErrClosed)

		w = openT(t, dir, o)
		defer w.Close()
		assert.Equal(t, uint64(n+801), w.LastLSN(), "Close made the async tail durable")
		for i := range n {
			data, err := w.Read(uint64(i + 1))
			require.NoError(t, err)
			require.Equal(t, payload(uint64(i+1), 50+i%400), data)
		}
	})
}

// TestSyncReportsFailure: a failed write of AppendAsync records (their
// chains carry no fdatasync) and a failed fdatasync of the chain a Sync
// asked for are both reported by Sync.
func TestSyncReportsFailure(t *testing.T) {
	for _, fr := range []*faultRing{
		{n: 3, fault: "eio-write"},
		{n: 1, fault: "eio-fsync", syncsOnly: true}, // chain 0 carried the header
	} {
		t.Run(fr.fault, func(t *testing.T) {
			backends(t, func(t *testing.T, be Backend) {
				fr := &faultRing{n: fr.n, fault: fr.fault, syncsOnly: fr.syncsOnly}
				o := smallOpts(be)
				o.wrapSubmitter = func(s ring.Submitter) ring.Submitter { fr.inner = s; return fr }
				w, err := Open(t.TempDir(), o)
				require.NoError(t, err)
				defer w.Close()
				for range 500 {
					if _, err := w.AppendAsync(make([]byte, 3000)); err != nil {
						break
					}
				}
				err = w.Sync()
				require.ErrorIs(t, err, ErrFailed)
				assert.ErrorIs(t, err, syscall.EIO)
			})
		})
	}
}

// syncOrderRing delays the completion of write-only chains (AppendAsync
// records, no fdatasync) and checks the rule that makes them safe: a chain
// that syncs is submitted only once every write-only chain before it has
// completed, because an fdatasync covers only writes finished before it.
type syncOrderRing struct {
	inner ring.Submitter
	t     *testing.T

	mu          sync.Mutex
	outstanding map[int]int  // fd -> write-only chains not yet completed
	dirty       map[int]bool // fd -> written by a completed write-only chain, no sync submitted since
	writeOnly   atomic.Int64
	syncing     atomic.Int64
	rng         *rand.Rand
}

func (s *syncOrderRing) Submit(ops []ring.Op) (ring.Completion, error) {
	syncs := slices.ContainsFunc(ops, func(op ring.Op) bool { return op.Kind == ring.Fdatasync })
	s.mu.Lock()
	if syncs {
		s.syncing.Add(1)
		for fd, n := range s.outstanding {
			if n > 0 {
				s.t.Errorf("a chain that syncs fd %d was submitted while %d write-only chains on fd %d were in flight", ops[len(ops)-1].Fd, n, fd)
			}
		}
		fd := ops[0].Fd // every op of a chain but a directory fsync is on the segment
		for other, d := range s.dirty {
			if d && other != fd {
				s.t.Errorf("a chain that syncs fd %d was submitted while fd %d holds written, unsynced records", fd, other)
			}
		}
		delete(s.dirty, fd)
	} else {
		s.writeOnly.Add(1)
		s.outstanding[ops[0].Fd]++
	}
	delay := time.Duration(s.rng.IntN(1500)) * time.Microsecond
	s.mu.Unlock()
	c, err := s.inner.Submit(ops)
	if err != nil || syncs {
		return c, err
	}
	return afterDone(c, len(ops), func([]int32) {
		time.Sleep(delay)
		s.mu.Lock()
		s.outstanding[ops[0].Fd]--
		s.dirty[ops[0].Fd] = true
		s.mu.Unlock() // the log sees the completion only after the count dropped
	}), nil
}

// TestAsyncChainsWithoutSync: AppendAsync records go out in chains without
// an fdatasync; Sync, Append, rotation and Close each get one that covers
// them, submitted only after those writes completed; every record reads
// back after a reopen.
func TestAsyncChainsWithoutSync(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := smallOpts(be)
		o.SegmentSize, o.MaxInFlight = 256<<10, 4
		so := &syncOrderRing{t: t, outstanding: map[int]int{}, dirty: map[int]bool{}, rng: rand.New(rand.NewPCG(1, 2))}
		o.wrapSubmitter = func(s ring.Submitter) ring.Submitter { so.inner = s; return so }
		w := openT(t, dir, o)
		var wg sync.WaitGroup
		var total atomic.Int64
		for g := range 4 {
			wg.Go(func() {
				for i := range 400 {
					p := payload(uint64(g*1000+i), 100+(g*131+i*17)%3000)
					var err error
					switch {
					case g == 0 && i%50 == 49:
						_, err = w.Append(p)
					case i%100 == 99:
						if _, err = w.AppendAsync(p); err == nil {
							err = w.Sync()
						}
					default:
						_, err = w.AppendAsync(p)
					}
					if !assert.NoError(t, err) {
						return
					}
					total.Add(1)
				}
			})
		}
		wg.Wait()
		st := w.Stats()
		require.NoError(t, w.Close())
		for fd, d := range so.dirty {
			assert.False(t, d, "Close left fd %d with written, unsynced records", fd)
		}
		n := uint64(total.Load())
		t.Logf("chains: %d write-only, %d syncing; %d rotations", so.writeOnly.Load(), so.syncing.Load(), st.Rotations)
		assert.Greater(t, st.Rotations, uint64(5), "records crossed segment boundaries")
		assert.Greater(t, so.writeOnly.Load(), so.syncing.Load(), "most AppendAsync records went out without an fdatasync")

		w = openT(t, dir, o)
		defer w.Close()
		assert.Equal(t, n, w.LastLSN(), "Close made every async record durable")
		recs, err := readLog(w)
		require.NoError(t, err)
		require.Len(t, recs, int(n))
	})
}

// TestCreatePreparedHurry: a zero-fill that is told to hurry stops writing
// zeros and fallocates the rest; the file still has the full size, reads as
// zeros and has its blocks reserved.
func TestCreatePreparedHurry(t *testing.T) {
	const size = 8 << 20
	for _, hurried := range []bool{false, true} {
		t.Run(fmt.Sprintf("hurry=%v", hurried), func(t *testing.T) {
			var hurry atomic.Bool
			hurry.Store(hurried)
			path := filepath.Join(t.TempDir(), "p.tmp")
			start := time.Now()
			f, err := createPrepared(path, size, PreallocZero, fillControl{hurry: &hurry})
			require.NoError(t, err)
			defer f.Close()
			t.Logf("prepared in %v", time.Since(start))
			var st syscall.Stat_t
			require.NoError(t, syscall.Fstat(int(f.Fd()), &st))
			assert.Equal(t, int64(size), st.Size)
			assert.GreaterOrEqual(t, st.Blocks*512, int64(size), "space reserved")
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(data, make([]byte, size)), "reads as zeros")
		})
	}
}

// TestCreatePreparedPaced: a paced zero-fill spreads its chunks over time at
// the rate asked, and a hurry ends a pause at once (the rest is fallocated).
func TestCreatePreparedPaced(t *testing.T) {
	const size = 4 * zeroChunk
	t.Run("paced", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "p.tmp")
		start := time.Now()
		var cut atomic.Uint64
		f, err := createPrepared(path, size, PreallocZero, fillControl{rate: 16 * zeroChunk, cutShort: &cut})
		require.NoError(t, err)
		f.Close()
		// Chunks are due at 0, 1/16, 2/16 and 3/16 s; a slower machine
		// only makes it later.
		assert.GreaterOrEqual(t, time.Since(start), 3*time.Second/16)
		assert.Zero(t, cut.Load(), "nobody hurried it")
	})
	t.Run("hurried", func(t *testing.T) {
		var hurry atomic.Bool
		wake := make(chan struct{}, 1)
		path := filepath.Join(t.TempDir(), "p.tmp")
		go func() {
			time.Sleep(50 * time.Millisecond)
			hurry.Store(true)
			wake <- struct{}{}
		}()
		start := time.Now()
		// At one chunk a second the fill would take 3 s.
		var cut atomic.Uint64
		f, err := createPrepared(path, size, PreallocZero, fillControl{hurry: &hurry, wake: wake, rate: zeroChunk, cutShort: &cut})
		require.NoError(t, err)
		defer f.Close()
		assert.Less(t, time.Since(start), 2*time.Second, "the hurry ended the pause")
		assert.Equal(t, uint64(1), cut.Load(), "counted as cut short")
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Len(t, data, size)
		assert.True(t, bytes.Equal(data, make([]byte, size)), "reads as zeros")
	})
}

func TestZeroRate(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		size, filled, left int64
		elapsed            time.Duration
		want               int64
	}{
		// 16 MiB filled in 1 s, 48 MiB to go: 3 s; done in 2.25 s.
		{64 * mib, 16 * mib, 48 * mib, time.Second, 29826161 /* 64 MiB / 2.25 s */},
		{64 * mib, 0, 64 * mib, time.Second, 0},         // no rate known: unpaced
		{64 * mib, 16 * mib, 48 * mib, 0, 0},            // likewise
		{64 * mib, 16 * mib, 0, time.Second, 0},         // nothing left: unpaced
		{64 * mib, 1, 48 * mib, time.Hour, minZeroRate}, // slow log: the floor
		// A sample too short to pace by (it once overflowed to the floor).
		{64 * mib, mib, 100, 50 * time.Nanosecond, 0},
	} {
		assert.Equal(t, c.want, zeroRate(c.size, c.filled, c.left, c.elapsed), "%+v", c)
	}
}

// TestLazySealedSegments: after a reopen, sealed segments are read only when
// needed - Read, a Reader starting inside one, TruncateBack into one - and
// concurrent readers, appends and TruncateFront stay correct while that
// happens. Records missing from the end of a sealed segment are reported
// by whatever reads them (and by Open with VerifyOnOpen).
func TestLazySealedSegments(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := smallOpts(be)
		const n = 1200
		names := fillLog(t, dir, o, n, 300)
		require.Greater(t, len(names), 4)

		w := openT(t, dir, o)
		var wg sync.WaitGroup
		var stop atomic.Bool
		for g := range 4 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 7))
				for !stop.Load() {
					lsn := 1 + uint64(rng.IntN(n))
					data, err := w.Read(lsn)
					if errors.Is(err, ErrNotFound) && lsn < w.FirstLSN() {
						continue // truncated meanwhile
					}
					if !assert.NoError(t, err, "Read(%d)", lsn) {
						return
					}
					assert.Equal(t, payload(lsn, 300), data)
				}
			})
		}
		// A reader starting inside a sealed segment, made before any
		// TruncateFront can run.
		r, err := w.NewReader(37)
		require.NoError(t, err)
		wg.Go(func() {
			defer r.Close()
			for lsn := uint64(37); lsn <= n; lsn++ {
				rec, err := r.Next()
				if errors.Is(err, ErrOutOfRange) {
					return // TruncateFront overtook it
				}
				if !assert.NoError(t, err) || !assert.Equal(t, lsn, rec.LSN) {
					return
				}
				assert.Equal(t, payload(lsn, 300), rec.Data)
			}
		})
		for i := range 50 {
			_, err := w.Append(payload(uint64(n+1+i), 300))
			require.NoError(t, err)
			if i == 25 {
				require.NoError(t, w.TruncateFront(400))
				require.Greater(t, w.FirstLSN(), uint64(1), "segments were dropped")
			}
		}
		stop.Store(true)
		wg.Wait()

		// TruncateBack into a sealed segment Open did not read.
		first := w.FirstLSN()
		target := first + 5
		require.NoError(t, w.TruncateBack(target))
		assert.Equal(t, target, w.LastLSN())
		lsn, err := w.Append(payload(target+1, 300))
		require.NoError(t, err)
		assert.Equal(t, target+1, lsn)
		require.NoError(t, w.Close())
		w = openT(t, dir, o)
		recs := readAll(t, w, w.FirstLSN())
		require.Len(t, recs, int(target+2-first))
		for _, r := range recs {
			assert.Equal(t, payload(r.LSN, 300), r.Data)
		}
		require.NoError(t, w.Close())
	})
}

// TestSealedSegmentMissingRecords: the last frames of a sealed segment
// zeroed (a segment copied short, say). Open with VerifyOnOpen refuses the
// log; the default Open accepts it and Read and Reader report the records
// missing, naming the segment.
func TestSealedSegmentMissingRecords(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(BackendPwrite)
	o.NoPadding = true // records per segment are counted in packed frames
	names := fillLog(t, dir, o, 800, 300)
	require.Greater(t, len(names), 3)
	victim := names[1]
	per := (o.SegmentSize - segment.DataOffset) / int64(segment.FrameSize(300))
	// Zero the victim's last two frames.
	from := segment.DataOffset + (per-2)*int64(segment.FrameSize(300))
	patchFile(t, victim, from, make([]byte, 2*segment.FrameSize(300)))
	lastOfVictim := 2 * uint64(per) // segments hold per records each
	name := filepath.Base(victim)

	o.VerifyOnOpen = true
	_, err := Open(dir, o)
	require.ErrorIs(t, err, segment.ErrCorrupt)
	assert.ErrorContains(t, err, "missing")

	o.VerifyOnOpen = false
	w := openT(t, dir, o)
	defer w.Close()
	_, err = w.Read(lastOfVictim)
	require.ErrorIs(t, err, segment.ErrCorrupt)
	assert.ErrorContains(t, err, name)
	assert.ErrorContains(t, err, "missing")
	data, err := w.Read(lastOfVictim + 1)
	require.NoError(t, err, "the next segment is whole")
	assert.Equal(t, payload(lastOfVictim+1, 300), data)

	r, err := w.NewReader(1)
	require.NoError(t, err)
	defer r.Close()
	var got uint64
	for {
		rec, err := r.Next()
		if err != nil {
			require.ErrorIs(t, err, segment.ErrCorrupt)
			assert.ErrorContains(t, err, name)
			break
		}
		got = rec.LSN
	}
	assert.Equal(t, lastOfVictim-2, got, "the reader returns every record before the hole")
}

// slowRing completes chains delay after the real completion: every chain,
// or only chain number slow (0-based; -1: every one). It also records how
// many records each chain carried (frames of frameSize bytes; 0: not
// counted) and how many chains were submitted while another was in flight.
type slowRing struct {
	inner     ring.Submitter
	delay     time.Duration
	slow      int64
	frameSize int

	mu       sync.Mutex
	n        int64 // chains submitted
	inflight int
	recs     []int // records per chain that carries records
	alone    []int // records per chain that carries records, submitted with nothing in flight
	overlap  int   // chains submitted while another was in flight
}

func (s *slowRing) Submit(ops []ring.Op) (ring.Completion, error) {
	c, err := s.inner.Submit(ops)
	if err != nil {
		return c, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frameSize > 0 {
		n := 0
		for _, op := range ops {
			if (op.Kind == ring.Write || op.Kind == ring.WriteFixed) && op.Offset >= segment.DataOffset {
				n += len(op.Buf)
			}
		}
		if n > 0 {
			s.recs = append(s.recs, n/s.frameSize)
			if s.inflight == 0 {
				s.alone = append(s.alone, n/s.frameSize)
			}
		}
	}
	if s.inflight > 0 {
		s.overlap++
	}
	s.inflight++
	delay := s.delay
	if s.slow >= 0 && s.n != s.slow {
		delay = 0
	}
	s.n++
	return afterDone(c, len(ops), func([]int32) {
		time.Sleep(delay)
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}), nil
}

// TestSlowChainKicksRing: on the io_uring backend, a chain in flight for
// more than kickAfter makes the completer kick the ring (a no-op submission
// that wakes the library's reaper); the append still completes normally.
func TestSlowChainKicksRing(t *testing.T) {
	o := smallOpts(BackendURing)
	sr := &slowRing{delay: kickAfter + kickAfter/2, slow: 1}
	o.wrapSubmitter = func(s ring.Submitter) ring.Submitter { sr.inner = s; return sr }
	w := openT(t, t.TempDir(), o)
	defer w.Close()
	for i := range 3 {
		_, err := w.Append(payload(uint64(i+1), 100))
		require.NoError(t, err)
	}
	assert.GreaterOrEqual(t, w.Stats().Kicks, uint64(1))
	assert.Equal(t, uint64(3), w.LastLSN())
}

// TestPreallocFollowsWorkload: with PreallocZero, segments after ones filled
// by waiting appenders are zero-filled; segments after ones filled mostly by
// AppendAsync records are fallocated. Every record reads back.
func TestPreallocFollowsWorkload(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := smallOpts(be)
		w := openT(t, dir, o)
		lsn := uint64(0)
		for range 800 { // about four segments of waited-for records
			lsn++
			_, err := w.Append(payload(lsn, 300))
			require.NoError(t, err)
		}
		zero, falloc := w.prep.prepared[PreallocZero].Load(), w.prep.prepared[PreallocFallocate].Load()
		assert.GreaterOrEqual(t, zero, uint64(3))
		assert.Zero(t, falloc, "no bulk yet")
		// Stats shows the files prepared (the preparer may finish one more
		// between the loads).
		st := w.Stats()
		assert.GreaterOrEqual(t, st.ZeroFilled, zero)
		assert.LessOrEqual(t, st.ZeroFilled, w.prep.prepared[PreallocZero].Load())
		assert.Zero(t, st.Fallocated)
		assert.Contains(t, st.String(), fmt.Sprintf("prepared=zeros:%d,fallocate:0", st.ZeroFilled))
		for range 800 { // as many AppendAsync records
			lsn++
			_, err := w.AppendAsync(payload(lsn, 300))
			require.NoError(t, err)
		}
		require.NoError(t, w.Sync())
		assert.GreaterOrEqual(t, w.prep.prepared[PreallocFallocate].Load(), uint64(2), "bulk segments are followed by fallocated ones")
		assert.LessOrEqual(t, w.prep.prepared[PreallocZero].Load(), zero+1, "at most the segment prepared while the mix changed")
		fst := w.Stats().Fallocated
		assert.GreaterOrEqual(t, fst, uint64(2), "Stats shows the files fallocated")
		assert.LessOrEqual(t, fst, w.prep.prepared[PreallocFallocate].Load())
		require.NoError(t, w.Close())
		w = openT(t, dir, o)
		defer w.Close()
		recs := readAll(t, w, 1)
		require.Len(t, recs, int(lsn))
		for _, r := range recs {
			require.Equal(t, payload(r.LSN, 300), r.Data)
		}
	})
}

// TestPreallocFollowsBatchSize: with PreallocZero, segments after ones
// filled by durable batches of largeSync bytes and more on average are
// fallocated; segments after ones filled by small durable batches are
// zero-filled. Every record reads back.
func TestPreallocFollowsBatchSize(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		const seg = 4 << 20
		o := Options{Backend: be, SegmentSize: seg, MaxRecordSize: 128 << 10}
		w := openT(t, dir, o)
		const big = 96 << 10
		batch := make([][]byte, 2*largeSync/big+1) // one durable batch: more than 2*largeSync bytes
		var want [][]byte
		for range 4 * seg / (len(batch) * big) { // about four segments
			for i := range batch {
				batch[i] = payload(uint64(len(want)+i+1), big)
			}
			_, err := w.AppendBatch(batch)
			require.NoError(t, err)
			want = append(want, batch...)
		}
		st := w.Stats()
		assert.GreaterOrEqual(t, st.Fallocated, uint64(2), "segments after large durable batches are fallocated")
		assert.Zero(t, st.ZeroFilled, "no small durable batches yet")
		zero := st.ZeroFilled
		for range 4 * seg / 8192 { // as many bytes in lone durable appends
			p := payload(uint64(len(want)+1), 8000)
			_, err := w.Append(p)
			require.NoError(t, err)
			want = append(want, p)
		}
		st = w.Stats()
		assert.GreaterOrEqual(t, st.ZeroFilled, zero+2, "segments after small durable batches are zero-filled")
		require.NoError(t, w.Close())
		w = openT(t, dir, o)
		defer w.Close()
		requireRecords(t, w, want)
	})
}

// TestTruncateBackIntoUnreadSegmentKeepsEpochs: a sealed segment written by
// two writer incarnations (epochs 0 and 1), unread by Open, then cut by
// TruncateBack: records appended after the cut carry an epoch above both, so
// the next recovery does not take them for stale bytes.
func TestTruncateBackIntoUnreadSegmentKeepsEpochs(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		o := smallOpts(be)
		lsn := uint64(0)
		add := func(w *WAL, n int) {
			for range n {
				lsn++
				got, err := w.Append(payload(lsn, 300))
				require.NoError(t, err)
				require.Equal(t, lsn, got)
			}
		}
		for range 3 { // three incarnations in the first segment: epochs 0, 1, 2
			w := openT(t, dir, o)
			add(w, 30)
			require.NoError(t, w.Close())
		}
		w := openT(t, dir, o)
		add(w, 600) // later segments
		require.NoError(t, w.Close())
		require.Greater(t, len(segPaths(t, dir)), 2)

		w = openT(t, dir, o) // the first segment is not read
		require.NoError(t, w.TruncateBack(80))
		lsn = 80
		add(w, 10)
		require.NoError(t, w.Close())

		w = openT(t, dir, o)
		defer w.Close()
		assert.Equal(t, uint64(90), w.LastLSN(), "records appended after the cut survive a reopen")
		recs := readAll(t, w, 1)
		require.Equal(t, 90, len(recs))
		for _, r := range recs {
			require.Equal(t, payload(r.LSN, 300), r.Data)
		}
	})
}
