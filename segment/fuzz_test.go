package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fuzzMaxRecord is the record limit the fuzzed readers run with: above every
// payload of the seeds, small enough that mutated lengths cross it.
const fuzzMaxRecord = 4096

// seedFiles returns the files of the golden logs in testdata.
func seedFiles(f testing.TB) [][]byte {
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*", "*"))
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, p := range paths {
		if filepath.Base(p) == "README.md" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		f.Fatal("no seed files in testdata; run go test ./segment -run TestGolden -update")
	}
	return out
}

// FuzzReader reads arbitrary bytes as a segment file. The reader must not
// panic, must return only records whose checksum verifies (checked here with
// the standard library's CRC-32C, from the raw bytes), in LSN and offset
// order, and must never read or hold a payload above the record limit.
//
// The input comes in two parts so that the fuzzer does not spend its time on
// the 4 KiB of zeros between header and frames: the file is hdr, and when
// frames is not empty, hdr padded with zeros (or cut) to DataOffset followed
// by frames. The seeds are the golden logs of testdata, split that way.
func FuzzReader(f *testing.F) {
	for _, b := range seedFiles(f) {
		if len(b) <= DataOffset {
			f.Add(b, []byte(nil))
			continue
		}
		f.Add(b[:HeaderSize], b[DataOffset:min(len(b), DataOffset+1500)])
		// The tail end of the log, where the damage mostly is.
		if end := writtenEndOf(b, DataOffset); end > DataOffset+1500 {
			f.Add(b[:HeaderSize], b[max(DataOffset, end-1500):min(int64(len(b)), end+100)])
		}
	}
	f.Fuzz(func(t *testing.T, hdr, frames []byte) {
		data := hdr
		if len(frames) > 0 {
			data = make([]byte, DataOffset+len(frames))
			copy(data, hdr[:min(len(hdr), DataOffset)])
			copy(data[DataOffset:], frames)
		}
		fuzzRead(t, data)
		// Mutations of the header mostly break its checksum; read the
		// frames again behind a repaired header so they get explored too.
		if len(data) >= HeaderSize {
			fixed := bytes.Clone(data)
			repairHeader(fixed)
			fuzzRead(t, fixed)
			viewerRead(t, fixed)
		}
	})
}

// sizeCheckingReaderAt records the largest read.
type sizeCheckingReaderAt struct {
	r       io.ReaderAt
	maxRead int
}

func (s *sizeCheckingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	s.maxRead = max(s.maxRead, len(p))
	return s.r.ReadAt(p, off)
}

// viewerRead reads data through a lending Viewer and through a plain
// io.ReaderAt: the same records and the same end.
func viewerRead(t *testing.T, data []byte) {
	opts := ReaderOptions{MaxRecordSize: fuzzMaxRecord, BufferSize: 24 + len(data)%977}
	want := readAllFrom(t, bytes.NewReader(data), data, opts)
	got := readAllFrom(t, newLendingViewer(data, uint64(len(data))), data, opts)
	if len(want.recs) != len(got.recs) {
		t.Fatalf("%d records through a Viewer, %d through ReadAt", len(got.recs), len(want.recs))
	}
	for i := range want.recs {
		if !reflect.DeepEqual(want.recs[i], got.recs[i]) {
			t.Fatalf("record %d: %+v through a Viewer, %+v through ReadAt", i, got.recs[i], want.recs[i])
		}
	}
	if fmt.Sprint(want.err) != fmt.Sprint(got.err) {
		t.Fatalf("end through a Viewer: %v; through ReadAt: %v", got.err, want.err)
	}
}

