package raftlog

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

// FormatVersion is the version byte that starts every encoded entry
// (on-disk format; see the package documentation).
const FormatVersion = 1

// Layout of an encoded entry, version 1 (on-disk format).
const (
	offVersion   = 0
	offType      = 1
	offIndex     = 2
	offTerm      = 10
	offSec       = 18
	offNsec      = 26
	offDataLen   = 30
	offExtLen    = 34
	entryHdrSize = 38
)

// EncodedSize is the size of l once encoded.
func EncodedSize(l *raft.Log) int {
	return entryHdrSize + len(l.Data) + len(l.Extensions)
}

// AppendLog appends the encoding of l (version FormatVersion) to dst and
// returns the extended slice. It fails only when Data or Extensions do not
// fit a 32-bit length.
func AppendLog(dst []byte, l *raft.Log) ([]byte, error) {
	if uint64(len(l.Data)) > math.MaxUint32 || uint64(len(l.Extensions)) > math.MaxUint32 {
		return dst, fmt.Errorf("raftlog: entry %d: data (%d bytes) or extensions (%d bytes) over 4 GiB",
			l.Index, len(l.Data), len(l.Extensions))
	}
	var h [entryHdrSize]byte
	h[offVersion] = FormatVersion
	h[offType] = byte(l.Type)
	binary.LittleEndian.PutUint64(h[offIndex:], l.Index)
	binary.LittleEndian.PutUint64(h[offTerm:], l.Term)
	binary.LittleEndian.PutUint64(h[offSec:], uint64(l.AppendedAt.Unix()))
	binary.LittleEndian.PutUint32(h[offNsec:], uint32(l.AppendedAt.Nanosecond()))
	binary.LittleEndian.PutUint32(h[offDataLen:], uint32(len(l.Data)))
	binary.LittleEndian.PutUint32(h[offExtLen:], uint32(len(l.Extensions)))
	dst = append(dst, h[:]...)
	dst = append(dst, l.Data...)
	return append(dst, l.Extensions...), nil
}

// DecodeLog decodes an entry written by AppendLog into l. Data and
// Extensions alias b. Errors wrap ErrUnsupportedVersion or ErrCorrupt.
func DecodeLog(b []byte, l *raft.Log) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty entry", ErrCorrupt)
	}
	if b[offVersion] != FormatVersion {
		return fmt.Errorf("%w: entry version %d (this build reads %d)", ErrUnsupportedVersion, b[offVersion], FormatVersion)
	}
	if len(b) < entryHdrSize {
		return fmt.Errorf("%w: entry of %d bytes, shorter than its %d-byte header", ErrCorrupt, len(b), entryHdrSize)
	}
	nsec := binary.LittleEndian.Uint32(b[offNsec:])
	dlen := uint64(binary.LittleEndian.Uint32(b[offDataLen:]))
	elen := uint64(binary.LittleEndian.Uint32(b[offExtLen:]))
	if want := entryHdrSize + dlen + elen; uint64(len(b)) != want {
		return fmt.Errorf("%w: entry of %d bytes, its lengths say %d", ErrCorrupt, len(b), want)
	}
	if nsec >= 1e9 {
		return fmt.Errorf("%w: appended_at nanoseconds %d", ErrCorrupt, nsec)
	}
	*l = raft.Log{
		Type:       raft.LogType(b[offType]),
		Index:      binary.LittleEndian.Uint64(b[offIndex:]),
		Term:       binary.LittleEndian.Uint64(b[offTerm:]),
		AppendedAt: time.Unix(int64(binary.LittleEndian.Uint64(b[offSec:])), int64(nsec)).UTC(),
	}
	if dlen > 0 {
		end := entryHdrSize + dlen
		l.Data = b[entryHdrSize:end:end]
	}
	if elen > 0 {
		l.Extensions = b[entryHdrSize+dlen : len(b) : len(b)]
	}
	return nil
}
