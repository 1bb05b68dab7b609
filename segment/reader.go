package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/klauspost/crc32"
)

// Viewer is an io.ReaderAt that can lend its own bytes instead of copying
// them, such as a reader over buffers its reads land in. A Reader whose
// io.ReaderAt is a Viewer takes its window from View, and uses ReadAt only
// for the header and for records larger than its window.
type Viewer interface {
	io.ReaderAt
	// View returns the bytes of the file from off on, at least least and at
	// most most of them (least <= most; the Reader asks only for bytes
	// inside the file). Fewer than least is an error, which err explains.
	// The slice is valid until the next call to View or ReadAt, and the
	// Reader does not write to it.
	View(off int64, least, most int) ([]byte, error)
}

// ReaderOptions configures a Reader. The zero value is ready to use.
type ReaderOptions struct {
	// MaxRecordSize is the largest payload the reader accepts; a frame that
	// claims more is invalid. Zero means DefaultMaxRecordSize. It must not
	// exceed MaxRecordSizeLimit, and it must be at least the limit the
	// writer used, or records the writer accepted read as damage.
	MaxRecordSize int
	// FileBaseLSN, when not zero, is the base LSN named by the file name
	// (ParseFileName); a header with another BaseLSN is corruption.
	// OpenReader fills it in from the path.
	FileBaseLSN uint64
	// Name names the segment in errors. OpenReader uses the path.
	Name string
	// BufferSize is the size of the reads issued to the io.ReaderAt, and of
	// the buffer the reader keeps for them. Zero means DefaultBufferSize;
	// other values below FrameHeaderSize are raised to it.
	BufferSize int
	// Buffer, when its capacity is at least the window the reader needs
	// (BufferSize, or the file size if smaller), is used for the window
	// instead of a buffer of the reader's own, so a caller reading many
	// segments in turn can allocate one. The reader owns it until the
	// caller stops using the reader; a record's Payload may point into it.
	Buffer []byte
	// LastLSN, when not zero, is the LSN of the segment's last record, known
	// to the caller from the base LSN of the segment after it (a sealed
	// segment). In a recycled segment (Header.Recycled) the reader returns
	// io.EOF once it has returned that record, without looking at the stale
	// bytes after it; other segments are read to their end as usual.
	LastLSN uint64
}

// Record is one record returned by Reader.Next.
type Record struct {
	// LSN is the record's log sequence number.
	LSN uint64
	// Offset is the offset of the record's frame in the segment file.
	Offset int64
	// Payload is the record's data. It is valid until the next call to
	// Next, NextInto or Seek: copy it to keep it. (Read through a Viewer,
	// it may be the Viewer's own bytes.)
	Payload []byte
	// Flags are the frame flags (FlagBatchContinues, FlagPadToPage).
	Flags uint8
	// Epoch is the writer incarnation that wrote the frame.
	Epoch uint16
	// Lag is the frame's lag: every LSN <= LSN-Lag was acknowledged when the
	// frame was written.
	Lag uint32
	// CRC is the frame checksum, which the reader verified.
	CRC uint32
}

// BatchContinues reports whether the record's atomic batch continues with
// the next record. A caller that applies records as it reads holds such
// records back until the batch's last record arrives: if the segment ends
// first, Next returns a *TornTailError whose Offset and LSN are those of the
// batch's first record.
func (r Record) BatchContinues() bool { return r.Flags&FlagBatchContinues != 0 }

// Padded reports whether the record's frame is followed by padding up to
// the next page boundary (FlagPadToPage): the end of a durable batch.
func (r Record) Padded() bool { return r.Flags&FlagPadToPage != 0 }

// End returns where the frame after the record's starts (FrameEnd).
func (r Record) End() int64 { return FrameEnd(r.Offset, len(r.Payload), r.Flags) }

// Padding returns the bytes of padding after the record's frame: 0 unless
// it is flagged FlagPadToPage.
func (r Record) Padding() int64 { return r.End() - r.Offset - int64(FrameSize(len(r.Payload))) }

