package segment

import (
	"bytes"
	"errors"
	stdcrc32 "hash/crc32"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// memFile is an in-memory file: an io.ReaderAt and io.WriterAt that grows on
// writes past its end.
type memFile struct{ b []byte }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("memFile: negative offset")
	}
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

// Test segments: a fixed salt and base LSN, 16 KiB preallocated.
const (
	testSalt    = 0x5a17c0de
	testBaseLSN = 100
	testSegSize = 16 << 10
)

func testHeader() Header {
	return Header{Seq: 7, BaseLSN: testBaseLSN, Size: testSegSize, Salt: testSalt, Created: 1_700_000_000_000_000_000}
}

// frameSpec describes a frame for a test segment. Zero fields take the
// defaults of a plain sequential writer.
type frameSpec struct {
	n     int    // payload length
	lsn   uint64 // 0: the next LSN in sequence
	lag   uint32 // 0: 1
	flags uint8
	epoch uint16
	typ   uint8 // 0: TypeRecord
	fill  byte  // 0: a pattern derived from the LSN
}

// placed is where a frame landed.
type placed struct {
	off, end int64
	lsn      uint64
	epoch    uint16
	payload  []byte
}

// testSeg is a segment file built in memory.
type testSeg struct {
	data   []byte
	frames []placed
}

// payloadFor returns deterministic, never-zero payload bytes for lsn.
func payloadFor(lsn uint64, n int, fill byte) []byte {
	p := make([]byte, n)
	for i := range p {
		if fill != 0 {
			p[i] = fill
		} else {
			p[i] = 'a' + byte((lsn+uint64(i))%26)
		}
	}
	return p
}

// newSeg builds a segment with testHeader and the given frames laid from
// DataOffset on with LSNs from the base LSN.
func newSeg(t testing.TB, specs ...frameSpec) *testSeg {
	t.Helper()
	s := &testSeg{data: make([]byte, testSegSize)}
	h := testHeader()
	h.MarshalTo(s.data)
	s.frames = s.lay(DataOffset, testBaseLSN, specs...)
	return s
}

// lay writes frames at off, numbering them from lsn unless a spec says
// otherwise, and returns where they landed.
func (s *testSeg) lay(off int64, lsn uint64, specs ...frameSpec) []placed {
	var out []placed
	for _, sp := range specs {
		if sp.lsn != 0 {
			lsn = sp.lsn
		}
		lag := sp.lag
		if lag == 0 {
			lag = 1
		}
		payload := payloadFor(lsn, sp.n, sp.fill)
		frame := AppendFrame(nil, testSalt, FrameHeader{LSN: lsn, Lag: lag, Type: sp.typ, Flags: sp.flags, Epoch: sp.epoch}, payload)
		copy(s.data[off:], frame)
		out = append(out, placed{off: off, end: off + int64(len(frame)), lsn: lsn, epoch: sp.epoch, payload: payload})
		off = FrameEnd(off, sp.n, sp.flags)
		lsn++
	}
	return out
}

// seqFrames returns specs for frames of the given payload lengths.
func seqFrames(sizes ...int) []frameSpec {
	specs := make([]frameSpec, len(sizes))
	for i, n := range sizes {
		specs[i].n = n
	}
	return specs
}

// writtenEndOf returns one past the last non-zero byte of data at or after
// from, or from: the End a TornTailError must report.
func writtenEndOf(data []byte, from int64) int64 {
	if from >= int64(len(data)) {
		return from
	}
	if i := lastNonZero(data[from:]); i >= 0 {
		return from + int64(i) + 1
	}
	return from
}

// readResult is everything a reader produced for one file.
type readResult struct {
	recs []Record // payloads copied
	err  error    // the error that ended reading (io.EOF for a clean end)
	r    *Reader
}

// readAll reads data to its end with a Reader and checks on the way that
// every record it returns verifies independently.
func readAll(t testing.TB, data []byte, opts ReaderOptions) readResult {
	t.Helper()
	return readAllFrom(t, bytes.NewReader(data), data, opts)
}

// readAllFrom is readAll reading data through ra.
func readAllFrom(t testing.TB, ra io.ReaderAt, data []byte, opts ReaderOptions) readResult {
	t.Helper()
	r, err := NewReader(ra, int64(len(data)), opts)
	if err != nil {
		return readResult{err: err}
	}
	var res readResult
	res.r = r
	for {
		rec, err := r.Next()
		if err != nil {
			res.err = err
			_, again := r.Next()
			require.Equal(t, err, again, "errors are sticky")
			return res
		}
		verifyRecord(t, data, r.Header().Salt, rec)
		rec.Payload = bytes.Clone(rec.Payload)
		res.recs = append(res.recs, rec)
	}
}

// verifyRecord checks a returned record against the raw file bytes with a
// checksum computed here, independently of the reader.
func verifyRecord(t testing.TB, data []byte, salt uint32, rec Record) {
	t.Helper()
	end := rec.Offset + int64(FrameSize(len(rec.Payload)))
	require.LessOrEqual(t, end, int64(len(data)))
	frame := data[rec.Offset:end]
	require.Equal(t, frame[FrameHeaderSize:], rec.Payload, "payload is the file's bytes")
	require.Equal(t, independentCRC(salt, frame), le32(frame[0:]), "checksum of lsn %d at %d", rec.LSN, rec.Offset)
	require.Equal(t, rec.LSN, le64(frame[8:]))
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
func le64(b []byte) uint64 { return uint64(le32(b)) | uint64(le32(b[4:]))<<32 }

// lsns returns the LSNs of recs.
func lsns(recs []Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.LSN)
	}
	return out
}

// lsnRange returns [from, to].
func lsnRange(from, to uint64) []uint64 {
	var out []uint64
	for l := from; l <= to; l++ {
		out = append(out, l)
	}
	return out
}

// stdCastagnoli is the standard library's CRC-32C table: tests check the
// format with an implementation other than the one the package uses.
var stdCastagnoli = stdcrc32.MakeTable(stdcrc32.Castagnoli)

// independentCRC computes a frame's checksum as the spec states it.
func independentCRC(salt uint32, frame []byte) uint32 {
	return stdcrc32.Update(salt, stdCastagnoli, frame[4:])
}
