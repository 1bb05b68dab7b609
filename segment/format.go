package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/crc32"
)

// Constants of the on-disk format. Every constant marked "on-disk" is part of
// the format (versions 1 and 2): changing one makes a different format.
const (
	// Magic opens every segment file (on-disk).
	Magic = "RWALSEG\x00"
	// Version is the format version this package writes, and the newest it
	// reads (on-disk). Version 2 adds FlagPadToPage to version 1.
	Version = 2
	// MinVersion is the oldest format version this package reads (on-disk).
	MinVersion = 1
	// HeaderSize is the size of the segment header at offset 0 (on-disk).
	HeaderSize = 64
	// DataOffset is the offset of the first frame; the header region
	// [0, DataOffset) is zero after the header so that data starts
	// page-aligned (on-disk).
	DataOffset = 4096
	// FrameHeaderSize is the size of the header in front of every payload
	// (on-disk).
	FrameHeaderSize = 24
	// TypeRecord is the only valid frame type (versions 1 and 2) (on-disk). Type 0
	// is never valid, so an all-zero frame never decodes.
	TypeRecord = 1
	// FlagBatchContinues marks a frame whose atomic batch continues with the
	// next frame (on-disk).
	FlagBatchContinues = 1
	// FlagPadToPage marks a frame followed by padding up to the next
	// multiple of PageSize in the file: the next frame starts there
	// (on-disk, version 2 on; an unknown flag in version 1). All other flag
	// bits must be zero.
	FlagPadToPage = 2
	// FrameFlags is every frame flag the newest version knows.
	FrameFlags = FlagBatchContinues | FlagPadToPage
	// PageSize is the alignment FlagPadToPage pads to (on-disk).
	PageSize = 4096
	// HeaderFlagRecycled marks a segment written into a recycled file (the
	// file of a segment the log dropped earlier, overwritten in place
	// instead of zero-filled): the bytes after its last frame may be stale
	// frames of the file's earlier life rather than zeros (on-disk, header
	// Flags bit 0; the package documentation's "Recycled segments"). All
	// other header flag bits must be zero.
	HeaderFlagRecycled = 1
	// MaxRecordSizeLimit is the hard limit of the format on a payload's
	// length (on-disk): no reader or writer accepts a longer record.
	MaxRecordSizeLimit = 1 << 30
	// DefaultMaxRecordSize is the record size limit used when
	// ReaderOptions.MaxRecordSize or NewEncoder's maxRecordSize is zero.
	DefaultMaxRecordSize = 16 << 20
	// DefaultBufferSize is the size of the reads a Reader issues when
	// ReaderOptions.BufferSize is zero.
	DefaultBufferSize = 256 << 10
	// TempFileSuffix ends the names of files that are being prepared (for
	// example a segment preallocated ahead of rotation). Such a file is never
	// a segment, whatever comes before the suffix.
	TempFileSuffix = ".tmp"
	// FileSuffix ends every segment file name (on-disk).
	FileSuffix = ".seg"
)

// Field offsets in the segment header.
const (
	hdrMagic      = 0
	hdrVersion    = 8
	hdrHeaderSize = 10
	hdrDataOffset = 12
	hdrSeq        = 16
	hdrBaseLSN    = 24
	hdrSize       = 32
	hdrSalt       = 40
	hdrFlags      = 44
	hdrCreated    = 48
	hdrReserved   = 56
	hdrCRC        = 60
)

// Field offsets in a frame header.
const (
	frmCRC    = 0
	frmLength = 4
	frmLSN    = 8
	frmLag    = 16
	frmType   = 20
	frmFlags  = 21
	frmEpoch  = 22
)

// fileNameDigits is the width of the zero-padded base LSN in a file name: the
// number of decimal digits of the largest uint64.
const fileNameDigits = 20