// Position is a place in a segment where reading can start: the offset of a
// frame, the LSN that frame must carry, and the lowest epoch it may carry
// (the epoch of the frame before it; 0 at the start of a segment).
// Reader.Position after a Next names the place after that record.
type Position struct {
	Offset int64
	LSN    uint64
	Epoch  uint16
}

// Reader reads the records of one segment file in order and classifies its
// end as a clean end (io.EOF), a torn tail (*TornTailError) or corruption
// (*CorruptionError), following the rules in the package documentation.
//
// It reads through an io.ReaderAt in chunks of ReaderOptions.BufferSize and
// returns payloads from a buffer it reuses (or, through a Viewer, from the
// bytes the Viewer lends), so Next does not allocate in steady state; a
// record larger than the buffer is read into a second buffer that never
// grows past MaxRecordSize. It never returns a record whose
// checksum does not verify.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	ra     io.ReaderAt
	closer io.Closer // set by OpenReader
	size   int64
	name   string
	maxRec int
	hdr    Header
	flags  uint8 // the frame flags the segment's version knows

	win     []byte // window on the file: the bytes from winOff on
	winOff  int64  // file offset of win[0]
	winSize int    // the size of a window read (BufferSize, at most the file)
	own     []byte // the reader's window buffer (allocated at first use)
	viewer  Viewer // ra, when it lends its bytes
	lent    bool   // win is the viewer's, valid until the next call into ra
	big     []byte // payloads too large for win

	pos      Position // the next frame
	maxEpoch uint16
	batchOff int64 // offset of the first frame of an unfinished batch, or -1
	batchLSN uint64
	lastLSN  uint64 // ReaderOptions.LastLSN
	err      error  // sticky

	slowOnly bool // tests: no fast path, so both paths can be compared
}

// NewReader returns a Reader for the segment of the given size read through
// r. It reads and validates the header: see ParseHeader for the errors, which
// here carry opts.Name. The reader starts at the first frame.
func NewReader(r io.ReaderAt, size int64, opts ReaderOptions) (*Reader, error) {
	if r == nil {
		return nil, errors.New("segment: NewReader: nil io.ReaderAt")
	}
	if size < 0 {
		return nil, fmt.Errorf("segment: NewReader: negative size %d", size)
	}
	if opts.MaxRecordSize < 0 || opts.MaxRecordSize > MaxRecordSizeLimit {
		return nil, fmt.Errorf("segment: NewReader: MaxRecordSize %d outside [0, %d]", opts.MaxRecordSize, MaxRecordSizeLimit)
	}
	if opts.MaxRecordSize == 0 {
		opts.MaxRecordSize = DefaultMaxRecordSize
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = DefaultBufferSize
	}
	rd := &Reader{ra: r, size: size, name: opts.Name, maxRec: opts.MaxRecordSize, batchOff: -1, lastLSN: opts.LastLSN}

	var hb [HeaderSize]byte
	n := int(min(size, HeaderSize))
	if err := rd.readAt(hb[:n], 0); err != nil {
		return nil, err
	}
	h, err := ParseHeader(hb[:n])
	if err != nil {
		var ce *CorruptionError
		if errors.As(err, &ce) {
			ce.Segment = opts.Name
			return nil, ce
		}
		return nil, rd.named(err)
	}
	if opts.FileBaseLSN != 0 && h.BaseLSN != opts.FileBaseLSN {
		return nil, rd.corrupt(hdrBaseLSN, 0, fmt.Sprintf("header base lsn %d does not match file name (base lsn %d)", h.BaseLSN, opts.FileBaseLSN))
	}
	rd.hdr, rd.flags = h, frameFlags(h.Version)
	rd.pos = Position{Offset: DataOffset, LSN: h.BaseLSN}
	// A small file needs no more than its own size of buffer; the window
	// must hold at least one frame header.
	rd.winSize = int(max(FrameHeaderSize, min(int64(opts.BufferSize), size)))
	if cap(opts.Buffer) >= rd.winSize {
		rd.own = opts.Buffer[:rd.winSize]
	}
	rd.viewer, _ = r.(Viewer)
	return rd, nil
}

