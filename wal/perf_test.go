package wal

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/internal/ring"
	"github.com/ringwal/ringwal/segment"
)

// TestAppendAllocs counts heap allocations per durable Append, across every
// goroutine of the process (AllocsPerRun reads the runtime's malloc count):
// the appender, the flusher or ring reaper, and the completer. 500 appends
// of 1 KiB stay inside the first segment, so no rotation or preparation
// runs.
//
// The pwrite backend must not allocate at all. On io_uring this package
// allocates nothing either, but github.com/iceber/iouring-go allocates per
// chain: per request a UserData, a request and its done channel (3 x 2:
// the write and the fdatasync), per request set the set, its request and
// user-data slices and its done channel (4), and per completion a copy of
// the CQE (2): 12. The bound is that count, so any allocation of ours fails
// the test.
func TestAppendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race sync.Pool drops a random share of recycled batches; .ci/run runs this test without -race")
	}
	for _, tc := range []struct {
		backend Backend
		max     float64
	}{{BackendPwrite, 0}, {BackendURing, 12}} {
		t.Run(string(tc.backend), func(t *testing.T) {
			w := openT(t, t.TempDir(), Options{Backend: tc.backend})
			defer w.Close()
			p := make([]byte, 1024)
			for range 10 { // warm up: the first chains make their jobs
				_, err := w.Append(p)
				require.NoError(t, err)
			}
			var err error
			allocs := testing.AllocsPerRun(500, func() {
				if _, e := w.Append(p); e != nil {
					err = e
				}
			})
			require.NoError(t, err)
			t.Logf("%s: %.0f allocations per durable Append", tc.backend, allocs)
			require.LessOrEqual(t, allocs, tc.max, "allocations per durable Append")
		})
	}
}

// pwriteSubmitterOnFile returns a pwrite backend with one flusher and a
// new empty file, both closed when the test ends.
func pwriteSubmitterOnFile(t *testing.T) (*pwriteSubmitter, *os.File) {
	s := newPwriteSubmitter(nil, 1)
	t.Cleanup(s.close)
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return s, f
}

// TestPwriteJobDone: a job's Done channel, asked for before or after the
// chain completed, is closed once it completed; a recycled job starts open
// again, and the completer's wait consumes exactly one completion per use.
func TestPwriteJobDone(t *testing.T) {
	s, f := pwriteSubmitterOnFile(t)
	fd := int(f.Fd())
	ops := []ring.Op{{Kind: ring.Fdatasync, Fd: fd}}

	c, err := s.Submit(ops)
	require.NoError(t, err)
	before := c.Done()
	<-before
	j := c.(*pwriteJob)
	j.wait()
	require.NoError(t, ring.Check(ops, c.Results()))
	select {
	case <-c.Done(): // asked for after completion: already closed
	default:
		t.Fatal("Done after completion is not closed")
	}
	j.Release()

	c2, err := s.Submit(ops)
	require.NoError(t, err)
	require.Same(t, j, c2.(*pwriteJob), "the released job is reused")
	// Waited for through Done only, then released: release drains the
	// pending wake-up, so the next use's wait does not return before its
	// own chain completed.
	<-c2.Done()
	require.NoError(t, ring.Check(ops, c2.Results()))
	j.Release()
	require.Empty(t, j.wake)

	gate := make(chan struct{})
	s2 := newPwriteSubmitter(gateIO{gate: gate}, 1)
	defer s2.close()
	c3, err := s2.Submit(ops)
	require.NoError(t, err)
	select {
	case <-c3.Done():
		t.Fatal("Done closed before the chain ran")
	default:
	}
	close(gate)
	c3.(*pwriteJob).wait()
	<-c3.Done()
}

// TestSubmitPreparedRunsPrepFirst: the pwrite backend runs a chain's prep
// on its flusher before the chain's ops (the log fills in checksums there),
// so the bytes written are the ones prep left; a prep that fails cancels
// every op and nothing is written.
func TestSubmitPreparedRunsPrepFirst(t *testing.T) {
	s, f := pwriteSubmitterOnFile(t)
	fd := int(f.Fd())
	buf := []byte("before prep")
	ops := []ring.Op{{Kind: ring.Write, Fd: fd, Buf: buf}, {Kind: ring.Fdatasync, Fd: fd}}

	c, err := s.SubmitPrepared(ops, func() error { copy(buf, "after! prep"); return nil })
	require.NoError(t, err)
	<-c.Done()
	require.NoError(t, ring.Check(ops, c.Results()))
	got, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	assert.Equal(t, "after! prep", string(got))
	c.(ring.Releaser).Release()

	ops[0].Offset = 100
	c, err = s.SubmitPrepared(ops, func() error { return errors.New("frames laid wrong") })
	require.NoError(t, err)
	<-c.Done()
	for i, r := range c.Results() {
		assert.Equal(t, -int32(syscall.ECANCELED), r, "op %d", i)
	}
	require.Error(t, ring.Check(ops, c.Results()))
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(len(buf)), fi.Size(), "a failed prep writes nothing")
	c.(ring.Releaser).Release()

	// A released job does not run the previous use's prep again.
	c, err = s.Submit(ops[1:])
	require.NoError(t, err)
	<-c.Done()
	require.NoError(t, ring.Check(ops[1:], c.Results()))
}