func fuzzRead(t *testing.T, data []byte) {
	// Vary the read size with the input so that windows end everywhere.
	bufSize := 24 + len(data)%977
	ra := &sizeCheckingReaderAt{r: bytes.NewReader(data)}
	r, err := NewReader(ra, int64(len(data)), ReaderOptions{MaxRecordSize: fuzzMaxRecord, BufferSize: bufSize})
	if err != nil {
		if !errors.Is(err, ErrNoHeader) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("NewReader: unexpected error %v", err)
		}
		return
	}
	salt := binary.LittleEndian.Uint32(data[hdrSalt:])
	lsn := binary.LittleEndian.Uint64(data[hdrBaseLSN:])
	off := int64(DataOffset)
	for n := 0; ; n++ {
		if n > len(data)/FrameHeaderSize {
			t.Fatalf("more records than frames fit in %d bytes", len(data))
		}
		rec, err := r.Next()
		if err != nil {
			checkEnd(t, err, r, int64(len(data)), off)
			break
		}
		if rec.Offset != off || rec.LSN != lsn {
			t.Fatalf("record lsn %d at %d, want lsn %d at %d", rec.LSN, rec.Offset, lsn, off)
		}
		if len(rec.Payload) > fuzzMaxRecord {
			t.Fatalf("payload of %d bytes above the limit", len(rec.Payload))
		}
		end := off + int64(FrameSize(len(rec.Payload)))
		if end > int64(len(data)) {
			t.Fatalf("record at %d runs past the end of the file", off)
		}
		frame := data[off:end]
		if got, want := independentCRC(salt, frame), binary.LittleEndian.Uint32(frame); got != want || rec.CRC != want {
			t.Fatalf("record lsn %d at %d: checksum %#x, stored %#x, reported %#x", rec.LSN, off, got, want, rec.CRC)
		}
		if frame[frmType] != TypeRecord || !bytes.Equal(frame[FrameHeaderSize:], rec.Payload) {
			t.Fatalf("record lsn %d at %d does not match the file", rec.LSN, off)
		}
		off, lsn = end, lsn+1
	}
	if cap(r.big) > fuzzMaxRecord {
		t.Fatalf("payload buffer of %d bytes above the limit", cap(r.big))
	}
	if ra.maxRead > max(fuzzMaxRecord, bufSize) {
		t.Fatalf("read of %d bytes", ra.maxRead)
	}
	// Next's fast path (a valid frame inside the window) must change
	// nothing: the same records and the same ending without it.
	fast, slow := readOutcome(t, data, bufSize, false), readOutcome(t, data, bufSize, true)
	if fast != slow {
		t.Fatalf("fast path changes the outcome:\nwith:    %s\nwithout: %s", fast, slow)
	}
}

// readOutcome reads data to its end and describes every record (LSN,
// offset, flags, epoch, lag, checksum, payload) and the error that ended it.
func readOutcome(t *testing.T, data []byte, bufSize int, slowOnly bool) string {
	return readOutcomeWith(t, data, bufSize, fuzzMaxRecord, slowOnly)
}

func readOutcomeWith(t *testing.T, data []byte, bufSize, maxRec int, slowOnly bool) string {
	r, err := NewReader(bytes.NewReader(data), int64(len(data)), ReaderOptions{MaxRecordSize: maxRec, BufferSize: bufSize})
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	r.slowOnly = slowOnly
	var b strings.Builder
	for {
		rec, err := r.Next()
		if err != nil {
			fmt.Fprintf(&b, "end %v at %+v", err, r.Position())
			return b.String()
		}
		fmt.Fprintf(&b, "[%d@%d f%d e%d l%d c%x %x] ", rec.LSN, rec.Offset, rec.Flags, rec.Epoch, rec.Lag, rec.CRC, rec.Payload)
	}
}

// checkEnd checks the error that ended a read: one of the three outcomes,
// with positions inside the file.
func checkEnd(t *testing.T, err error, r *Reader, size, off int64) {
	var te *TornTailError
	var ce *CorruptionError
	switch {
	case err == io.EOF:
		if r.Offset() != off {
			t.Fatalf("clean end at %d, last record ended at %d", r.Offset(), off)
		}
	case errors.As(err, &te):
		if te.Offset < DataOffset || te.Offset > off || te.End < te.Offset || te.End > max(size, off) {
			t.Fatalf("torn tail out of range: %v (size %d, last record end %d)", te, size, off)
		}
	case errors.As(err, &ce):
		if ce.Offset != off {
			t.Fatalf("corruption at %d, want at %d: %v", ce.Offset, off, ce)
		}
	default:
		t.Fatalf("unexpected error %v", err)
	}
}

// repairHeader makes b's header valid while keeping its salt, base LSN and
// recycled flag.
func repairHeader(b []byte) {
	h := Header{
		Seq:     max(1, binary.LittleEndian.Uint64(b[hdrSeq:])),
		BaseLSN: max(1, binary.LittleEndian.Uint64(b[hdrBaseLSN:])),
		Size:    DataOffset,
		Salt:    binary.LittleEndian.Uint32(b[hdrSalt:]),
		Flags:   binary.LittleEndian.Uint32(b[hdrFlags:]) & HeaderFlagRecycled, // both end rules get fuzzed
	}
	h.MarshalTo(b)
}

