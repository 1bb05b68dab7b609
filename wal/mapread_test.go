package wal

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/segment"
)

// mappedLog appends n 1000-byte records (a multiple of 64) to a fresh pwrite log of 8 MiB
// segments and returns it open. Its readers take every segment for cached
// (inCache): these tests read the paths for segments in the page cache, and
// the kernel may evict a just-written page under memory pressure, which
// would send a reader down the cold path instead (TestReplayWindowFollowsPageCache covers the
// probe itself).
func mappedLog(t *testing.T, o Options, n uint64) *WAL {
	t.Helper()
	o.Backend, o.SegmentSize, o.MaxRecordSize = BackendPwrite, 8<<20, 64<<10
	if o.cacheProbe == nil {
		o.cacheProbe = inCache
	}
	w := openT(t, t.TempDir(), o)
	appendKiB(t, w, n)
	return w
}

// inCache is a page-cache probe that finds every range cached.
func inCache(fd int, off, n int64) (float64, bool) { return 1, true }

// TestMappedReplayDataPastValidity: records read in place through a mapped
// window stay readable after their validity ends: Data kept past the next
// Next, past the Reader's Close, and past another reader mapping its own
// windows into the same addresses reads stale bytes (zeros or other
// records), never faults; the last record returned before Close reads
// unchanged. A caller writing into Data changes a private copy, never the
// file.
func TestMappedReplayDataPastValidity(t *testing.T) {
	const n = 20 << 10 // about 20 MiB: three segments
	w := mappedLog(t, Options{}, n)
	defer w.Close()

	r, err := w.NewReader(1)
	require.NoError(t, err)
	kept := make([][]byte, 0, n)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		kept = append(kept, rec.Data)
	}
	require.Len(t, kept, n)
	require.Greater(t, r.mappedWindows(), 4, "read through mapped windows")
	last := bytes.Clone(kept[n-1])
	require.NoError(t, r.Close())
	assert.Equal(t, last, kept[n-1], "the last record reads unchanged after Close")

	// Another reader takes the given-back slot and maps its windows over
	// the addresses the first one's records point into.
	r2, err := w.NewReader(1)
	require.NoError(t, err)
	for range 5000 {
		rec, err := r2.Next()
		require.NoError(t, err)
		rec.Data[0] ^= 0xff // a write into Data: a private copy
	}
	sum := 0
	for _, d := range kept {
		for _, b := range d {
			sum += int(b)
		}
		d[len(d)-1] = 7 // writable, too
	}
	t.Logf("read %d stale records (sum %d)", len(kept), sum)
	require.NoError(t, r2.Close())

	for i, rec := range readAll(t, w, 1) {
		require.Equal(t, payload(uint64(i+1), 1000), rec.Data, "lsn %d: writes into Data never reach the file", i+1)
	}
}

// TestMappedReplayRefused: where a mapping is refused, a Reader reads cached
// segments with 1 MiB preads and cold ones with 4 MiB preads, into one
// buffer of its own, reads every record, and the log says so once.
func TestMappedReplayRefused(t *testing.T) {
	t.Run("cached", func(t *testing.T) { testMappedReplayRefused(t, inCache, replayBuffer) })
	t.Run("cold", func(t *testing.T) { testMappedReplayRefused(t, notCached, coldReplayBuffer) })
}

// notCached is a page-cache probe that finds nothing cached.
func notCached(fd int, off, n int64) (float64, bool) { return 0, true }

