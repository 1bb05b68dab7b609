//go:build linux

package segment

import (
	"io"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FS_IOC_FIEMAP and its flags (linux/fiemap.h, linux/fs.h); golang.org/x/sys
// does not define them.
const (
	fsIocFiemap        = 0xC020660B
	fiemapFlagSync     = 0x1   // FIEMAP_FLAG_SYNC: write dirty pages back first
	fiemapExtentLast   = 0x1   // FIEMAP_EXTENT_LAST
	fiemapExtentUnwrit = 0x800 // FIEMAP_EXTENT_UNWRITTEN: allocated, reads as zeros
	fiemapExtents      = 32    // extents asked for per call
)

// fiemapExtent is struct fiemap_extent.
type fiemapExtent struct {
	logical  uint64
	physical uint64
	length   uint64
	_        [2]uint64
	flags    uint32
	_        [3]uint32
}

// fiemapReq is struct fiemap followed by room for fiemapExtents extents.
type fiemapReq struct {
	start         uint64
	length        uint64
	flags         uint32
	mappedExtents uint32
	extentCount   uint32
	_             uint32
	extents       [fiemapExtents]fiemapExtent
}

// extentDataEnd returns an offset in [x, size] after which the file behind
// ra reads as zeros without being read: past it there is only space that was
// never allocated (a hole) or that was allocated and never written (an
// unwritten extent, as fallocate leaves it). It asks the file system for the
// file's extents (FS_IOC_FIEMAP, after writing dirty pages back so that an
// unwritten extent holds no data waiting in the page cache). ok is false
// where ra is not a file or the file system cannot say; the caller then
// falls back to lseek, or reads.
//
// Unlike lseek's SEEK_DATA, which ext4 and xfs answer from the page cache
// too, the answer does not depend on what was read before: a zero page of an
// unwritten extent that a read (or the kernel's read-ahead) has cached is
// data for SEEK_DATA, so a segment's fallocated tail, once read, was read
// again at every Open.
func extentDataEnd(ra io.ReaderAt, x, size int64) (end int64, ok bool) {
	sc, isConn := ra.(syscall.Conn)
	if !isConn {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var req fiemapReq
	end, ok = x, true
	cerr := rc.Control(func(fd uintptr) {
		flags := uint32(fiemapFlagSync)
		for off := x; off < size; {
			req = fiemapReq{start: uint64(off), length: uint64(size - off), flags: flags, extentCount: fiemapExtents}
			flags = 0 // written back once
			_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, fsIocFiemap, uintptr(unsafe.Pointer(&req)))
			if errno != 0 || req.mappedExtents > fiemapExtents {
				ok = false
				return
			}
			if req.mappedExtents == 0 {
				return // nothing allocated at or after off
			}
			next := off
			for _, e := range req.extents[:req.mappedExtents] {
				lo, hi := int64(e.logical), int64(e.logical+e.length)
				if hi <= lo || hi <= next {
					ok = false // not the ascending extents the call promises
					return
				}
				next = hi
				if e.flags&fiemapExtentUnwrit == 0 && lo < size {
					end = max(end, min(hi, size))
				}
				if e.flags&fiemapExtentLast != 0 {
					return
				}
			}
			off = next
		}
	})
	if cerr != nil || !ok {
		return 0, false
	}
	return end, true
}
