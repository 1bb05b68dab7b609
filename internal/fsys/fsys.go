// Package fsys holds the few file system calls the log makes that differ
// between Linux and other Unix systems. On Linux they are the calls
// themselves; elsewhere the log runs on the pwrite backend (io_uring is
// Linux only), with a full sync where Linux has fdatasync, no writeback
// hints, and zero-filled instead of fallocated segments.
package fsys
