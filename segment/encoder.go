package segment

import (
	"encoding/binary"
	"fmt"

	"github.com/klauspost/crc32"
)

// Encoder lays frames of one segment into caller-owned buffers, each of which
// maps to a known range of the segment file: buf[0] is written at the
// segment offset given to Reset, and the buffers given to Continue follow one
// another. It assigns LSNs, stamps the segment's salt and the writer's epoch,
// and reports the segment offset of every frame. It does no I/O and keeps no
// reference to a buffer after the next Reset or Continue.
//
// An Encoder is not safe for concurrent use.
type Encoder struct {
	salt     uint32
	epoch    uint16
	maxRec   int
	deferCRC bool // DeferChecksums: frames are laid with a zero checksum

	buf  []byte // current buffer, written in full length
	base int64  // segment offset of buf[0]
	n    int    // bytes of buf in use
	next uint64 // LSN of the next frame
	last int    // buf index of the last frame, if Append laid it whole there; else -1

	// A frame split by AppendSplit whose end did not fit: the header bytes
	// and payload bytes still to copy, laid by Continue.
	pendHdr  [FrameHeaderSize]byte
	pendHdrN int // the last pendHdrN bytes of pendHdr are still to copy
	pendPay  []byte
}

// NewEncoder returns an Encoder for a segment with the given salt
// (Header.Salt) and writer epoch (0 for the writer that created the segment,
// Reader.LastEpoch()+1 for one that resumes it). Records longer than
// maxRecordSize are refused; zero or less means DefaultMaxRecordSize, and
// values above MaxRecordSizeLimit mean MaxRecordSizeLimit. Call Reset before
// the first Append.
func NewEncoder(salt uint32, epoch uint16, maxRecordSize int) *Encoder {
	if maxRecordSize <= 0 {
		maxRecordSize = DefaultMaxRecordSize
	}
	return &Encoder{salt: salt, epoch: epoch, maxRec: min(maxRecordSize, MaxRecordSizeLimit)}
}

// DeferChecksums makes the encoder lay every later frame with its checksum
// field zero: the caller fills the checksums in with ChecksumFrames, over
// the bytes laid, before it writes them. A writer uses it to take the
// checksum pass off the goroutine that lays frames (which holds the
// writer's lock) and onto the one that writes them. A frame whose checksum
// was never filled in never verifies.
func (e *Encoder) DeferChecksums() { e.deferCRC = true }

// Reset points the encoder at buf, which maps to the segment bytes
// [segOffset, segOffset+len(buf)), and sets the LSN of the next frame. Any
// split frame still pending is dropped. The whole length of buf is used.
func (e *Encoder) Reset(buf []byte, segOffset int64, nextLSN uint64) {
	e.buf, e.base, e.n, e.next, e.last = buf, segOffset, 0, nextLSN, -1
	e.pendHdrN, e.pendPay = 0, nil
}

// Continue moves the encoder to buf, which maps to the segment bytes that
// follow the ones laid so far (from Offset() on), and first lays as much of a
// pending split frame as fits.
func (e *Encoder) Continue(buf []byte) {
	e.base += int64(e.n)
	e.buf, e.n, e.last = buf, 0, -1
	e.layPending()
}

// Append lays one whole frame for payload at the current position and returns
// its LSN and segment offset. durable is the writer's durable watermark: every
// LSN <= durable has been acknowledged; it must be below the new LSN (a plain
// sequential writer passes NextLSN()-1). flags is 0 or FlagBatchContinues.
//
// If the frame does not fit in what is left of the buffer, Append returns
// ErrBufferFull and lays nothing; a payload above the size limit gets an error
// wrapping ErrRecordTooLarge. Append does not allocate.
func (e *Encoder) Append(payload []byte, durable uint64, flags uint8) (lsn uint64, frameOffset int64, err error) {
	if err := e.check(payload, durable, flags); err != nil {
		return 0, 0, err
	}
	size := FrameSize(len(payload))
	if e.pending() || size > len(e.buf)-e.n {
		return 0, 0, ErrBufferFull
	}
	dst := e.buf[e.n : e.n+size]
	copy(dst[FrameHeaderSize:], payload)
	if e.deferCRC {
		putFrameFields(dst, len(payload), e.frameHeader(durable, flags))
		binary.LittleEndian.PutUint32(dst[frmCRC:], 0)
	} else {
		encodeFrameInPlace(dst, e.salt, e.frameHeader(durable, flags))
	}
	e.last = e.n
	return e.advance(size)
}

