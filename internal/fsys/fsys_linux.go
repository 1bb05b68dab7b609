//go:build linux

package fsys

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Fdatasync makes the file's data, and the metadata needed to read it back,
// durable: fdatasync(2).
func Fdatasync(fd int) error { return unix.Fdatasync(fd) }

// StartWriteback starts writing [off, off+n) back to the disk without
// waiting: sync_file_range(2) with SYNC_FILE_RANGE_WRITE. It makes nothing
// durable; the fdatasync that follows has less left to do.
func StartWriteback(fd int, off, n int64) error {
	return unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// WaitWriteback waits until the writeback already under way in [off,
// off+n) has reached the disk: sync_file_range(2) with
// SYNC_FILE_RANGE_WAIT_BEFORE. It starts nothing and makes nothing durable.
func WaitWriteback(fd int, off, n int64) error {
	return unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE)
}

// Fallocate reserves [off, off+n) of the file: fallocate(2). It reports
// false, and no error, where the file system does not support it (ext2,
// ramfs, some NFS and FUSE file systems).
func Fallocate(fd int, off, n int64) (bool, error) {
	err := unix.Fallocate(fd, 0, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return false, nil
	}
	return err == nil, err
}

// AdviseSequential tells the kernel the file will be read front to back (a
// larger read-ahead). It is a hint: errors are ignored.
func AdviseSequential(fd int) { _ = unix.Fadvise(fd, 0, 0, unix.FADV_SEQUENTIAL) }

// AdviseHugePages asks the kernel to back the mapping b with transparent
// huge pages where it can (MADV_HUGEPAGE): for a file mapping, a page fault
// that finds nothing cached reads ahead in 2 MiB folios. It is a hint:
// errors are ignored.
func AdviseHugePages(b []byte) { _ = unix.Madvise(b, unix.MADV_HUGEPAGE) }

// DropCached asks the kernel to drop the clean, unmapped pages of
// [off, off+n) of the file from the page cache (POSIX_FADV_DONTNEED). Dirty
// pages are not dropped (their writeback is started). It is a hint: errors
// are ignored.
func DropCached(fd int, off, n int64) { _ = unix.Fadvise(fd, off, n, unix.FADV_DONTNEED) }

// Cached reports the fraction of the pages of [off, off+n) of the file that
// are in the page cache, as cachestat(2) counts them (Linux 6.5 and later;
// it reads nothing and starts no read-ahead). known is false where the
// kernel cannot say.
func Cached(fd int, off, n int64) (frac float64, known bool) {
	if n <= 0 {
		return 1, true
	}
	page := int64(unix.Getpagesize())
	first, end := off/page, (off+n+page-1)/page
	r := unix.CachestatRange{Off: uint64(first * page), Len: uint64((end - first) * page)}
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(fd), &r, &st, 0); err != nil {
		return 0, false
	}
	return min(1, float64(st.Cache)/float64(end-first)), true
}