// OpenReader opens the segment file at path and returns a Reader for it that
// owns the file: Close closes it. opts.Name defaults to path and
// opts.FileBaseLSN to the base LSN in the file name, when the name is a
// segment name.
func OpenReader(path string, opts ReaderOptions) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = path
	}
	if opts.FileBaseLSN == 0 {
		opts.FileBaseLSN, _ = ParseFileName(filepath.Base(path))
	}
	r, err := NewReader(f, fi.Size(), opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// Close closes the file if the Reader was made by OpenReader; otherwise it
// does nothing.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	c := r.closer
	r.closer = nil
	return c.Close()
}

// Header returns the segment header.
func (r *Reader) Header() Header { return r.hdr }

// Offset returns the offset just after the last record returned (DataOffset
// before the first). After a clean end it is where the next frame goes.
func (r *Reader) Offset() int64 { return r.pos.Offset }

// Position returns the position after the last record returned: its Offset,
// the LSN expected next, and the epoch of the last record.
func (r *Reader) Position() Position { return r.pos }

// LastEpoch returns the highest epoch of any checksum-valid frame the reader
// has seen, including frames it found beyond the end of the log while
// classifying that end. A writer that resumes appending to the segment uses
// LastEpoch()+1 (after reading to the end), so that nothing it leaves behind
// can be mistaken for a frame of an earlier incarnation, or the reverse.
func (r *Reader) LastEpoch() uint16 { return r.maxEpoch }

// Seek positions the reader at p, which must come from Position or from a
// record (Position{rec.Offset, rec.LSN, rec.Epoch}), and clears a sticky
// error. An atomic batch that began before p is not known to the reader: a
// torn tail found after a Seek is cut no earlier than p.Offset.
func (r *Reader) Seek(p Position) error {
	if p.Offset < DataOffset || p.Offset > r.size {
		return fmt.Errorf("segment: Seek: offset %d outside [%d, %d]", p.Offset, DataOffset, r.size)
	}
	if p.LSN < r.hdr.BaseLSN {
		return fmt.Errorf("segment: Seek: lsn %d below base lsn %d", p.LSN, r.hdr.BaseLSN)
	}
	r.pos, r.err, r.batchOff = p, nil, -1
	r.maxEpoch = max(r.maxEpoch, p.Epoch)
	return nil
}

// Next returns the next record. At the end of the log it returns io.EOF for a
// clean end, a *TornTailError for a torn tail and a *CorruptionError for
// damage; I/O errors of the io.ReaderAt are returned as they come, wrapped.
// Every error is sticky: later calls return it again.
func (r *Reader) Next() (Record, error) {
	var rec Record
	err := r.NextInto(&rec)
	return rec, err
}

// NextInto is Next storing the record in *rec (left unchanged on an error):
// the same records and errors, without a Record copied out of the call on
// every record, for loops that read many records. rec must not be nil.
func (r *Reader) NextInto(rec *Record) error {
	if r.err != nil {
		return r.err
	}
	if r.lastLSN != 0 && r.pos.LSN > r.lastLSN && r.hdr.Recycled() {
		// A sealed recycled segment: what follows its last record is
		// stale. A batch never spans segments: one still open is torn.
		r.err = io.EOF
		if r.batchOff >= 0 {
			r.err = r.torn(r.pos.Offset, r.pos.Offset, fmt.Sprintf("the segment's last record, lsn %d, continues its batch", r.lastLSN))
		}
		return r.err
	}
	if !r.slowOnly && r.nextInWindow(rec) {
		return nil
	}
	off, lsn, epoch := r.pos.Offset, r.pos.LSN, r.pos.Epoch
	fh, payload, bad, err := r.frameAt(off)
	if err != nil {
		r.err = err
		return err
	}
	if bad.prob == valid {
		r.maxEpoch = max(r.maxEpoch, fh.Epoch)
		switch {
		case fh.Epoch < epoch:
			// Bytes of an earlier incarnation that outlived a cut: the log
			// ended before them, whatever LSN they carry.
			bad = frameProblem{prob: probStale, fh: fh, epoch: epoch}
		case fh.LSN != lsn:
			r.err = r.corrupt(off, lsn, lsnReason(lsn, fh.LSN))
			return r.err
		default:
			if fh.Flags&FlagBatchContinues == 0 {
				r.batchOff = -1
			} else if r.batchOff < 0 {
				r.batchOff, r.batchLSN = off, lsn
			}
			r.pos = Position{Offset: r.frameEnd(off, len(payload), fh.Flags), LSN: lsn + 1, Epoch: fh.Epoch}
			*rec = Record{LSN: lsn, Offset: off, Payload: payload, Flags: fh.Flags, Epoch: fh.Epoch, Lag: fh.Lag, CRC: fh.CRC}
			return nil
		}
	}
	r.err = r.end(off, bad)
	return r.err
}

