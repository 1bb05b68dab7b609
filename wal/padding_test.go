package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/segment"
)

// padSize is the payload size of TestDurableBatchesPadded's record lsn: a
// frame of 3500 bytes for durable records 1-10, whose padding (596 bytes
// after a frame that starts on a page) is within a quarter of the batch;
// 1000 bytes for the rest.
func padSize(lsn uint64) int {
	if lsn <= 10 {
		return 3500 - segment.FrameHeaderSize
	}
	return 1000
}

// TestDurableBatchesPadded: on both backends, a batch that appenders wait
// for ends on a page boundary when the padding is at most a quarter of the
// batch, so one durable append at a time puts every record at the start of
// a page; AppendAsync batches, durable batches whose padding would be
// larger, and with NoPadding all batches are packed. Records read back
// whole, after a reopen too; appends after the reopen go on where the last
// record's frame or padding ends, and after a TruncateBack to a padded
// record right after its frame (its padding mark cleared), where a reopened
// log finds them.
func TestDurableBatchesPadded(t *testing.T) {
	for _, be := range []Backend{BackendPwrite, BackendURing} {
		for _, noPad := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/nopadding=%t", be, noPad), func(t *testing.T) {
				dir := t.TempDir()
				o := Options{Backend: be, SegmentSize: 1 << 20, MaxRecordSize: 64 << 10, NoPadding: noPad}
				w := openT(t, dir, o)
				for i := uint64(1); i <= 10; i++ {
					_, err := w.Append(payload(i, padSize(i)))
					require.NoError(t, err)
				}
				for i := uint64(11); i <= 20; i++ {
					_, err := w.AppendAsync(payload(i, padSize(i)))
					require.NoError(t, err)
				}
				require.NoError(t, w.Sync())
				st := w.Stats()
				recs := readAll(t, w, 1)
				require.Equal(t, 20, len(recs))
				end := func(i int) int64 { return recs[i].Offset + int64(segment.FrameSize(padSize(recs[i].LSN))) }
				for i, rec := range recs {
					require.Equal(t, payload(uint64(i+1), padSize(uint64(i+1))), rec.Data)
					switch {
					case i == 0:
						assert.Equal(t, int64(segment.DataOffset), rec.Offset)
					case i <= 10 && !noPad:
						// Records 1-10 were each a durable batch of their own.
						assert.Zero(t, rec.Offset%segment.PageSize, "lsn %d: durable batches are padded", i+1)
						assert.Equal(t, segment.PadToPage(end(i-1)), rec.Offset, "lsn %d", i+1)
					default:
						assert.Equal(t, end(i-1), rec.Offset, "lsn %d: packed", i+1)
					}
				}
				seg := filepath.Join(dir, recs[0].Segment)
				require.NoError(t, w.Close())

				// Reopen: the log ends where the last record's frame (or
				// its padding, if Sync sealed its batch) does, and appends
				// go on from there.
				sr, err := segment.OpenReader(seg, segment.ReaderOptions{})
				require.NoError(t, err)
				for range 20 {
					_, err := sr.Next()
					require.NoError(t, err)
				}
				logEnd := sr.Offset()
				require.NoError(t, sr.Close())
				assert.True(t, logEnd == end(19) || !noPad && logEnd == segment.PadToPage(end(19)), "end %d", logEnd)
				gaps := logEnd - end(19)
				for i := 1; i < 20; i++ {
					gaps += recs[i].Offset - end(i-1)
				}
				assert.Equal(t, uint64(gaps), st.PadBytes, "PadBytes counts every gap")
				if noPad {
					assert.Zero(t, st.PadBytes)
				} else {
					assert.GreaterOrEqual(t, st.PadBytes, uint64(10*596), "padding of the 10 durable records")
				}
				w = openT(t, dir, o)
				_, err = w.Append(payload(21, 1000))
				require.NoError(t, err)
				recs = readAll(t, w, 1)
				require.Equal(t, 21, len(recs))
				assert.Equal(t, payload(21, 1000), recs[20].Data)
				assert.Equal(t, logEnd, recs[20].Offset)

				// TruncateBack to a padded record: the next append goes
				// right after its frame, and a reopened log reads it.
				require.NoError(t, w.TruncateBack(5))
				_, err = w.Append(payload(106, 1000))
				require.NoError(t, err)
				recs = readAll(t, w, 1)
				require.Equal(t, 6, len(recs))
				assert.Equal(t, end(4), recs[5].Offset, "appended right after the kept record")
				require.NoError(t, w.Close())
				w = openT(t, dir, o)
				defer w.Close()
				recs = readAll(t, w, 1)
				require.Equal(t, 6, len(recs))
				assert.Equal(t, payload(106, 1000), recs[5].Data)
			})
		}
		// Durable 1000-byte records one at a time: their padding (3072
		// bytes) would be three times the batch, so they are packed.
		t.Run(fmt.Sprintf("%s/share", be), func(t *testing.T) {
			w := openT(t, t.TempDir(), Options{Backend: be, SegmentSize: 1 << 20, MaxRecordSize: 64 << 10})
			defer w.Close()
			for i := uint64(1); i <= 5; i++ {
				_, err := w.Append(payload(i, 1000))
				require.NoError(t, err)
			}
			recs := readAll(t, w, 1)
			for i := 1; i < len(recs); i++ {
				assert.Equal(t, recs[i-1].Offset+int64(segment.FrameSize(1000)), recs[i].Offset, "lsn %d: packed", i+1)
			}
			assert.Zero(t, w.Stats().PadBytes)
		})
	}
}

// TestVersion1LogAppends: a log written in segment format version 1 (the
// golden intact log) opens and takes durable appends on both backends: its
// last segment stays version 1 and unpadded, the next segment is version 2
// and padded, and every record reads back, after a reopen too.
func TestVersion1LogAppends(t *testing.T) {
	for _, be := range []Backend{BackendPwrite, BackendURing} {
		t.Run(string(be), func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join("..", "testdata", "intact"))))
			o := Options{Backend: be, SegmentSize: 64 << 10, MaxRecordSize: 4096}
			w := openT(t, dir, o)
			first := w.LastLSN() + 1
			require.Equal(t, uint64(238), first)
			for i := range 20 {
				_, err := w.Append(payload(first+uint64(i), padSize(1)))
				require.NoError(t, err)
			}
			require.NoError(t, w.Close())

			w = openT(t, dir, o)
			defer w.Close()
			recs := readAll(t, w, first)
			require.Equal(t, 20, len(recs))
			padded := map[string]bool{}
			for i, rec := range recs {
				require.Equal(t, payload(first+uint64(i), padSize(1)), rec.Data)
				if rec.Offset%segment.PageSize == 0 && i > 0 && recs[i-1].Segment == rec.Segment {
					padded[rec.Segment] = true
				}
			}
			versions := map[string]uint16{}
			for _, s := range segPaths(t, dir) {
				sr, err := segment.OpenReader(s, segment.ReaderOptions{})
				require.NoError(t, err)
				versions[filepath.Base(s)] = sr.Header().Version
				require.NoError(t, sr.Close())
			}
			old := "00000000000000000151.seg"
			assert.Equal(t, uint16(1), versions[old], "the version 1 segment appended to stays version 1")
			assert.False(t, padded[old], "and unpadded")
			assert.Equal(t, old, recs[0].Segment)
			last := recs[len(recs)-1].Segment
			assert.NotEqual(t, old, last, "the appends rotated")
			assert.Equal(t, uint16(segment.Version), versions[last])
			assert.True(t, padded[last], "the new segment's durable batches are padded")
		})
	}
}