// castagnoli is the CRC32C table; klauspost/crc32 takes its fast path only for
// this exact pointer.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the segment header stored in the first HeaderSize bytes of a
// segment file. The constant fields (magic, header size, data offset) and the
// checksum are not part of the struct: MarshalTo writes them and ParseHeader
// checks them.
type Header struct {
	// Version is the format version. MarshalTo writes Version when it is
	// zero; any other value is written as is (tests use that to make files
	// of an unknown version).
	Version uint16
	// Seq is the segment's sequence number: 1 for the first segment of a
	// log, one more for each new segment. Never 0.
	Seq uint64
	// BaseLSN is the LSN of the first record the segment holds (LSNs start
	// at 1). The file name carries it too. Never 0.
	BaseLSN uint64
	// Size is the size the file was preallocated to when it was created.
	// Informational: readers go by the actual file size.
	Size int64
	// Salt seeds the checksum of every frame in this segment. Choosing it at
	// random per segment means a frame copied from another segment, or left
	// over from an earlier file at the same place on disk, never verifies.
	Salt uint32
	// Flags is 0 or HeaderFlagRecycled.
	Flags uint32
	// Created is the creation time in Unix nanoseconds. Informational.
	Created int64
}

// Recycled reports whether the segment was written into a recycled file, so
// that the bytes after its last frame may be stale (HeaderFlagRecycled).
func (h Header) Recycled() bool { return h.Flags&HeaderFlagRecycled != 0 }

// MarshalTo writes h into dst[:HeaderSize], including the magic, the constant
// sizes and the header checksum. It panics if len(dst) < HeaderSize.
func (h *Header) MarshalTo(dst []byte) {
	_ = dst[HeaderSize-1]
	v := h.Version
	if v == 0 {
		v = Version
	}
	copy(dst[hdrMagic:], Magic)
	binary.LittleEndian.PutUint16(dst[hdrVersion:], v)
	binary.LittleEndian.PutUint16(dst[hdrHeaderSize:], HeaderSize)
	binary.LittleEndian.PutUint32(dst[hdrDataOffset:], DataOffset)
	binary.LittleEndian.PutUint64(dst[hdrSeq:], h.Seq)
	binary.LittleEndian.PutUint64(dst[hdrBaseLSN:], h.BaseLSN)
	binary.LittleEndian.PutUint64(dst[hdrSize:], uint64(h.Size))
	binary.LittleEndian.PutUint32(dst[hdrSalt:], h.Salt)
	binary.LittleEndian.PutUint32(dst[hdrFlags:], h.Flags)
	binary.LittleEndian.PutUint64(dst[hdrCreated:], uint64(h.Created))
	binary.LittleEndian.PutUint32(dst[hdrReserved:], 0)
	binary.LittleEndian.PutUint32(dst[hdrCRC:], crc32.Checksum(dst[:hdrCRC], castagnoli))
}

