package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The raw baseline: the simple physical reference any WAL should approach.
// One preallocated, pre-zeroed file (zeroed and synced at Open, off the
// clock), records framed as [length u32][crc32c u32][payload], written with
// pwrite + fdatasync by one flusher goroutine that takes every record queued
// while the previous flush ran (one-flusher group commit). In sync mode the
// file is a ring: writes wrap to offset 0 at the end, always overwriting
// blocks that were already written, which is what pre-zeroing buys.

const (
	rawFile        = "raw.log"
	rawFrameHeader = 8
	rawMinSize     = 64 << 20
	rawBulkBuffer  = 1 << 20
	rawPage        = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func rawAdapter() *Adapter {
	return &Adapter{
		Name:      "raw",
		Lib:       "raw",
		How:       "baseline: pre-zeroed file, pwrite + fdatasync, one-flusher group commit",
		Checksums: true,
		BulkNote:  "pwrite of 1 MiB buffers, one fdatasync at the end",
		Open:      openRaw,
		Replay:    replayRaw,
		Primary:   true,
	}
}

// rawPadAdapter is the raw baseline with each flush padded with zeros to
// the next 4 KiB boundary of the file before its fdatasync, so that the
// next flush starts on a page of its own: what page-aligned batches would
// buy in device bytes (the unpadded baseline writes the page a flush ends in
// again with the next one). An experiment, not a format: its padding reads
// as the end of the log, so it runs the durable-append workload only.
func rawPadAdapter() *Adapter {
	a := rawAdapter()
	a.Name, a.Primary = "raw-pad", false
	a.How = "raw baseline, each flush padded with zeros to a 4 KiB boundary"
	a.Open = func(dir string, o OpenOptions) (Log, error) {
		if o.Mode != ModeSync {
			return nil, errors.New("raw-pad: durable appends only")
		}
		return openRawLog(dir, o, true)
	}
	return a
}

type rawLog struct {
	f    *os.File
	fd   int
	size int64 // pre-zeroed bytes
	wrap bool
	pad  []byte // raw-pad: zeros to end each flush on a page boundary
	off  int64  // next write offset (owned by the flusher, or the bulk writer)
	gc   *groupCommit
	bulk []byte
}

func rawFrame(dst, p []byte) []byte {
	var h [rawFrameHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(p)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(p, castagnoli))
	dst = append(dst, h[:]...)
	return append(dst, p...)
}

func openRaw(dir string, o OpenOptions) (Log, error) { return openRawLog(dir, o, false) }

func openRawLog(dir string, o OpenOptions, pad bool) (Log, error) {
	size := int64(rawMinSize)
	if o.Capacity > 0 {
		size = max(size, (o.Capacity+1<<20-1)&^(1<<20-1))
	}
	path := filepath.Join(dir, rawFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	l := &rawLog{f: f, fd: int(f.Fd()), size: size, wrap: o.Mode == ModeSync}
	if pad {
		l.pad = make([]byte, rawPage)
	}
	if err := l.zero(); err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	if o.Mode == ModeSync {
		l.gc = newGroupCommit(l.flush, rawFrame)
	} else {
		l.bulk = make([]byte, 0, rawBulkBuffer+64<<10)
	}
	return l, nil
}

// zero writes zeros over the whole file and syncs it, so that every later
// write overwrites already-written blocks.
func (l *rawLog) zero() error {
	z := make([]byte, 4<<20)
	for off := int64(0); off < l.size; off += int64(len(z)) {
		n := min(int64(len(z)), l.size-off)
		if _, err := unix.Pwrite(l.fd, z[:n], off); err != nil {
			return fmt.Errorf("raw: zero: %w", err)
		}
	}
	if err := unix.Fdatasync(l.fd); err != nil {
		return fmt.Errorf("raw: sync zeroed file: %w", err)
	}
	return nil
}

func (l *rawLog) pwriteAll(b []byte) error {
	if l.wrap && l.off+int64(len(b)) > l.size {
		l.off = 0
	}
	for len(b) > 0 {
		n, err := unix.Pwrite(l.fd, b, l.off)
		if err != nil {
			return fmt.Errorf("raw: pwrite at %d: %w", l.off, err)
		}
		b = b[n:]
		l.off += int64(n)
	}
	return nil
}

func (l *rawLog) flush(b *gcBatch) error {
	if err := l.pwriteAll(b.buf); err != nil {
		return err
	}
	if n := (rawPage - l.off%rawPage) % rawPage; l.pad != nil && n > 0 {
		if err := l.pwriteAll(l.pad[:n]); err != nil {
			return err
		}
	}
	if err := unix.Fdatasync(l.fd); err != nil {
		return fmt.Errorf("raw: fdatasync: %w", err)
	}
	return nil
}

func (l *rawLog) Append(p []byte) error {
	if l.gc == nil {
		return errors.New("raw: not opened in sync mode")
	}
	return l.gc.Append(p)
}

func (l *rawLog) BulkAppend(p []byte) error {
	if l.bulk == nil {
		return errNoBulk
	}
	l.bulk = rawFrame(l.bulk, p)
	if len(l.bulk) >= rawBulkBuffer {
		err := l.pwriteAll(l.bulk)
		l.bulk = l.bulk[:0]
		return err
	}
	return nil
}

func (l *rawLog) BulkSync() error {
	if err := l.pwriteAll(l.bulk); err != nil {
		return err
	}
	l.bulk = l.bulk[:0]
	return unix.Fdatasync(l.fd)
}

func (l *rawLog) Close() error {
	var err error
	if l.gc != nil {
		err = l.gc.Close()
	}
	return errors.Join(err, l.f.Close())
}

// replayRaw reads the file front to back in 4 MiB preads, verifying each
// record's CRC-32C, and stops at the first zeroed frame header (the
// pre-zeroed space after the last record) or at the end of the file.
func replayRaw(dir string, fn func(p []byte) error, ph *phases) error {
	ph.start()
	f, err := os.Open(filepath.Join(dir, rawFile))
	if err != nil {
		return err
	}
	defer f.Close()
	defer func() { ph.Read = ph.lap() }()
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	buf := make([]byte, 4<<20)
	var off int64 // file offset of buf[0]
	have := 0     // valid bytes in buf
	eof := false
	pos := 0 // parse position in buf
	for {
		if !eof && (have-pos < rawFrameHeader || have-pos < rawFrameHeader+int(binary.LittleEndian.Uint32(buf[pos:]))) {
			// Move the partial frame to the front and refill.
			n := copy(buf, buf[pos:have])
			off += int64(pos)
			pos, have = 0, n
			if need := rawFrameHeader; have >= need {
				if want := need + int(binary.LittleEndian.Uint32(buf)); want > len(buf) {
					nb := make([]byte, want)
					copy(nb, buf[:have])
					buf = nb
				}
			}
			for have < len(buf) && !eof {
				m, err := f.ReadAt(buf[have:], off+int64(have))
				have += m
				if err == io.EOF {
					eof = true
				} else if err != nil {
					return err
				}
			}
			continue
		}
		if have-pos < rawFrameHeader {
			return nil // end of file
		}
		n := int(binary.LittleEndian.Uint32(buf[pos:]))
		sum := binary.LittleEndian.Uint32(buf[pos+4:])
		if n == 0 && sum == 0 {
			return nil // pre-zeroed space: the end of the log
		}
		if have-pos < rawFrameHeader+n {
			return fmt.Errorf("raw: torn record at %d", off+int64(pos))
		}
		p := buf[pos+rawFrameHeader : pos+rawFrameHeader+n]
		if crc32.Checksum(p, castagnoli) != sum {
			return fmt.Errorf("raw: checksum mismatch at %d", off+int64(pos))
		}
		if err := fn(p); err != nil {
			return err
		}
		pos += rawFrameHeader + n
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
