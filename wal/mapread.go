package wal

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringwal/ringwal/internal/fsys"
)

// mapWindow is the size of the windows a Reader maps a segment in the page
// cache through (pwrite backend). PERFORMANCE.md, "Warm replay", has the
// figures.
const mapWindow = 4 << 20

// mapAlign: a map slot starts on a 2 MiB boundary (the largest folio the
// page cache holds on x86-64, and what one page-table entry of the level
// above maps), and a window lies in its slot at its file offset modulo
// mapAlign. Virtual addresses and file offsets then agree modulo 2 MiB, so
// a large folio of the page cache lies in as few page tables as it can and
// each page fault maps as much of it as the kernel maps at once: a warm
// replay of 512 MiB took 21% fewer page faults and ran 4-5% faster than
// with the slot where mmap put it (PERFORMANCE.md, "Warm replay").
const mapAlign = 2 << 20

var (
	pageSize = os.Getpagesize()
	pageMask = int64(pageSize - 1)
	// mapSlotSize holds a window of mapWindow bytes and the page it was
	// moved back to start on, placed at up to mapAlign-pageSize bytes into
	// the slot.
	mapSlotSize = mapWindow + mapAlign
)

// A mapSlot is an address range that a reader maps its windows into, each
// replacing the one before in place (MAP_FIXED). From its making to the
// process's end the range stays mapped and readable: file windows while a
// reader uses it, anonymous memory once given back. So a record's Data kept
// past its validity (the next Next or Close) reads stale bytes and never
// faults, as with a read buffer. Given-back slots serve the next readers:
// the process holds as many as readers ever read through mappings at once.
//
// The windows are private writable mappings: a caller that writes into a
// record's Data changes a copy of the page, never the file.
type mapSlot struct {
	mem []byte
}

var mapSlots struct {
	mu   sync.Mutex
	free []*mapSlot
}

// takeMapSlot returns a given-back slot, or makes one.
func takeMapSlot() (*mapSlot, error) {
	mapSlots.mu.Lock()
	if n := len(mapSlots.free); n > 0 {
		s := mapSlots.free[n-1]
		mapSlots.free = mapSlots.free[:n-1]
		mapSlots.mu.Unlock()
		return s, nil
	}
	mapSlots.mu.Unlock()
	// Reserve mapAlign more than the slot, keep the part that starts on a
	// mapAlign boundary and give the rest back (mmap aligns only mappings
	// of whole 2 MiB units, and not all kernels those).
	n := mapSlotSize + mapAlign
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, err
	}
	all := unsafe.Slice((*byte)(p), n)
	head := int((mapAlign - uintptr(p)%mapAlign) % mapAlign)
	if head > 0 {
		_ = unix.MunmapPtr(p, uintptr(head)) // a failure leaves unused addresses mapped
	}
	// head < mapAlign: a tail is always left over.
	_ = unix.MunmapPtr(unsafe.Pointer(&all[head+mapSlotSize]), uintptr(mapAlign-head))
	return &mapSlot{mem: all[head : head+mapSlotSize : head+mapSlotSize]}, nil
}

