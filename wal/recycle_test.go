package wal

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/segment"
)

// recycleFiles lists the files kept for reuse in dir.
func recycleFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "recycle-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// A log that drops old segments as it goes reuses their files: after the
// first few, no segment is prepared (no zeros, no fallocate), the segments
// written into recycled files say so in their headers, and every record
// reads back, before and after reopening, whichever way Open reads sealed
// segments.
func TestRecycleSegments(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		for _, verify := range []bool{false, true} {
			dir := t.TempDir()
			o := smallOpts(be)
			o.VerifyOnOpen = verify
			w := openT(t, dir, o)
			var want [][]byte
			for i := range 600 {
				p := payload(uint64(i), 700+i%900)
				lsn, err := w.Append(p)
				require.NoError(t, err)
				require.Equal(t, uint64(i+1), lsn)
				want = append(want, p)
				if i%50 == 49 {
					// A checkpoint: keep the last 100 records.
					require.NoError(t, w.TruncateFront(max(100, lsn)-99))
					// The pool, and one the preparer may hold ready for
					// the next rotation.
					require.LessOrEqual(t, len(recycleFiles(t, dir)), DefaultRecycle+1)
				}
			}
			st := w.Stats()
			require.Greater(t, st.Recycled, uint64(5), "%v", st)
			prepared := w.prep.prepared[0].Load() + w.prep.prepared[1].Load()
			require.Less(t, prepared, st.Rotations-st.Recycled+2,
				"every rotation but the recycled ones prepared a file (prepared %d, rotations %d, recycled %d)", prepared, st.Rotations, st.Recycled)
			require.Contains(t, st.String(), "recycled=")
			var recycledSegs int
			for _, s := range w.segs {
				if s.hdr.Recycled() {
					recycledSegs++
				}
			}
			require.Positive(t, recycledSegs)
			checkRecords(t, w, w.FirstLSN(), want)
			require.NoError(t, w.Close())
			require.Empty(t, recycleFiles(t, dir), "Close removes the kept files")

			w = openT(t, dir, o)
			checkRecords(t, w, w.FirstLSN(), want)
			// And the log goes on from there.
			lsn, err := w.Append([]byte("after"))
			require.NoError(t, err)
			require.Equal(t, uint64(len(want)+1), lsn)
			require.NoError(t, w.Close())
		}
	})
}

// checkRecords reads [from, len(want)] with Read and with a Reader.
func checkRecords(t *testing.T, w *WAL, from uint64, want [][]byte) {
	t.Helper()
	for lsn := from; lsn <= uint64(len(want)); lsn++ {
		got, err := w.Read(lsn)
		require.NoError(t, err, "lsn %d", lsn)
		require.Equal(t, want[lsn-1], got, "lsn %d", lsn)
	}
	recs := readAll(t, w, from) // to io.EOF
	require.Len(t, recs, len(want)-int(from)+1)
	for i, rec := range recs {
		require.Equal(t, want[from-1+uint64(i)], rec.Data, "lsn %d", rec.LSN)
	}
}

// RecycleSegments < 0 removes what TruncateFront drops, as before.
func TestRecycleSegmentsOff(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(BackendPwrite)
	o.RecycleSegments = -1
	w := openT(t, dir, o)
	for i := range 300 {
		lsn, err := w.Append(payload(uint64(i), 1000))
		require.NoError(t, err)
		if i%50 == 49 {
			require.NoError(t, w.TruncateFront(lsn))
			require.Empty(t, recycleFiles(t, dir))
		}
	}
	require.Zero(t, w.Stats().Recycled)
	require.NoError(t, w.Close())
}

// A Reader whose segment is dropped and whose file is then written again as
// a new segment never reports the new bytes as damage: it returns the
// records it was reading, from what it had read, or says they are gone.
func TestReaderOverRecycledFile(t *testing.T) {
	backends(t, func(t *testing.T, be Backend) {
		dir := t.TempDir()
		// Segments larger than the Reader's window, so that it reads the
		// dropped file again after the file was reused.
		o := Options{SegmentSize: 2 << 20, BufferSize: 64 << 10, BufferCount: 8, MaxRecordSize: 64 << 10, Backend: be}
		w := openT(t, dir, o)
		defer w.Close()
		var want [][]byte
		appendN := func(n int) {
			for range n / 50 { // in atomic batches of 50: quicker
				var recs [][]byte
				for range 50 {
					recs = append(recs, payload(uint64(len(want)+len(recs)), 1500))
				}
				first, err := w.AppendBatch(recs)
				require.NoError(t, err)
				require.Equal(t, uint64(len(want)+1), first)
				want = append(want, recs...)
			}
		}
		appendN(4000) // three segments
		r, err := w.NewReader(1)
		require.NoError(t, err)
		defer r.Close()
		rec, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, want[0], rec.Data)
		// Drop everything but the active segment, then write enough for
		// the dropped files to be reused.
		require.NoError(t, w.TruncateFront(w.LastLSN()))
		appendN(3000)
		require.Equal(t, uint64(2), w.Stats().Recycled)
		for lsn := uint64(2); ; lsn++ {
			rec, err := r.Next()
			if err != nil {
				require.ErrorIs(t, err, ErrOutOfRange, "lsn %d", lsn)
				require.False(t, errors.Is(err, segment.ErrCorrupt), "lsn %d: %v", lsn, err)
				break
			}
			require.Equal(t, want[lsn-1], rec.Data, "lsn %d", lsn)
		}
	})
}

// The kept files are temporary files: a crash leaves them behind, and the
// next Open removes them with the other leftovers.
func TestRecycleFilesRemovedAtOpen(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(BackendPwrite)
	w := openT(t, dir, o)
	for i := range 300 {
		_, err := w.Append(payload(uint64(i), 1000))
		require.NoError(t, err)
	}
	require.NoError(t, w.TruncateFront(w.LastLSN()))
	kept := recycleFiles(t, dir)
	require.Len(t, kept, DefaultRecycle)
	// A crash: copy the directory as it is now.
	crashed := t.TempDir()
	require.NoError(t, os.CopyFS(crashed, os.DirFS(dir)))
	require.NoError(t, w.Close())
	w2 := openT(t, crashed, o)
	require.Empty(t, recycleFiles(t, crashed))
	require.Equal(t, uint64(300), w2.LastLSN())
	require.NoError(t, w2.Close())
}

// A recycled file never gets the salt its stale frames were written with:
// they would verify.
func TestSaltOtherThan(t *testing.T) {
	const old = 0xfeedbeef
	for range 100 {
		require.NotEqual(t, uint32(old), saltOtherThan(old, old))
	}
	require.Equal(t, uint32(7), saltOtherThan(old, 7))
}

// Rotation into a recycled file draws a salt other than the dropped
// segment's, from what TruncateFront knew of it.
func TestRecycledSaltDiffers(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, smallOpts(BackendPwrite))
	defer w.Close()
	salts := map[uint32]bool{}
	for i := range 600 {
		lsn, err := w.Append(payload(uint64(i), 1000))
		require.NoError(t, err)
		if i%50 == 49 {
			w.mu.Lock()
			for _, s := range w.segs {
				salts[s.hdr.Salt] = true
			}
			w.mu.Unlock()
			require.NoError(t, w.TruncateFront(lsn))
		}
	}
	require.Positive(t, w.Stats().Recycled)
	w.prep.mu.Lock()
	defer w.prep.mu.Unlock()
	require.NotEmpty(t, w.prep.recycle)
	for _, k := range w.prep.recycle {
		require.True(t, salts[k.salt], "a kept file remembers the salt of the segment it held")
	}
}