// ParseHeader decodes and validates the segment header in b[:HeaderSize].
//
// It returns ErrNoHeader if the header bytes are all zero (a segment whose
// header never reached the disk), an error wrapping ErrUnsupportedVersion if
// the header is intact but of another format version, and a
// *CorruptionError (with an empty Segment) for anything else that is wrong,
// including a b shorter than HeaderSize that is not all zero.
func ParseHeader(b []byte) (Header, error) {
	if allZero(b[:min(len(b), HeaderSize)]) {
		return Header{}, ErrNoHeader
	}
	if len(b) < HeaderSize {
		return Header{}, &CorruptionError{Offset: int64(len(b)), Reason: fmt.Sprintf("short header: %d of %d bytes", len(b), HeaderSize)}
	}
	b = b[:HeaderSize]
	corrupt := func(off int, format string, args ...any) (Header, error) {
		return Header{}, &CorruptionError{Offset: int64(off), Reason: fmt.Sprintf(format, args...)}
	}
	if string(b[hdrMagic:hdrMagic+len(Magic)]) != Magic {
		return corrupt(hdrMagic, "bad magic %q", b[hdrMagic:hdrMagic+len(Magic)])
	}
	// The checksum comes before the version so that a flipped bit in the
	// version field reads as damage, not as a file from the future. Later
	// versions keep magic, version and this checksum where they are.
	if want, got := crc32.Checksum(b[:hdrCRC], castagnoli), binary.LittleEndian.Uint32(b[hdrCRC:]); want != got {
		return corrupt(hdrCRC, "header checksum mismatch: stored %#08x, computed %#08x", got, want)
	}
	h := Header{
		Version: binary.LittleEndian.Uint16(b[hdrVersion:]),
		Seq:     binary.LittleEndian.Uint64(b[hdrSeq:]),
		BaseLSN: binary.LittleEndian.Uint64(b[hdrBaseLSN:]),
		Size:    int64(binary.LittleEndian.Uint64(b[hdrSize:])),
		Salt:    binary.LittleEndian.Uint32(b[hdrSalt:]),
		Flags:   binary.LittleEndian.Uint32(b[hdrFlags:]),
		Created: int64(binary.LittleEndian.Uint64(b[hdrCreated:])),
	}
	if h.Version < MinVersion || h.Version > Version {
		return Header{}, fmt.Errorf("%w %d (this package reads versions %d to %d)", ErrUnsupportedVersion, h.Version, MinVersion, Version)
	}
	switch {
	case binary.LittleEndian.Uint16(b[hdrHeaderSize:]) != HeaderSize:
		return corrupt(hdrHeaderSize, "header size %d, want %d", binary.LittleEndian.Uint16(b[hdrHeaderSize:]), HeaderSize)
	case binary.LittleEndian.Uint32(b[hdrDataOffset:]) != DataOffset:
		return corrupt(hdrDataOffset, "data offset %d, want %d", binary.LittleEndian.Uint32(b[hdrDataOffset:]), DataOffset)
	case h.Seq == 0:
		return corrupt(hdrSeq, "segment sequence number 0")
	case h.BaseLSN == 0:
		return corrupt(hdrBaseLSN, "base lsn 0")
	case h.Size < DataOffset:
		return corrupt(hdrSize, "segment size %d below data offset %d", h.Size, DataOffset)
	case h.Flags&^HeaderFlagRecycled != 0:
		return corrupt(hdrFlags, "unknown header flags %#x", h.Flags)
	case binary.LittleEndian.Uint32(b[hdrReserved:]) != 0:
		return corrupt(hdrReserved, "reserved header bytes not zero")
	}
	return h, nil
}

// validate reports what is wrong with h for writing a new segment.
func (h *Header) validate() error {
	switch {
	case h.Version != 0 && (h.Version < MinVersion || h.Version > Version):
		return fmt.Errorf("%w %d", ErrUnsupportedVersion, h.Version)
	case h.Seq == 0:
		return fmt.Errorf("segment: header Seq must not be 0")
	case h.BaseLSN == 0:
		return fmt.Errorf("segment: header BaseLSN must not be 0")
	case h.Size < DataOffset:
		return fmt.Errorf("segment: header Size %d below DataOffset %d", h.Size, DataOffset)
	case h.Flags&^HeaderFlagRecycled != 0:
		return fmt.Errorf("segment: header Flags %#x: only HeaderFlagRecycled is defined", h.Flags)
	}
	return nil
}

// FrameHeader is the decoded header of one frame.
type FrameHeader struct {
	// Length is the payload length. EncodeFrameHeader sets it from the
	// payload.
	Length uint32
	// LSN is the record's log sequence number.
	LSN uint64
	// Lag is LSN minus the writer's durable watermark when the frame was
	// encoded: every LSN <= LSN-Lag had been acknowledged. At least 1 and
	// at most LSN.
	Lag uint32
	// Type is the frame type. EncodeFrameHeader writes TypeRecord when it
	// is zero, because 0 is never a valid type on disk.
	Type uint8
	// Flags holds FlagBatchContinues, FlagPadToPage (version 2 on), both
	// or 0.
	Flags uint8
	// Epoch is the writer incarnation within the segment.
	Epoch uint16
	// CRC is the frame checksum. EncodeFrameHeader computes it.
	CRC uint32
}

// FrameSize returns the on-disk size of a frame carrying payloadLen bytes.
// Frames are packed back to back, so this is also the distance to the next
// frame, except after a frame flagged FlagPadToPage (FrameEnd).
func FrameSize(payloadLen int) int { return FrameHeaderSize + payloadLen }