// TestBatchChecksumReportsBadFrames: batch.checksum fills in the checksums
// of frames laid across a batch's pieces, and reports frames cut short (a
// bug in laying them) naming the batch, so that the log fails instead of
// writing them.
func TestBatchChecksumReportsBadFrames(t *testing.T) {
	seg := &segFile{name: "00000000000000000001.seg"}
	seg.hdr.Salt = 0x5eed
	e := newEncoder(seg.hdr.Salt, 0, 0)
	a, b := make([]byte, 100), make([]byte, 100)
	e.Reset(a, segment.DataOffset, 1)
	for e.Pending() == 0 {
		_, _, err := e.AppendSplit([]byte("a record of some length"), e.NextLSN()-1, 0)
		require.NoError(t, err)
	}
	e.Continue(b)
	bt := &batch{seg: seg, offset: segment.DataOffset, firstLSN: 1, lastLSN: e.NextLSN() - 1}
	bt.pieces = []piece{{buf: a, n: len(a)}, {buf: b, n: e.Len()}}
	require.NoError(t, bt.checksum())
	data := append(make([]byte, segment.DataOffset), append(a, b[:e.Len()]...)...)
	hdr := segment.Header{Seq: 1, BaseLSN: 1, Size: int64(len(data)), Salt: seg.hdr.Salt}
	hdr.MarshalTo(data)
	r, err := segment.NewReader(bytes.NewReader(data), int64(len(data)), segment.ReaderOptions{})
	require.NoError(t, err)
	n := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "frames checksummed by the batch verify")
		n++
	}
	assert.Equal(t, int(e.NextLSN()-1), n)

	bt.pieces[1].n-- // the last frame cut short
	err = bt.checksum()
	require.Error(t, err)
	assert.ErrorContains(t, err, "checksum frames of segment 00000000000000000001.seg")
	assert.Equal(t, err, bt.prepErr)
}

// gateIO holds every fdatasync until gate is closed.
type gateIO struct {
	osFileIO
	gate chan struct{}
}

func (g gateIO) Fdatasync(fd int) error { <-g.gate; return g.osFileIO.Fdatasync(fd) }

// TestPrefetchBackwards: recovery scans for the end of the written region
// from the end of the file backwards; READ_FIXED reads then cover exactly
// what was asked for, while a forward scan still reads ahead.
func TestPrefetchBackwards(t *testing.T) {
	const size, win = 8 << 20, 1 << 20
	rr, f, data := prefetchFixture(t, size)

	p := newPrefetchReader(rr, f, size)
	buf := make([]byte, win)
	for off := int64(size - win); off >= 0; off -= win {
		n, err := p.ReadAt(buf, off)
		require.NoError(t, err)
		require.Equal(t, win, n)
		require.Equal(t, data[off:off+win], buf)
	}
	require.NoError(t, p.Close())
	assert.Equal(t, uint64(size), rr.ctr.bytes.Load(), "bytes read by READ_FIXED scanning backwards")

	rr.ctr.bytes.Store(0)
	p = newPrefetchReader(rr, f, size)
	_, err := p.ReadAt(buf, 0)
	require.NoError(t, err)
	require.NoError(t, p.Close())
	assert.Greater(t, rr.ctr.bytes.Load(), uint64(win), "a forward reader reads ahead")
}

// TestPrefetchView: the segment reader's windows come straight from the
// READ_FIXED chunks. Views forward through a file, of random sizes and at
// random steps, return the file's bytes, at least least and at most most of
// them, and the file is read once (each byte copied once, by the kernel);
// ranges across chunks are copied, and with every registered buffer taken
// views still return the right bytes (through pread).
func TestPrefetchView(t *testing.T) {
	const size = 4*readChunk + 12345
	rr, f, data := prefetchFixture(t, size)

	rng := rand.New(rand.NewPCG(1, 2))
	view := func(p *prefetchReader) (crossed int) {
		for off := int64(0); off < size; {
			least := int(min(int64(rng.IntN(3000)), size-off))
			most := least + rng.IntN(1<<20)
			b, err := p.View(off, least, most)
			require.NoError(t, err, "view [%d, %d] at %d", least, most, off)
			require.GreaterOrEqual(t, len(b), least)
			require.LessOrEqual(t, len(b), most)
			require.Equal(t, data[off:off+int64(len(b))], b, "view at %d", off)
			if off/readChunk != (off+int64(least)-1)/readChunk && least > 0 {
				crossed++
			}
			off += int64(min(len(b), 1+rng.IntN(4000)))
		}
		return crossed
	}
	p := newPrefetchReader(rr, f, size)
	crossed := view(p)
	require.NoError(t, p.Close())
	assert.Positive(t, crossed, "views across chunk boundaries")
	assert.Equal(t, uint64(size), rr.ctr.bytes.Load(), "bytes read by READ_FIXED: each once")

	// Every registered read buffer taken: pread.
	var held []uint16
	for {
		idx, _, ok := rr.pool.TryAcquire()
		if !ok {
			break
		}
		held = append(held, idx)
	}
	require.Len(t, held, readBuffers)
	rr.ctr.bytes.Store(0)
	p = newPrefetchReader(rr, f, size)
	view(p)
	require.NoError(t, p.Close())
	assert.Zero(t, rr.ctr.bytes.Load(), "no READ_FIXED without a free buffer")
	for _, idx := range held {
		require.NoError(t, rr.pool.Release(idx))
	}
}

// prefetchFixture returns a read ring and a file of size patterned bytes
// (and the bytes), released and closed when the test ends.
func prefetchFixture(t *testing.T, size int) (*readRing, *os.File, []byte) {
	rr, err := newReadRing()
	require.NoError(t, err)
	t.Cleanup(func() { rr.release() })
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	_, err = f.WriteAt(data, 0)
	require.NoError(t, err)
	return rr, f, data
}