// PadToPage ends the frames laid so far on a page boundary: it flags the
// last frame FlagPadToPage and lays zeros up to the next multiple of
// PageSize in the segment, so that the next frame starts there. A writer
// ends a batch it syncs this way, so the next batch does not write the
// same page again. It returns the bytes of padding laid, and false (laying
// nothing) when the frames already end on a page boundary, when the last
// frame was not laid whole into the current buffer by Append, or when the
// padding does not fit in the buffer. Only segments of format version 2 on
// may hold padded frames.
func (e *Encoder) PadToPage() (int, bool) {
	end := e.Offset()
	pad := int(PadToPage(end) - end)
	if pad == 0 || e.last < 0 || e.pending() || pad > len(e.buf)-e.n {
		return 0, false
	}
	frame := e.buf[e.last:e.n]
	frame[frmFlags] |= FlagPadToPage
	if !e.deferCRC {
		checksumFrameInPlace(frame, e.salt)
	}
	clear(e.buf[e.n : e.n+pad])
	e.n += pad
	e.last = -1
	return pad, true
}

// AppendSplit is Append for frames that may be larger than what is left of
// the buffer (or larger than any buffer): it lays as much of the frame as fits
// and keeps the rest pending; each following Continue lays more. Until
// Pending() is zero the caller must not modify payload, and Append and
// AppendSplit return ErrBufferFull. A frame that fits is laid whole, as by
// Append.
func (e *Encoder) AppendSplit(payload []byte, durable uint64, flags uint8) (lsn uint64, frameOffset int64, err error) {
	if err := e.check(payload, durable, flags); err != nil {
		return 0, 0, err
	}
	if e.pending() {
		return 0, 0, ErrBufferFull
	}
	size := FrameSize(len(payload))
	if size <= len(e.buf)-e.n {
		return e.Append(payload, durable, flags)
	}
	if e.deferCRC {
		putFrameFields(e.pendHdr[:], len(payload), e.frameHeader(durable, flags))
		binary.LittleEndian.PutUint32(e.pendHdr[frmCRC:], 0)
	} else {
		EncodeFrameHeader(e.pendHdr[:], e.salt, e.frameHeader(durable, flags), payload)
	}
	e.pendHdrN, e.pendPay, e.last = FrameHeaderSize, payload, -1
	lsn, frameOffset = e.next, e.Offset()
	e.next++
	e.layPending()
	return lsn, frameOffset, nil
}

// Pending returns the number of bytes of a split frame that are still to be
// laid by Continue.
func (e *Encoder) Pending() int { return e.pendHdrN + len(e.pendPay) }

// Bytes returns the part of the current buffer laid so far.
func (e *Encoder) Bytes() []byte { return e.buf[:e.n] }

// Len returns the number of bytes of the current buffer laid so far.
func (e *Encoder) Len() int { return e.n }

// Available returns the number of bytes left in the current buffer.
func (e *Encoder) Available() int { return len(e.buf) - e.n }

// Offset returns the segment offset of the next byte to lay: the end of the
// frames laid so far.
func (e *Encoder) Offset() int64 { return e.base + int64(e.n) }

// NextLSN returns the LSN the next frame will get.
func (e *Encoder) NextLSN() uint64 { return e.next }

// Salt returns the segment salt the encoder stamps.
func (e *Encoder) Salt() uint32 { return e.salt }

// Epoch returns the writer epoch the encoder stamps.
func (e *Encoder) Epoch() uint16 { return e.epoch }

func (e *Encoder) check(payload []byte, durable uint64, flags uint8) error {
	if len(payload) > e.maxRec {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrRecordTooLarge, len(payload), e.maxRec)
	}
	if flags&^FlagBatchContinues != 0 {
		return fmt.Errorf("segment: unknown frame flags %#x", flags)
	}
	if durable >= e.next {
		return fmt.Errorf("segment: durable watermark %d not below lsn %d", durable, e.next)
	}
	return nil
}

func (e *Encoder) frameHeader(durable uint64, flags uint8) FrameHeader {
	return FrameHeader{LSN: e.next, Lag: lagFor(e.next, durable), Type: TypeRecord, Flags: flags, Epoch: e.epoch}
}