// FrameEnd returns where the frame after the one at off (payload
// payloadLen bytes, frame flags flags) starts: right after it, or, if it is
// flagged FlagPadToPage, at the next multiple of PageSize.
func FrameEnd(off int64, payloadLen int, flags uint8) int64 {
	end := off + int64(FrameSize(payloadLen))
	if flags&FlagPadToPage != 0 {
		end = PadToPage(end)
	}
	return end
}

// PadToPage returns off rounded up to a multiple of PageSize.
func PadToPage(off int64) int64 { return (off + PageSize - 1) &^ (PageSize - 1) }

// frameFlags returns the frame flags a segment of format version v may
// carry.
func frameFlags(v uint16) uint8 {
	if v >= 2 {
		return FrameFlags
	}
	return FlagBatchContinues
}

// EncodeFrameHeader fills dst[:FrameHeaderSize] with the header of a frame
// carrying payload: h's fields, Length set to len(payload), Type TypeRecord if
// h.Type is zero, and the checksum seeded with the segment's salt over header
// bytes [4,24) and the payload. The payload itself is not copied: it must
// follow the header directly on disk. It does not allocate.
//
// It panics if len(dst) < FrameHeaderSize or len(payload) >
// MaxRecordSizeLimit: both are programming errors, and a frame that no reader
// would accept must not be written.
func EncodeFrameHeader(dst []byte, salt uint32, h FrameHeader, payload []byte) {
	_ = dst[FrameHeaderSize-1]
	if len(payload) > MaxRecordSizeLimit {
		panic(fmt.Sprintf("segment: payload of %d bytes exceeds MaxRecordSizeLimit", len(payload)))
	}
	putFrameFields(dst, len(payload), h)
	binary.LittleEndian.PutUint32(dst[frmCRC:], frameCRC(salt, dst[:FrameHeaderSize], payload))
}

// putFrameFields writes every frame header field but the checksum, for a
// payload of n bytes. A zero Type is written as TypeRecord.
func putFrameFields(dst []byte, n int, h FrameHeader) {
	_ = dst[FrameHeaderSize-1]
	if h.Type == 0 {
		h.Type = TypeRecord
	}
	binary.LittleEndian.PutUint32(dst[frmLength:], uint32(n))
	binary.LittleEndian.PutUint64(dst[frmLSN:], h.LSN)
	binary.LittleEndian.PutUint32(dst[frmLag:], h.Lag)
	dst[frmType] = h.Type
	dst[frmFlags] = h.Flags
	binary.LittleEndian.PutUint16(dst[frmEpoch:], h.Epoch)
}

// encodeFrameInPlace writes the header of the frame dst, whose payload is
// already in dst[FrameHeaderSize:], with one checksum pass over the
// contiguous bytes [4, len(dst)): the same checksum EncodeFrameHeader
// computes from the header fields and the payload apart.
func encodeFrameInPlace(dst []byte, salt uint32, h FrameHeader) {
	putFrameFields(dst, len(dst)-FrameHeaderSize, h)
	checksumFrameInPlace(dst, salt)
}

// checksumFrameInPlace stores the checksum of the whole frame dst, header
// fields already written, in its header.
func checksumFrameInPlace(dst []byte, salt uint32) {
	binary.LittleEndian.PutUint32(dst[frmCRC:], crc32.Update(salt, castagnoli, dst[frmLength:]))
}

// AppendFrame appends a whole frame, header and payload, to dst and returns
// the extended slice. It does not allocate when dst has room for
// FrameSize(len(payload)) more bytes. It panics as EncodeFrameHeader does.
func AppendFrame(dst []byte, salt uint32, h FrameHeader, payload []byte) []byte {
	n := len(dst)
	dst = grow(dst, FrameSize(len(payload)))
	EncodeFrameHeader(dst[n:], salt, h, payload)
	copy(dst[n+FrameHeaderSize:], payload)
	return dst
}