// mapFile maps n bytes of the file fd from off (page-aligned) into the
// slot, over what was there, at off modulo mapAlign.
func (s *mapSlot) mapFile(fd int, off int64, n int) ([]byte, error) {
	at := int(off % mapAlign)
	if n > len(s.mem)-at {
		return nil, fmt.Errorf("wal: map %d bytes at offset %d: more than a map slot holds", n, off)
	}
	_, err := unix.MmapPtr(fd, off, unsafe.Pointer(&s.mem[at]), uintptr(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	if err != nil {
		return nil, err
	}
	return s.mem[at : at+n : at+n], nil
}

// giveBack replaces the slot's file windows by anonymous memory and keeps
// it for the next reader. The bytes of keep, when it lies in the slot (the
// last record a reader returned), read unchanged after; the rest reads as
// zeros. A slot that cannot be remapped (the kernel out of memory) is never
// used again, and stays as it was.
func (s *mapSlot) giveBack(keep []byte) {
	var saved []byte
	lo := 0
	if len(keep) > 0 {
		base := uintptr(unsafe.Pointer(&s.mem[0]))
		at := uintptr(unsafe.Pointer(&keep[0]))
		if at >= base && at-base+uintptr(len(keep)) <= uintptr(len(s.mem)) {
			lo = int(int64(at-base) &^ pageMask)
			hi := int(at-base) + len(keep)
			saved = append([]byte(nil), s.mem[lo:hi]...)
		}
	}
	_, err := unix.MmapPtr(-1, 0, unsafe.Pointer(&s.mem[0]), uintptr(len(s.mem)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_FIXED)
	if err != nil {
		return
	}
	copy(s.mem[lo:], saved)
	mapSlots.mu.Lock()
	mapSlots.free = append(mapSlots.free, s)
	mapSlots.mu.Unlock()
}

// mappedReader reads a segment whose pages are in the page cache through
// one mapped window at a time: the segment reader verifies each frame and
// returns its payload in place, where a read would first copy every byte
// out of the page cache. It serves segment.Reader as a Viewer; a view is
// valid until the next View. Where a mapping is refused (address space or
// the count of mappings exhausted), View reads into a buffer of its own
// instead, and onErr hears why, once.
//
// A page that cannot be read in (a media error, or a page past the end of a
// shortened file) faults on access. View reads one byte of every page of a
// new window up to the data's end, with faults turned into panics it
// recovers (debug.SetPanicOnFault), so a window that cannot be read is an
// error (EIO) from View, and from Reader.Next, not the end of the process.
// What is left: a page evicted after that and then unreadable, or a file
// shortened under the window in use, faults where the page is read next
// (in the segment reader, or in a caller's code reading a record's Data).
// Nothing in this module shortens a segment file: TruncateBack renames a
// copy over it, and walctl's repair zeroes and renames, under the log's lock.
type mappedReader struct {
	segmentFile
	size int64
	slot *mapSlot
	m    []byte // the current window, in slot.mem
	mOff int64  // file offset of m[0]
	buf  []byte // for reads when a mapping is refused
	// readSize is the size of those reads (at least): replayBuffer for a
	// segment in the page cache, coldReplayBuffer for one on the disk.
	readSize int
	// seq: the segment is read from the disk; its windows are advised
	// sequential (MADV_SEQUENTIAL), so their page faults read ahead as a
	// sequential read does, not around the faulting page.
	seq bool
	// huge: the windows are advised MADV_HUGEPAGE (Options.ReplayHugePages,
	// a segment read from the disk), so their page faults read ahead in
	// 2 MiB folios.
	huge  bool
	onErr func(error)
	err   error // the refusal: every later view is read
	maps  int   // windows mapped

	dataEnd int64 // end of the data when the reader opened the file (-1: its end): no page after it is read ahead
	touched byte  // what prefault read
}

func newMappedReader(f *os.File, size int64, buf []byte, onErr func(error), refuse error) *mappedReader {
	return &mappedReader{segmentFile: segmentFile{f}, size: size, buf: buf, onErr: onErr, err: refuse, dataEnd: -1, readSize: replayBuffer}
}

// ReadAt reads from the file (the segment reader reads the header and
// records larger than a window this way).
func (v *mappedReader) ReadAt(p []byte, off int64) (int, error) { return v.f.ReadAt(p, off) }

// View returns the file's bytes from off on, most of them or up to the end
// of the file, mapping them unless the current window holds them.
func (v *mappedReader) View(off int64, least, most int) ([]byte, error) {
	if off < 0 || least < 0 || least > most || most > mapWindow {
		return nil, fmt.Errorf("wal: view of [%d, %d] bytes at offset %d", least, most, off)
	}
	if off >= v.size {
		return nil, io.EOF
	}
	end := min(off+int64(most), v.size)
	if v.m != nil && off >= v.mOff && end <= v.mOff+int64(len(v.m)) {
		return v.m[off-v.mOff : end-v.mOff], nil
	}
	v.m = nil
	if v.err == nil {
		m, err := v.mapWindow(off, end)
		if err == nil {
			// A page that cannot be read in is an error, not a
			// reason to read the file otherwise.
			if err := v.prefault(m, off); err != nil {
				v.m = nil
				return nil, err
			}
			return m, nil
		}
		v.err = err
	}
	if v.onErr != nil {
		v.onErr(fmt.Errorf("wal: map %s: %w", v.f.Name(), v.err))
		v.onErr = nil
	}
	// Read windows of the size that reads best from where the segment is.
	n := int(min(end-off, int64(max(least, v.readSize))))
	if cap(v.buf) < n {
		v.buf = make([]byte, n)
	}
	got, err := v.f.ReadAt(v.buf[:n], off)
	if got >= least {
		err = nil
	}
	return v.buf[:got], err
}

// mapWindow maps the file bytes [off, end) into the slot.
func (v *mappedReader) mapWindow(off, end int64) ([]byte, error) {
	if v.slot == nil {
		s, err := takeMapSlot()
		if err != nil {
			return nil, err
		}
		v.slot = s
	}
	start := off &^ pageMask
	m, err := v.slot.mapFile(int(v.f.Fd()), start, int(end-start))
	if err != nil {
		// A failed MAP_FIXED may have unmapped the range: give the slot
		// back (remapped) or lose it.
		v.slot.giveBack(nil)
		v.slot = nil
		return nil, err
	}
	if v.huge {
		fsys.AdviseHugePages(m)
	}
	if v.seq {
		_ = unix.Madvise(m, unix.MADV_SEQUENTIAL) // advice: a refusal changes nothing read
	}
	v.m, v.mOff = m, start
	v.maps++
	return m[off-start:], nil
}

// prefault reads one byte of every page of b, a new window from file offset
// off on, up to the end of the data, so that a page that cannot be read in
// faults here, where the fault becomes an error, and not later, where a
// record is read.
func (v *mappedReader) prefault(b []byte, off int64) (err error) {
	if v.dataEnd >= 0 {
		b = b[:max(0, min(int64(len(b)), v.dataEnd-off))]
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = v.fault(p)
		}
	}()
	var x byte
	for i := 0; i < len(b); i += pageSize {
		x |= b[i]
	}
	v.touched = x
	return nil
}

// fault turns p, recovered from a read through the mapping, into an error
// if it is a fault on an address in the slot, and panics again otherwise.
func (v *mappedReader) fault(p any) error {
	if e, ok := p.(interface{ Addr() uintptr }); ok && v.slot != nil {
		base := uintptr(unsafe.Pointer(&v.slot.mem[0]))
		if a := e.Addr(); a >= base && a-base < uintptr(len(v.slot.mem)) {
			return fmt.Errorf("wal: read %s through a mapping: %w (a page could not be read in: a media error, or the file was shortened)", v.f.Name(), syscall.EIO)
		}
	}
	panic(p)
}

// Close gives the slot back, keeping the bytes of keep (see giveBack). It
// does not close the file.
func (v *mappedReader) Close(keep []byte) {
	if v.slot != nil {
		v.slot.giveBack(keep)
		v.slot = nil
	}
	v.m = nil
}

// mapHold holds a Reader's mappedReader for the cleanup of a Reader that
// was never closed: the mapping would keep the segment file, deleted or not,
// and its disk space, for the life of the process.
type mapHold struct {
	mr *mappedReader
}

func (h *mapHold) release() {
	if h.mr != nil {
		h.mr.Close(nil)
		h.mr = nil
	}
}

// noteMapError logs, once per log, that a replay reads a segment in the
// page cache with pread because it could not map it.
func (w *WAL) noteMapError(err error) {
	w.noMap.Do(func() {
		w.log.Warn("replay could not map a segment, reading it with pread", "err", err)
	})
}