// FuzzHeader parses arbitrary header bytes: no panic, only the documented
// errors, and a header that parses marshals back to the same bytes.
func FuzzHeader(f *testing.F) {
	for _, b := range seedFiles(f) {
		f.Add(b[:min(len(b), HeaderSize)])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrNoHeader) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		var out [HeaderSize]byte
		h.MarshalTo(out[:])
		if !bytes.Equal(out[:], b[:HeaderSize]) {
			t.Fatalf("header %+v does not marshal back to its bytes", h)
		}
	})
}

// FuzzFileName checks that only names FileName makes parse, and that they
// round-trip.
func FuzzFileName(f *testing.F) {
	for _, s := range []string{FileName(1), FileName(1) + TempFileSuffix, "notes.txt", "0001.seg", "18446744073709551615.seg", "18446744073709551616.seg"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		base, ok := ParseFileName(name)
		if ok && FileName(base) != name {
			t.Fatalf("%q parses as %d, which is named %q", name, base, FileName(base))
		}
		if len(name) >= 8 {
			lsn := binary.LittleEndian.Uint64([]byte(name))
			if got, ok := ParseFileName(FileName(lsn)); lsn != 0 && (!ok || got != lsn) {
				t.Fatalf("FileName(%d) does not parse back", lsn)
			}
		}
	})
}

// FuzzDeferredChecksums lays records of fuzzed sizes into buffers of a
// fuzzed size with the checksums deferred, fills them in with
// ChecksumFrames over the buffers as laid (frames, headers and checksum
// fields split anywhere), and requires the very bytes an encoder that
// checksums as it lays produces. With an odd buffer size the frames end
// with PadToPage where the last one allows it, and the padded bytes must
// match the direct encoder's too.
func FuzzDeferredChecksums(f *testing.F) {
	f.Add(uint16(7), []byte{0, 1, 23, 24, 200, 5})
	f.Add(uint16(1), []byte{3, 0, 0, 255})
	f.Add(uint16(4096), []byte{100, 200, 50})
	f.Add(uint16(8191), []byte{100, 200, 50, 7})
	f.Fuzz(func(t *testing.T, bufSize uint16, sizes []byte) {
		if bufSize == 0 || len(sizes) > 64 {
			return
		}
		var want []byte
		direct := NewEncoder(testSalt, 1, 0)
		deferred := NewEncoder(testSalt, 1, 0)
		deferred.DeferChecksums()
		bufs := [][]byte{make([]byte, bufSize)}
		deferred.Reset(bufs[0], DataOffset, testBaseLSN)
		var last struct {
			p     []byte
			lsn   uint64
			flags uint8
		}
		for i, s := range sizes {
			n := int(s) * 3 // up to 765 bytes: many buffers per frame when they are small
			lsn := uint64(testBaseLSN + i)
			p := payloadFor(lsn, n, 0)
			flags := uint8(i % 2)
			last.p, last.lsn, last.flags = p, lsn, flags
			one := make([]byte, FrameSize(n))
			direct.Reset(one, DataOffset, lsn)
			if _, _, err := direct.Append(p, lsn-1, flags); err != nil {
				t.Fatal(err)
			}
			want = append(want, one...)
			if _, _, err := deferred.AppendSplit(p, lsn-1, flags); err != nil {
				t.Fatal(err)
			}
			for deferred.Pending() > 0 {
				bufs[len(bufs)-1] = deferred.Bytes()
				bufs = append(bufs, make([]byte, bufSize))
				deferred.Continue(bufs[len(bufs)-1])
			}
		}
		if bufSize%2 == 1 && len(sizes) > 0 {
			if pad, ok := deferred.PadToPage(); ok {
				// The same last frame, directly encoded and padded.
				size := FrameSize(len(last.p))
				at := int64(DataOffset + len(want) - size)
				one := make([]byte, size+pad)
				direct.Reset(one, at, last.lsn)
				if _, _, err := direct.Append(last.p, last.lsn-1, last.flags); err != nil {
					t.Fatal(err)
				}
				if n, ok := direct.PadToPage(); !ok || n != pad {
					t.Fatalf("direct PadToPage at %d: %d, %t; deferred padded %d", at, n, ok, pad)
				}
				want = append(want[:len(want)-size], one...)
			}
		}
		bufs[len(bufs)-1] = deferred.Bytes()
		if err := ChecksumFrames(testSalt, bufs); err != nil {
			t.Fatal(err)
		}
		if got := bytes.Join(bufs, nil); !bytes.Equal(got, want) {
			t.Fatalf("buffers of %d bytes, sizes %v: deferred checksums differ from direct ones", bufSize, sizes)
		}
	})
}
