//go:build linux

package segment

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// countingFile counts the bytes read through it; its Seek is the file's.
type countingFile struct {
	*os.File
	read int64
}

func (c *countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.File.ReadAt(p, off)
	c.read += int64(n)
	return n, err
}

// noSeek hides the file's Seek: the reader must then read everything.
type noSeek struct{ io.ReaderAt }

// TestHolesAreNotRead: a segment whose space after the records was
// fallocated and never written ends where its records end, found without
// reading the hole (the file's extents, FS_IOC_FIEMAP), with the same
// outcome as reading every byte, also when the hole's zero pages are cached
// (lseek's SEEK_HOLE counts those as data); non-zero bytes written after a
// hole are still found, synced or still in the page cache.
func TestHolesAreNotRead(t *testing.T) {
	const size = 64 << 20
	s := newSeg(t, seqFrames(stdSizes...)...)
	end := s.frames[len(s.frames)-1].end
	outcome := func(t *testing.T, ra io.ReaderAt) (int, error) {
		r, err := NewReader(ra, size, ReaderOptions{BufferSize: 1 << 20})
		require.NoError(t, err)
		n := 0
		for {
			if _, err := r.Next(); err != nil {
				return n, err
			}
			n++
		}
	}
	for _, tail := range []string{"hole", "cached hole", "garbage after a hole", "unsynced garbage after a hole"} {
		t.Run(tail, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seg")
			f, err := os.Create(path)
			require.NoError(t, err)
			defer f.Close()
			require.NoError(t, unix.Fallocate(int(f.Fd()), 0, 0, size))
			_, err = f.WriteAt(s.data[:end], 0)
			require.NoError(t, err)
			require.NoError(t, f.Sync())
			// Drop the cached pages (FADV_DONTNEED starts writeback of
			// dirty ones: the unsynced garbage is written after it).
			require.NoError(t, unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED))
			hole := !strings.Contains(tail, "garbage")
			if !hole {
				_, err = f.WriteAt([]byte("stale bytes"), size-4096)
				require.NoError(t, err)
				if !strings.HasPrefix(tail, "unsynced") {
					require.NoError(t, f.Sync())
				}
			}
			if tail == "cached hole" {
				// Read the whole file: the hole's zero pages are cached.
				_, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, size))
				require.NoError(t, err)
				if d, err := unix.Seek(int(f.Fd()), int64(end), unix.SEEK_HOLE); err == nil {
					t.Logf("SEEK_HOLE from the end of the records: %d (records end at %d)", d, end)
				}
			}

			cf := &countingFile{File: f}
			n, err := outcome(t, cf)
			wantN, wantErr := outcome(t, noSeek{f})
			assert.Equal(t, wantN, n)
			assert.Equal(t, len(stdSizes), n)
			if hole {
				assert.ErrorIs(t, err, io.EOF)
				assert.ErrorIs(t, wantErr, io.EOF)
				// The first window (1 MiB) and the zeros after the records
				// up to the end of their block, not the hole. Where the file
				// system lists no extents (tmpfs), lseek finds the hole but
				// counts the pages read-ahead cached (a few MiB) as data.
				limit := int64(2 << 20)
				if _, ok := extentDataEnd(f, 0, size); !ok {
					t.Logf("the file system lists no extents: lseek only")
					limit = size / 4
				}
				assert.LessOrEqual(t, cf.read, limit, "the hole is skipped, not read")
				t.Logf("read %d of %d bytes", cf.read, size)
			} else {
				var te, wantTe *TornTailError
				require.True(t, errors.As(err, &te), "%v", err)
				require.True(t, errors.As(wantErr, &wantTe), "%v", wantErr)
				assert.Equal(t, wantTe.End, te.End)
				assert.Equal(t, int64(size-4096+len("stale bytes")), te.End)
			}
		})
	}
}

// TestExtentDataEnd: the end of the data found from a file's extents, over
// more extents than one FS_IOC_FIEMAP call returns (written blocks between
// unwritten and never-allocated space), from several starting offsets, on
// a file opened read-only, is one past the last written block at or after
// the start, or the start when nothing is written after it.
func TestExtentDataEnd(t *testing.T) {
	const size = 64 << 20
	path := filepath.Join(t.TempDir(), "seg")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	// Fallocated first half, sparse second half; a written block every
	// 256 KiB through both: about 250 extents of each kind.
	require.NoError(t, unix.Fallocate(int(f.Fd()), 0, 0, size/2))
	require.NoError(t, f.Truncate(size))
	block := bytes.Repeat([]byte{0xA5}, 4096)
	var written []int64
	for off := int64(0); off < size-(1<<20); off += 256 << 10 {
		_, err := f.WriteAt(block, off)
		require.NoError(t, err)
		written = append(written, off)
	}
	require.NoError(t, f.Sync())
	ro, err := os.Open(path)
	require.NoError(t, err)
	defer ro.Close()
	if _, ok := extentDataEnd(ro, 0, size); !ok {
		t.Skip("the file system lists no extents")
	}
	last := written[len(written)-1] + 4096
	for _, x := range []int64{0, 4096, size/2 - 100, size / 2, last - 1, last, size - 1} {
		want := x
		if x < last {
			want = last
		}
		got, ok := extentDataEnd(ro, x, size)
		require.True(t, ok)
		assert.Equal(t, want, got, "from %d", x)
	}
	// A size that cuts a written block: the end is the size.
	got, ok := extentDataEnd(ro, 0, written[10]+100)
	require.True(t, ok)
	assert.Equal(t, written[10]+100, got, "a size inside a written block")
}