func (e *Encoder) advance(size int) (uint64, int64, error) {
	lsn, off := e.next, e.Offset()
	e.n += size
	e.next++
	return lsn, off, nil
}

func (e *Encoder) pending() bool { return e.Pending() > 0 }

// layPending copies as much of the pending split frame as fits.
func (e *Encoder) layPending() {
	if e.pendHdrN > 0 {
		c := copy(e.buf[e.n:], e.pendHdr[FrameHeaderSize-e.pendHdrN:])
		e.n += c
		e.pendHdrN -= c
	}
	if e.pendHdrN == 0 && len(e.pendPay) > 0 {
		c := copy(e.buf[e.n:], e.pendPay)
		e.n += c
		e.pendPay = e.pendPay[c:]
	}
	if len(e.pendPay) == 0 {
		e.pendPay = nil
	}
}

// ChecksumFrames fills in the checksum of every frame in bufs, frames laid
// by an Encoder after DeferChecksums under the given salt. bufs hold
// consecutive bytes of a segment, from the start of a frame to the end of
// a frame, or to the end of the padding after a frame flagged
// FlagPadToPage, which ends the frames (PadToPage); a frame may run from
// one buffer into the next, as frames laid by AppendSplit and Continue do.
// It returns an error if the bytes end inside a frame (the frames before it
// have their checksums). It does not allocate.
func ChecksumFrames(salt uint32, bufs [][]byte) error {
	i, off := 0, 0 // the next frame starts at bufs[i][off]
	for {
		for i < len(bufs) && off == len(bufs[i]) {
			i, off = i+1, 0
		}
		if i == len(bufs) {
			return nil
		}
		if b := bufs[i][off:]; len(b) >= FrameHeaderSize {
			if size := FrameHeaderSize + int(binary.LittleEndian.Uint32(b[frmLength:])); size <= len(b) {
				checksumFrameInPlace(b[:size], salt)
				if b[frmFlags]&FlagPadToPage != 0 {
					return nil // the rest is its padding
				}
				off += size
				continue
			}
		}
		var err error
		var padded bool
		if i, off, padded, err = checksumSplitFrame(salt, bufs, i, off); err != nil || padded {
			return err
		}
	}
}

// checksumSplitFrame is ChecksumFrames for a frame that starts at
// bufs[i][off] and runs into a later buffer. It returns where the next frame
// starts, and whether the frame is flagged FlagPadToPage.
func checksumSplitFrame(salt uint32, bufs [][]byte, i, off int) (int, int, bool, error) {
	startI, start := i, off
	// Where the header's bytes are (buffer, index), up to the flags.
	var at [frmFlags + 1][2]int
	for k := range at {
		for i < len(bufs) && off == len(bufs[i]) {
			i, off = i+1, 0
		}
		if i == len(bufs) {
			return 0, 0, false, fmt.Errorf("segment: frame header at buffer %d offset %d cut after %d of %d bytes", startI, start, k, FrameHeaderSize)
		}
		at[k] = [2]int{i, off}
		off++
	}
	var n uint32
	for k := frmLSN - 1; k >= frmLength; k-- {
		n = n<<8 | uint32(bufs[at[k][0]][at[k][1]])
	}
	// The checksum covers the header from the length on, then the payload.
	crc := crc32.Update(salt, castagnoli, bufs[at[frmLength][0]][at[frmLength][1]:at[frmLength][1]+1])
	i, off = at[frmLength][0], at[frmLength][1]+1
	for left := FrameHeaderSize - frmLength - 1 + int(n); left > 0; {
		for i < len(bufs) && off == len(bufs[i]) {
			i, off = i+1, 0
		}
		if i == len(bufs) {
			return 0, 0, false, fmt.Errorf("segment: frame at buffer %d offset %d cut %d bytes short", startI, start, left)
		}
		c := min(left, len(bufs[i])-off)
		crc = crc32.Update(crc, castagnoli, bufs[i][off:off+c])
		left, off = left-c, off+c
	}
	for k := range frmLength {
		bufs[at[k][0]][at[k][1]] = byte(crc >> (8 * k))
	}
	return i, off, bufs[at[frmFlags][0]][at[frmFlags][1]]&FlagPadToPage != 0, nil
}