func testMappedReplayRefused(t *testing.T, probe func(int, int64, int64) (float64, bool), window int) {
	var logs bytes.Buffer
	const n = 20 << 10
	w := mappedLog(t, Options{
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		refuseMap:  fmt.Errorf("mmap: %w", syscall.ENOMEM),
		cacheProbe: probe,
	}, n)
	defer w.Close()
	for pass := range 2 {
		r, err := w.NewReader(1)
		require.NoError(t, err)
		for lsn := uint64(1); ; lsn++ {
			rec, err := r.Next()
			if err == io.EOF {
				require.Equal(t, uint64(n+1), lsn, "pass %d", pass)
				break
			}
			require.NoError(t, err)
			require.Equal(t, payload(lsn, 1000), rec.Data, "pass %d", pass)
		}
		assert.Zero(t, r.mappedWindows(), "nothing mapped")
		assert.Equal(t, window, len(r.buf), "one buffer of %d bytes for every segment", window)
		require.NoError(t, r.Close())
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "could not map"), "said once per log: %s", logs.String())
	assert.Contains(t, logs.String(), "cannot allocate memory")
}

// TestMappedReplayFollowsAppends: a reader caught up with the active
// segment returns records appended after it read its window, across a
// rotation: read through a mapping, through 1 MiB preads (mapping refused)
// and through READ_FIXED (io_uring). A reader with a buffered window opens
// the segment again once the log is durable past what it read, before the
// stale window fails a record (a failure classifies the window's end, which
// reads the segment's tail; retries counts them), and on io_uring reads
// little more than the records.
func TestMappedReplayFollowsAppends(t *testing.T) {
	for _, path := range []string{"mapped", "pread", "io_uring"} {
		t.Run(path, func(t *testing.T) {
			var o Options
			switch path {
			case "pread":
				o.refuseMap = fmt.Errorf("mmap: %w", syscall.ENOMEM)
			}
			var w *WAL
			if path == "io_uring" {
				w = openT(t, t.TempDir(), Options{Backend: BackendURing, SegmentSize: 8 << 20, MaxRecordSize: 64 << 10, cacheProbe: inCache})
				appendKiB(t, w, 64)
			} else {
				w = mappedLog(t, o, 64)
			}
			defer w.Close()
			r, err := w.NewReader(1)
			require.NoError(t, err)
			defer r.Close()
			lsn := uint64(1)
			for round := range 200 {
				for {
					rec, err := r.Next()
					if err == io.EOF {
						break
					}
					require.NoError(t, err)
					require.Equal(t, payload(lsn, 1000), rec.Data, "lsn %d", lsn)
					lsn++
				}
				require.Equal(t, w.LastLSN()+1, lsn, "round %d", round)
				batch := make([][]byte, 64)
				for i := range batch {
					batch[i] = payload(lsn+uint64(i), 1000)
				}
				_, err := w.AppendBatch(batch)
				require.NoError(t, err)
			}
			assert.Greater(t, w.Stats().Segments, 1, "the appends rotated")
			switch path {
			case "mapped":
				assert.Positive(t, r.mappedWindows())
			case "pread":
				assert.Zero(t, r.mappedWindows())
				assert.Zero(t, r.retries, "no record failed on a stale window")
			case "io_uring":
				require.NotNil(t, r.pf, "read through READ_FIXED")
				assert.Zero(t, r.retries, "no record failed on a stale window")
				// Each catch-up reads what is new: neither the read-ahead
				// from the segment's header, read when the segment is
				// opened again, nor the zeros after the records laid.
				st := w.Stats()
				logBytes := uint64(lsn-1) * uint64(segment.FrameSize(1000))
				assert.LessOrEqual(t, st.ReadFixedBytes, 2*logBytes, "READ_FIXED bytes for %d bytes of records (%d reads)", logBytes, st.ReadFixedOps)
				t.Logf("READ_FIXED: %d reads, %d bytes for %d bytes of records", st.ReadFixedOps, st.ReadFixedBytes, logBytes)
			}
		})
	}
}