// nextInWindow is Next's fast path: it returns the next record when its
// whole frame is in the window and valid (every condition of the package
// documentation's "Valid frames", with one checksum pass over the contiguous
// header fields and payload). Anything else (a frame across the window's
// end, any failed check, the end of the log) reports false and leaves the
// reader untouched, for Next's general path to read and classify.
func (r *Reader) nextInWindow(rec *Record) bool {
	off := r.pos.Offset
	i := off - r.winOff
	if i < 0 || i > int64(len(r.win))-FrameHeaderSize {
		return false
	}
	b := r.win[i:]
	n := int64(binary.LittleEndian.Uint32(b[frmLength:]))
	if n > int64(r.maxRec) || n > int64(len(b))-FrameHeaderSize {
		return false
	}
	lsn := binary.LittleEndian.Uint64(b[frmLSN:])
	lag := uint64(binary.LittleEndian.Uint32(b[frmLag:]))
	epoch := binary.LittleEndian.Uint16(b[frmEpoch:])
	flags := b[frmFlags]
	if b[frmType] != TypeRecord || flags&^r.flags != 0 || lsn != r.pos.LSN ||
		epoch < r.pos.Epoch || lag == 0 || lag > lsn {
		return false
	}
	frame := b[:FrameHeaderSize+n]
	crc := binary.LittleEndian.Uint32(b[frmCRC:])
	if crc32.Update(r.hdr.Salt, castagnoli, frame[frmLength:]) != crc {
		return false
	}
	r.maxEpoch = max(r.maxEpoch, epoch)
	if flags&FlagBatchContinues == 0 {
		r.batchOff = -1
	} else if r.batchOff < 0 {
		r.batchOff, r.batchLSN = off, lsn
	}
	r.pos = Position{Offset: r.frameEnd(off, int(n), flags), LSN: lsn + 1, Epoch: epoch}
	// Field by field: a composite literal is built on the stack and copied
	// with a write barrier (in BenchmarkReplay 10 ns of a 230 ns record;
	// field by field, 5).
	rec.LSN, rec.Offset, rec.Payload = lsn, off, frame[FrameHeaderSize:]
	rec.Flags, rec.Epoch, rec.Lag, rec.CRC = flags, epoch, uint32(lag), crc
	return true
}

// frameEnd is FrameEnd within the file: padding that would run past the
// file's end (a file cut short) ends with it.
func (r *Reader) frameEnd(off int64, payloadLen int, flags uint8) int64 {
	return min(FrameEnd(off, payloadLen, flags), r.size)
}

func lsnReason(want, got uint64) string {
	if got > want {
		return fmt.Sprintf("lsn gap: want %d, got %d", want, got)
	}
	return fmt.Sprintf("duplicate lsn: want %d, got %d", want, got)
}

// problem is why no valid frame was found at an offset.
type problem uint8

const (
	valid problem = iota
	probTruncated
	probZero
	probType
	probFlags
	probLength
	probPastEnd
	probChecksum
	probLag
	probStale
)

// frameProblem carries what describes a problem; the text is only made when
// an error is, so that a clean end costs no allocation.
type frameProblem struct {
	prob  problem
	fh    FrameHeader
	crc   uint32 // computed checksum (probChecksum)
	epoch uint16 // epoch of the frame before (probStale)
}

