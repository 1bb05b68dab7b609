package segment

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Writer appends frames to one segment file through an io.WriterAt, one
// write per call. It is the simple, synchronous writer for tests, test data,
// tools and repairs; the wal lays frames into its own buffers with Encoder.
//
// A Writer is not safe for concurrent use.
type Writer struct {
	w      io.WriterAt
	closer io.Closer // set by Create
	hdr    Header
	enc    *Encoder
	buf    []byte // one encoded frame, reused
}

// NewWriter writes the header h at offset 0 of w and returns a Writer that
// appends from DataOffset on, starting with LSN h.BaseLSN and epoch 0.
// h.Version zero means Version. The bytes between the header and DataOffset
// are not written: a new file reads zeros there.
func NewWriter(w io.WriterAt, h Header) (*Writer, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	if h.Version == 0 {
		h.Version = Version
	}
	var b [HeaderSize]byte
	h.MarshalTo(b[:])
	if _, err := w.WriteAt(b[:], 0); err != nil {
		return nil, err
	}
	return ResumeWriter(w, h, Position{Offset: DataOffset, LSN: h.BaseLSN}), nil
}

// ResumeWriter returns a Writer that appends to an existing segment whose
// header is h, from pos on, with pos.Epoch as its epoch. It writes nothing
// now. To resume after reading a segment to its end with a Reader, pass
// Position{r.Offset(), next LSN, r.LastEpoch() + 1}, after zeroing any torn
// tail (ZeroRange).
func ResumeWriter(w io.WriterAt, h Header, pos Position) *Writer {
	enc := NewEncoder(h.Salt, pos.Epoch, MaxRecordSizeLimit)
	enc.Reset(nil, pos.Offset, pos.LSN)
	return &Writer{w: w, hdr: h, enc: enc}
}

// Create creates the segment file at path, which must not exist, sizes it to
// h.Size (the extension reads as zeros), writes the header and syncs the
// file. The caller syncs the directory. Close closes the file.
func Create(path string, h Header) (*Writer, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(f, h)
	if err == nil {
		err = f.Truncate(h.Size)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	w.closer = f
	return w, nil
}

// Append appends one record as a frame of its own, written by a sequential
// writer (every earlier record acknowledged, so Lag is 1), and returns its
// LSN.
func (w *Writer) Append(payload []byte) (lsn uint64, err error) {
	return w.AppendFrame(payload, w.enc.NextLSN()-1, 0)
}

// AppendBatch appends payloads as one atomic batch, all frames but the last
// flagged FlagBatchContinues, in a single write, and returns the first LSN.
// The watermark of every frame is the LSN before the batch.
func (w *Writer) AppendBatch(payloads ...[]byte) (first uint64, err error) {
	return w.appendBatch(payloads, false)
}

// AppendBatchPadded is AppendBatch ending the batch on a page boundary, as
// a writer that syncs each batch lays it (Encoder.PadToPage): the last
// frame is flagged FlagPadToPage and the write runs on with zeros to the
// next multiple of PageSize, where the next frame goes. A batch that
// already ends there is not padded. It needs a segment of format version 2
// or later.
func (w *Writer) AppendBatchPadded(payloads ...[]byte) (first uint64, err error) {
	if w.hdr.Version < 2 {
		return 0, fmt.Errorf("segment: AppendBatchPadded: a version %d segment holds no padding", w.hdr.Version)
	}
	return w.appendBatch(payloads, true)
}

func (w *Writer) appendBatch(payloads [][]byte, pad bool) (first uint64, err error) {
	if len(payloads) == 0 {
		return 0, errors.New("segment: AppendBatch: empty batch")
	}
	first = w.enc.NextLSN()
	size := 0
	for _, p := range payloads {
		size += FrameSize(len(p))
	}
	if pad {
		size += PageSize
	}
	save := *w.enc
	w.enc.Reset(w.buffer(size), w.enc.Offset(), first)
	for i, p := range payloads {
		flags := uint8(FlagBatchContinues)
		if i == len(payloads)-1 {
			flags = 0
		}
		if _, _, err := w.enc.Append(p, first-1, flags); err != nil {
			*w.enc = save
			return 0, err
		}
	}
	if pad {
		w.enc.PadToPage()
	}
	if err := w.write(); err != nil {
		*w.enc = save
		return 0, err
	}
	return first, nil
}

// AppendFrame appends one record with an explicit durable watermark (every
// LSN <= durable acknowledged; below the new LSN) and flags, and returns its
// LSN. It is how tests write what a pipelined writer leaves on disk.
func (w *Writer) AppendFrame(payload []byte, durable uint64, flags uint8) (lsn uint64, err error) {
	save := *w.enc
	w.enc.Reset(w.buffer(FrameSize(len(payload))), w.enc.Offset(), w.enc.NextLSN())
	if lsn, _, err = w.enc.Append(payload, durable, flags); err != nil {
		*w.enc = save
		return 0, err
	}
	if err := w.write(); err != nil {
		*w.enc = save
		return 0, err
	}
	return lsn, nil
}

// buffer returns the reusable frame buffer sized to n bytes.
func (w *Writer) buffer(n int) []byte {
	if cap(w.buf) < n {
		w.buf = make([]byte, n)
	}
	return w.buf[:n]
}

// write writes the frames laid in the encoder's buffer at their offset.
func (w *Writer) write() error {
	b := w.enc.Bytes()
	off := w.enc.Offset() - int64(len(b))
	if off+int64(len(b)) > w.hdr.Size {
		return fmt.Errorf("%w: %d bytes at offset %d past size %d", ErrSegmentFull, len(b), off, w.hdr.Size)
	}
	_, err := w.w.WriteAt(b, off)
	return err
}

// Position returns where the next frame goes: its offset, its LSN and the
// writer's epoch.
func (w *Writer) Position() Position {
	return Position{Offset: w.enc.Offset(), LSN: w.enc.NextLSN(), Epoch: w.enc.Epoch()}
}

// Header returns the segment header.
func (w *Writer) Header() Header { return w.hdr }

// Sync makes everything written durable if the io.WriterAt has a Sync
// method (as *os.File has); otherwise it does nothing.
func (w *Writer) Sync() error {
	if s, ok := w.w.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}

// Close closes the file if the Writer was made by Create; otherwise it does
// nothing. It does not sync.
func (w *Writer) Close() error {
	if w.closer == nil {
		return nil
	}
	c := w.closer
	w.closer = nil
	return c.Close()
}

// ZeroRange writes zeros over [off, end) of w: how a torn tail
// (TornTailError.Offset, End) is cut before a writer appends after it. The
// caller syncs afterwards.
func ZeroRange(w io.WriterAt, off, end int64) error {
	if off < 0 || end < off {
		return fmt.Errorf("segment: ZeroRange: bad range [%d,%d)", off, end)
	}
	zeros := make([]byte, min(end-off, 64<<10))
	for off < end {
		n := min(end-off, int64(len(zeros)))
		if _, err := w.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}
