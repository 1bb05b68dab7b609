package segment

import "fmt"

// VerifyFrame checks one whole frame, header and payload, in isolation: type,
// flags (those of the newest version: a caller reading a version 1 segment
// that must refuse FlagPadToPage checks it itself), the length against len(frame)-FrameHeaderSize, and the checksum
// seeded with the segment's salt. It returns the decoded header and the
// payload (a subslice of frame). Random reads by LSN use it: the caller knows
// where the frame is and what LSN it must carry, and checks that itself.
func VerifyFrame(salt uint32, frame []byte) (FrameHeader, []byte, error) {
	if len(frame) < FrameHeaderSize {
		return FrameHeader{}, nil, fmt.Errorf("%w: frame of %d bytes is shorter than its header", ErrCorrupt, len(frame))
	}
	fh := decodeFrameHeader(frame)
	payload := frame[FrameHeaderSize:]
	switch {
	case fh.Type != TypeRecord:
		return fh, nil, fmt.Errorf("%w: bad frame type %d", ErrCorrupt, fh.Type)
	case fh.Flags&^FrameFlags != 0:
		return fh, nil, fmt.Errorf("%w: unknown frame flags %#x", ErrCorrupt, fh.Flags)
	case fh.Lag == 0 || uint64(fh.Lag) > fh.LSN:
		return fh, nil, fmt.Errorf("%w: lag %d outside [1, lsn %d]", ErrCorrupt, fh.Lag, fh.LSN)
	case int(fh.Length) != len(payload):
		return fh, nil, fmt.Errorf("%w: frame length %d, expected %d", ErrCorrupt, fh.Length, len(payload))
	case frameCRC(salt, frame[:FrameHeaderSize], payload) != fh.CRC:
		return fh, nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return fh, payload, nil
}