// TestMappedReplayFault: a window whose pages cannot be read in is an error,
// not the end of the process. Shortening a segment file under a reader
// makes the pages past its new end fault as a media error would: the view
// of a window past the new end fails with EIO, and Next, which reads once
// more from the segment reopened, finds its records missing.
func TestMappedReplayFault(t *testing.T) {
	w := mappedLog(t, Options{}, 20<<10)
	defer w.Close()
	r, err := w.NewReader(1)
	require.NoError(t, err)
	defer r.Close()
	_, err = r.Next()
	require.NoError(t, err)
	require.NotNil(t, r.mr, "read through a mapping")
	require.NoError(t, os.Truncate(r.seg.path, 5<<20))
	n := 1
	for ; err == nil; n++ {
		_, err = r.Next()
	}
	require.ErrorIs(t, err, segment.ErrCorrupt)
	assert.Contains(t, err.Error(), "durable record missing")
	assert.Greater(t, n, 4000, "records of the first window read")
	_, err2 := r.Next()
	assert.Equal(t, err, err2, "the error is sticky")

	// The view itself.
	f, err := os.Open(segPaths(t, w.Dir())[1])
	require.NoError(t, err)
	defer f.Close()
	mr := newMappedReader(f, 8<<20, nil, nil, nil)
	defer mr.Close(nil)
	_, err = mr.View(4096, 100, mapWindow)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(f.Name(), 5<<20))
	_, err = mr.View(4<<20, 100, mapWindow)
	require.ErrorIs(t, err, syscall.EIO)
	assert.Contains(t, err.Error(), "through a mapping")
}

// TestMappedReaderNeverClosed: a Reader dropped without Close gives its
// mapping back once it is garbage: a mapping would otherwise keep its
// segment file, deleted or not, and the file's disk space, for the life of
// the process.
func TestMappedReaderNeverClosed(t *testing.T) {
	w := mappedLog(t, Options{}, 20<<10)
	defer w.Close()
	seg := segPaths(t, w.Dir())[0]
	mapped := func() bool {
		maps, err := os.ReadFile("/proc/self/maps")
		require.NoError(t, err)
		return strings.Contains(string(maps), seg)
	}
	func() {
		r, err := w.NewReader(1)
		require.NoError(t, err)
		_, err = r.Next()
		require.NoError(t, err)
		require.NotNil(t, r.mr)
	}()
	require.True(t, mapped(), "the reader maps %s", seg)
	for i := 0; i < 20 && mapped(); i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	assert.False(t, mapped(), "the dropped reader's mapping was given back")
}

// TestMapWindowsAgreeWithFileOffsets: every map slot, new or given back and
// taken again, starts on a mapAlign boundary, and a window lies in it at
// its file offset modulo mapAlign, so that the page cache's large folios
// lie in as few page tables as they can. The views read the file's bytes.
func TestMapWindowsAgreeWithFileOffsets(t *testing.T) {
	const size = 3*mapWindow + 12345
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()

	for round := range 2 { // the second round takes the given-back slots
		var readers []*mappedReader
		for _, off := range []int64{0, 1, int64(pageSize) - 1, int64(pageSize), 12345, mapAlign - 1, mapAlign + 4097, mapWindow + 3*int64(pageSize) + 17, 2*mapWindow + mapAlign - 2, size - 100} {
			v := newMappedReader(f, size, nil, nil, nil)
			readers = append(readers, v)
			b, err := v.View(off, 1, mapWindow)
			require.NoError(t, err, "offset %d", off)
			require.Equal(t, int(min(size-off, mapWindow)), len(b), "offset %d", off)
			require.Equal(t, data[off:off+int64(len(b))], b, "offset %d", off)
			base := uintptr(unsafe.Pointer(&v.slot.mem[0]))
			assert.Zero(t, base%mapAlign, "round %d: slot at %#x", round, base)
			assert.Equal(t, uintptr(off%mapAlign), uintptr(unsafe.Pointer(&b[0]))%mapAlign, "round %d: a view of offset %d at %p", round, off, &b[0])
			require.Len(t, v.slot.mem, mapSlotSize)
		}
		require.Equal(t, 1, readers[0].maps)
		for _, v := range readers {
			v.Close(nil)
		}
	}
}