// DecodeFrameHeader decodes the frame header in b[:FrameHeaderSize] without
// validating anything: it is for tools that show raw bytes. Readers validate
// frames through Reader.
func DecodeFrameHeader(b []byte) (FrameHeader, error) {
	if len(b) < FrameHeaderSize {
		return FrameHeader{}, fmt.Errorf("segment: frame header needs %d bytes, have %d", FrameHeaderSize, len(b))
	}
	return decodeFrameHeader(b), nil
}

func decodeFrameHeader(b []byte) FrameHeader {
	_ = b[FrameHeaderSize-1]
	return FrameHeader{
		CRC:    binary.LittleEndian.Uint32(b[frmCRC:]),
		Length: binary.LittleEndian.Uint32(b[frmLength:]),
		LSN:    binary.LittleEndian.Uint64(b[frmLSN:]),
		Lag:    binary.LittleEndian.Uint32(b[frmLag:]),
		Type:   b[frmType],
		Flags:  b[frmFlags],
		Epoch:  binary.LittleEndian.Uint16(b[frmEpoch:]),
	}
}

// frameCRC computes a frame's checksum from its encoded header (the stored
// checksum in hdr[0:4] is not covered) and its payload.
func frameCRC(salt uint32, hdr, payload []byte) uint32 {
	return crc32.Update(crc32.Update(salt, castagnoli, hdr[frmLength:FrameHeaderSize]), castagnoli, payload)
}

// grow extends b by n bytes, reallocating only when the capacity is short.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+max(n, cap(b)))
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// FileName returns the file name of the segment whose first record has LSN
// baseLSN: the LSN in decimal, zero-padded to 20 digits, and FileSuffix, so
// that names sort by base LSN.
func FileName(baseLSN uint64) string {
	var b [fileNameDigits + len(FileSuffix)]byte
	s := strconv.AppendUint(b[:0], baseLSN, 10)
	pad := fileNameDigits - len(s)
	copy(b[pad:], s)
	for i := range pad {
		b[i] = '0'
	}
	copy(b[fileNameDigits:], FileSuffix)
	return string(b[:])
}

// ParseFileName returns the base LSN named by a segment file name made by
// FileName. Every other name, including temporary files (TempFileSuffix),
// names of another width, names with anything but digits before the suffix,
// and base LSN 0, is not a segment: ok is false, so that a foreign file in a
// log directory is never read as part of the log.
func ParseFileName(name string) (baseLSN uint64, ok bool) {
	digits, found := strings.CutSuffix(name, FileSuffix)
	if !found || len(digits) != fileNameDigits {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

// List reads the directory dir and returns the base LSNs of the segment files
// in it in ascending order, and the names of every other entry (foreign
// files, temporary files, subdirectories) sorted, so that the caller can
// report or ignore them. It reads no file.
func List(dir string) (baseLSNs []uint64, other []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if base, ok := ParseFileName(e.Name()); ok && e.Type().IsRegular() {
			baseLSNs = append(baseLSNs, base)
		} else {
			other = append(other, e.Name())
		}
	}
	slices.Sort(baseLSNs)
	slices.Sort(other)
	return baseLSNs, other, nil
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	return lastNonZero(b) < 0
}

// zeroBlock is what lastNonZero compares long zero runs with.
var zeroBlock [16 << 10]byte

// lastNonZero returns the index of the last non-zero byte of b, or -1.
// Recovery runs it over the zeros after a segment's last frame, often tens
// of MiB: whole blocks are compared with bytes.Equal, which uses the
// CPU's vector instructions, before words and bytes.
func lastNonZero(b []byte) int {
	i := len(b)
	for i >= len(zeroBlock) && bytes.Equal(b[i-len(zeroBlock):i], zeroBlock[:]) {
		i -= len(zeroBlock)
	}
	for i >= 8 {
		if binary.LittleEndian.Uint64(b[i-8:]) != 0 {
			break
		}
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

// lagFor returns the Lag field for a record lsn written while every LSN <=
// durable was acknowledged. A lag too large for the field is capped: that
// claims a lower watermark than the truth, which is always safe.
func lagFor(lsn, durable uint64) uint32 {
	return uint32(min(lsn-durable, math.MaxUint32))
}
