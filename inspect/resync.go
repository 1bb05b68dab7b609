package inspect

import (
	"encoding/binary"
	"io"

	"github.com/ringwal/ringwal/segment"
)

// scanChunk is the size of the reads of findFrame and writtenEnd.
const scanChunk = 256 << 10

// findFrame looks from offset from on, byte by byte, for the first frame
// that is valid on its own (segment.VerifyFrame with the segment's salt,
// and 1 <= Lag <= LSN) and belongs after the damage: LSN >= minLSN and
// Epoch >= minEpoch. A valid frame that does not qualify is stepped over
// whole: its payload is data, not framing. It returns -1 when there is none
// before the written end of the file.
func findFrame(ra io.ReaderAt, size int64, salt uint32, maxRec int, from int64, minLSN uint64, minEpoch uint16) (int64, segment.FrameHeader, error) {
	limit, err := writtenEnd(ra, size, from)
	if err != nil {
		return -1, segment.FrameHeader{}, err
	}
	w := window{ra: ra, size: size}
	var frame []byte
	for p := from; p < limit && size-p >= segment.FrameHeaderSize; {
		b, err := w.view(p, segment.FrameHeaderSize)
		if err != nil {
			return -1, segment.FrameHeader{}, err
		}
		// Cheap tests on the raw header first; only a frame that passes
		// them is worth reading whole and checksumming.
		const typeAt, flagsAt = 20, 21
		if b[typeAt] != segment.TypeRecord || b[flagsAt]&^segment.FrameFlags != 0 {
			p++
			continue
		}
		fh, _ := segment.DecodeFrameHeader(b)
		n := int64(segment.FrameSize(int(fh.Length)))
		if int(fh.Length) > maxRec || n > size-p || fh.Lag == 0 || uint64(fh.Lag) > fh.LSN {
			p++
			continue
		}
		if int64(cap(frame)) < n {
			frame = make([]byte, n)
		}
		frame = frame[:n]
		if err := readFull(ra, frame, p); err != nil {
			return -1, segment.FrameHeader{}, err
		}
		if _, _, err := segment.VerifyFrame(salt, frame); err != nil {
			p++
			continue
		}
		if fh.LSN >= minLSN && fh.Epoch >= minEpoch {
			return p, fh, nil
		}
		p += n
	}
	return -1, segment.FrameHeader{}, nil
}

// writtenEnd returns one past the last non-zero byte of the file at or after
// from, or from when there is none. It reads backwards from the end.
func writtenEnd(ra io.ReaderAt, size, from int64) (int64, error) {
	buf := make([]byte, min(scanChunk, max(size-from, 0)))
	for hi := size; hi > from; {
		lo := max(from, hi-int64(len(buf)))
		b := buf[:hi-lo]
		if err := readFull(ra, b, lo); err != nil {
			return 0, err
		}
		if i := lastNonZero(b); i >= 0 {
			return lo + int64(i) + 1, nil
		}
		hi = lo
	}
	return from, nil
}

func lastNonZero(b []byte) int {
	i := len(b)
	for i >= 8 && binary.LittleEndian.Uint64(b[i-8:]) == 0 {
		i -= 8
	}
	for i > 0 {
		if b[i-1] != 0 {
			return i - 1
		}
		i--
	}
	return -1
}

func readFull(ra io.ReaderAt, p []byte, off int64) error {
	n, err := ra.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// window caches one chunk of a file for small reads that move forward.
type window struct {
	ra   io.ReaderAt
	size int64
	buf  []byte
	off  int64
}

// view returns bytes [off, off+n) of the file, which must lie inside it.
func (w *window) view(off int64, n int) ([]byte, error) {
	if off >= w.off && off+int64(n) <= w.off+int64(len(w.buf)) {
		i := off - w.off
		return w.buf[i : i+int64(n)], nil
	}
	m := min(int64(scanChunk), w.size-off)
	if cap(w.buf) < int(m) {
		w.buf = make([]byte, scanChunk)
	}
	w.buf = w.buf[:m]
	if err := readFull(w.ra, w.buf, off); err != nil {
		return nil, err
	}
	w.off = off
	return w.buf[:n], nil
}
