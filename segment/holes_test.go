//go:build linux

package segment

import (
	"errors"
	"io"
	"os"
	"path/filepath"
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
// reading the hole (lseek SEEK_DATA / SEEK_HOLE), with the same outcome as
// reading every byte; non-zero bytes written after a hole are still found.
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
	for _, tail := range []string{"hole", "garbage after a hole"} {
		t.Run(tail, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seg")
			f, err := os.Create(path)
			require.NoError(t, err)
			defer f.Close()
			require.NoError(t, unix.Fallocate(int(f.Fd()), 0, 0, size))
			_, err = f.WriteAt(s.data[:end], 0)
			require.NoError(t, err)
			if tail != "hole" {
				_, err = f.WriteAt([]byte("stale bytes"), size-4096)
				require.NoError(t, err)
			}
			require.NoError(t, f.Sync())
			// Drop the cached pages: cached zero pages of an unwritten
			// extent count as data for SEEK_HOLE.
			require.NoError(t, unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED))

			cf := &countingFile{File: f}
			n, err := outcome(t, cf)
			wantN, wantErr := outcome(t, noSeek{f})
			assert.Equal(t, wantN, n)
			assert.Equal(t, len(stdSizes), n)
			if tail == "hole" {
				assert.ErrorIs(t, err, io.EOF)
				assert.ErrorIs(t, wantErr, io.EOF)
				// Only what the first window and the kernel's read-ahead cached
				// is read again (cached zero pages count as data).
				assert.Less(t, cf.read, int64(size/4), "the hole is skipped, not read")
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