func (r *Reader) describe(x int64, p frameProblem) string {
	fh := p.fh
	switch p.prob {
	case probTruncated:
		return fmt.Sprintf("truncated frame header: %d of %d bytes before end of file", r.size-x, FrameHeaderSize)
	case probZero:
		return "zero frame header"
	case probType:
		return fmt.Sprintf("bad frame type %d", fh.Type)
	case probFlags:
		return fmt.Sprintf("unknown frame flags %#x", fh.Flags)
	case probLength:
		return fmt.Sprintf("record length %d exceeds limit %d", fh.Length, r.maxRec)
	case probPastEnd:
		return fmt.Sprintf("frame of %d bytes extends past end of file at %d", FrameSize(int(fh.Length)), r.size)
	case probChecksum:
		return fmt.Sprintf("checksum mismatch: stored %#08x, computed %#08x", fh.CRC, p.crc)
	case probLag:
		return fmt.Sprintf("bad lag %d for lsn %d", fh.Lag, fh.LSN)
	case probStale:
		return fmt.Sprintf("stale frame of epoch %d (lsn %d) after epoch %d", fh.Epoch, fh.LSN, p.epoch)
	}
	return "valid frame"
}

// end classifies the end of the log at x, where no valid frame was found
// (rules 2a to 2d of the package documentation).
func (r *Reader) end(x int64, bad frameProblem) error {
	lsn := r.pos.LSN
	written, err := r.writtenEnd(x)
	if err != nil {
		return err
	}
	if written <= x {
		if r.batchOff < 0 {
			return io.EOF
		}
		return r.torn(x, x, fmt.Sprintf("no frame for lsn %d after a frame that continues the batch", lsn))
	}
	p, fh, life, err := r.findAcknowledged(x, written)
	if err != nil {
		return err
	}
	if p >= 0 {
		return r.corrupt(x, lsn, fmt.Sprintf("%s; acknowledged data follows: lsn %d at offset %d was written after lsn %d was durable",
			r.describe(x, bad), fh.LSN, p, fh.LSN-uint64(fh.Lag)))
	}
	if r.hdr.Recycled() {
		// Rule 4: the written region is this segment's frames found past
		// x, not the last non-zero byte (the rest is the file's earlier
		// life). With none and no open batch, the log ends here.
		if life <= x && r.batchOff < 0 {
			return io.EOF
		}
		return r.torn(x, life, r.describe(x, bad))
	}
	return r.torn(x, written, r.describe(x, bad))
}

func (r *Reader) torn(x, end int64, reason string) error {
	e := &TornTailError{Segment: r.name, Offset: x, End: max(end, x), LSN: r.pos.LSN, Reason: reason}
	if r.batchOff >= 0 {
		e.Offset, e.LSN = r.batchOff, r.batchLSN
		e.Reason = fmt.Sprintf("incomplete atomic batch from lsn %d: %s", r.batchLSN, reason)
	}
	return e
}

func (r *Reader) corrupt(off int64, lsn uint64, reason string) error {
	return &CorruptionError{Segment: r.name, Offset: off, LSN: lsn, Reason: reason}
}

// writtenEnd returns one past the last non-zero byte of the file at or after
// x, or x if there is none. It reads backwards from the end of the file, so a
// full segment costs one read; holes at the end of the file (space
// fallocated and never written reads as a hole on ext4, xfs and tmpfs) are
// skipped without reading when the io.ReaderAt can say where they are.
func (r *Reader) writtenEnd(x int64) (int64, error) {
	for hi := r.dataEnd(x); hi > x; {
		lo := max(x, hi-int64(r.winSize))
		b, err := r.view(lo, int(hi-lo))
		if err != nil {
			return 0, err
		}
		if i := lastNonZero(b); i >= 0 {
			return lo + int64(i) + 1, nil
		}
		hi = lo
	}
	return x, nil
}

// dataEnd returns an offset in [x, size] after which the file holds only
// holes or unwritten extents (which read as zeros), found from the file's
// extents (extentDataEnd) when the io.ReaderAt is a file on Linux, else
// with lseek SEEK_DATA / SEEK_HOLE when it is also an io.Seeker that
// supports them. Otherwise, or on any error, it returns the file size: the
// caller then reads everything. It may move the Seeker's offset, which
// ReadAt does not use.
func (r *Reader) dataEnd(x int64) int64 {
	if x >= r.size {
		return r.size
	}
	if end, ok := extentDataEnd(r.ra, x, r.size); ok {
		return end
	}
	sk, ok := r.ra.(io.Seeker)
	if !ok || !seekHoles {
		return r.size
	}
	end := x // end of the last data region seen
	for off := x; off < r.size; {
		d, err := sk.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // no data at or after off
		}
		if err != nil || d < off {
			return r.size
		}
		if d >= r.size {
			break
		}
		h, err := sk.Seek(d, seekHole)
		if err != nil || h <= d {
			return r.size
		}
		end, off = min(h, r.size), h
	}
	return end
}

// findAcknowledged scans (x, written) byte by byte for a frame that is valid
// in isolation, not stale, and was written after the record expected at x had
// been acknowledged (rule 2c). It returns its offset, or -1, and life: one
// past the end of the last frame valid in isolation that it stepped over (x
// if none), which in a recycled segment bounds what this segment's writers
// wrote after x (rule 4).
func (r *Reader) findAcknowledged(x, written int64) (int64, FrameHeader, int64, error) {
	lsn, epoch := r.pos.LSN, r.pos.Epoch
	life := x
	for p := x + 1; p < written && r.size-p >= FrameHeaderSize; {
		b, err := r.view(p, FrameHeaderSize)
		if err != nil {
			return -1, FrameHeader{}, life, err
		}
		// Cheap tests first: only a frame that passes them is worth a
		// checksum. The type byte is searched for through the rest of the
		// window at once (a recycled segment's stale tail can be most of
		// the file).
		if b[frmType] != TypeRecord {
			i := p - r.winOff + frmType + 1
			j := bytes.IndexByte(r.win[i:], TypeRecord)
			if j < 0 {
				p = r.winOff + int64(len(r.win)) - frmType
			} else {
				p += int64(j) + 1
			}
			continue
		}
		if b[frmFlags]&^r.flags != 0 {
			p++
			continue
		}
		fh := decodeFrameHeader(b)
		if fh.Lag == 0 || uint64(fh.Lag) > fh.LSN || r.checkHeader(p, fh) != valid {
			p++
			continue
		}
		_, _, bad, err := r.frameAt(p)
		if err != nil {
			return -1, FrameHeader{}, life, err
		}
		if bad.prob != valid {
			p++
			continue
		}
		r.maxEpoch = max(r.maxEpoch, fh.Epoch)
		if fh.Epoch >= epoch && fh.LSN >= lsn && fh.LSN-uint64(fh.Lag) >= lsn {
			return p, fh, life, nil
		}
		// A valid frame is not searched for frames inside it: its
		// payload is data, not framing.
		p += int64(FrameSize(int(fh.Length)))
		life = p
	}
	return -1, FrameHeader{}, life, nil
}

// frameAt reads the frame at off and checks it in isolation: everything but
// its LSN and epoch against the frames before it. err is an I/O error.
func (r *Reader) frameAt(off int64) (fh FrameHeader, payload []byte, bad frameProblem, err error) {
	if r.size-off < FrameHeaderSize {
		return fh, nil, frameProblem{prob: probTruncated}, nil
	}
	b, err := r.view(off, FrameHeaderSize)
	if err != nil {
		return fh, nil, bad, err
	}
	fh = decodeFrameHeader(b)
	if allZero(b) {
		return fh, nil, frameProblem{prob: probZero, fh: fh}, nil
	}
	if p := r.checkHeader(off, fh); p != valid {
		return fh, nil, frameProblem{prob: p, fh: fh}, nil
	}
	// The window may move while the payload is read: checksum the header
	// bytes first.
	crc := crc32.Update(r.hdr.Salt, castagnoli, b[frmLength:FrameHeaderSize])
	if payload, err = r.payload(off, int(fh.Length)); err != nil {
		return fh, nil, bad, err
	}
	if crc = crc32.Update(crc, castagnoli, payload); crc != fh.CRC {
		return fh, nil, frameProblem{prob: probChecksum, fh: fh, crc: crc}, nil
	}
	if fh.Lag == 0 || uint64(fh.Lag) > fh.LSN {
		return fh, nil, frameProblem{prob: probLag, fh: fh}, nil
	}
	return fh, payload, frameProblem{}, nil
}

// checkHeader checks the fields of a frame header that need no payload.
func (r *Reader) checkHeader(off int64, fh FrameHeader) problem {
	switch {
	case fh.Type != TypeRecord:
		return probType
	case fh.Flags&^r.flags != 0:
		return probFlags
	case int64(fh.Length) > int64(r.maxRec):
		return probLength
	case int64(fh.Length) > r.size-off-FrameHeaderSize:
		return probPastEnd
	}
	return valid
}

// payload returns the n payload bytes of the frame at off, which lies inside
// the file.
func (r *Reader) payload(off int64, n int) ([]byte, error) {
	if FrameHeaderSize+n <= r.winSize {
		b, err := r.view(off, FrameHeaderSize+n)
		if err != nil {
			return nil, err
		}
		return b[FrameHeaderSize:], nil
	}
	// Too large for the window: one read straight into a buffer kept for
	// such records. n is at most maxRec, so neither is the buffer.
	if cap(r.big) < n {
		r.big = make([]byte, min(max(n, 2*cap(r.big)), r.maxRec))
	}
	p := r.big[:n]
	if err := r.readAt(p, off+FrameHeaderSize); err != nil {
		return nil, err
	}
	return p, nil
}

// view returns the file bytes [off, off+n), which must lie inside the file,
// with n at most winSize. It refills the window, reading from off on, when it
// does not hold them.
func (r *Reader) view(off int64, n int) ([]byte, error) {
	if off >= r.winOff && off+int64(n) <= r.winOff+int64(len(r.win)) {
		i := off - r.winOff
		return r.win[i : i+int64(n)], nil
	}
	m := int(min(int64(r.winSize), r.size-off))
	r.win, r.lent = nil, false
	if r.viewer != nil {
		b, err := r.viewer.View(off, n, m)
		if len(b) >= n && len(b) <= m {
			r.win, r.winOff, r.lent = b, off, true
			return b[:n], nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
			if len(b) > m {
				err = fmt.Errorf("View returned %d bytes, more than the %d asked for", len(b), m)
			}
		}
		return nil, r.named(fmt.Errorf("segment: view %d bytes at offset %d: %w", n, off, err))
	}
	if r.own == nil {
		r.own = make([]byte, r.winSize)
	}
	if err := r.readAt(r.own[:m], off); err != nil {
		return nil, err
	}
	r.win, r.winOff = r.own[:m], off
	return r.win[:n], nil
}

func (r *Reader) readAt(p []byte, off int64) error {
	if r.lent {
		// A read through the viewer may reuse the bytes it lent.
		r.win, r.lent = nil, false
	}
	n, err := r.ra.ReadAt(p, off)
	if n == len(p) {
		return nil // io.ReaderAt may report io.EOF with a full read
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return r.named(fmt.Errorf("segment: read %d bytes at offset %d: %w", len(p), off, err))
}

// named puts the segment name into an error whose text starts with
// "segment: ".
func (r *Reader) named(err error) error {
	if r.name == "" {
		return err
	}
	return &namedError{name: r.name, err: err}
}

type namedError struct {
	name string
	err  error
}

func (e *namedError) Error() string {
	s := e.err.Error()
	if rest, ok := strings.CutPrefix(s, "segment: "); ok {
		return "segment: " + e.name + ": " + rest
	}
	return "segment: " + e.name + ": " + s
}

func (e *namedError) Unwrap() error { return e.err }
