// Package inspect reads a ringwal log directory (or one segment file) the way
// an operator needs it after something went wrong: every segment, every
// record, every problem with its place, and what a repair would keep. It is
// the library behind walctl's ls, stat, dump, verify and repair commands.
//
// Inspection is read-only and takes no lock: Scan opens files for reading
// only, so it is safe on a live log that a process is appending to (it sees
// some consistent prefix of each segment; records appended while it runs
// may or may not appear). Only Repair without DryRun modifies anything, and
// it takes the log's lock first.
//
// Problems are classified as the wal's recovery classifies them (see
// segment/doc.go, "Recognising the end and recovery", and wal/recover.go):
//
//   - Segment files at the end of the log whose header is all zeros are
//     Notes: a crash during rotation leaves them, and wal.Open removes
//     them. The segment before them is the last one. A header-less segment
//     that a segment with a header follows is Corruption.
//   - A torn tail in the last segment is a Note: a crash leaves one, and
//     wal.Open cuts it. A torn tail in any other segment is Corruption.
//   - A segment whose sequence number or base LSN does not continue the
//     segment before it is Corruption (a segment is missing, or a foreign
//     one was put in).
//   - A header of another format version is Unsupported: not damage, but
//     this package cannot read the segment.
//   - Files in the directory that are not segments are Notes; the wal
//     ignores them (and removes prepared *.tmp files on Open). The lock
//     file is not reported.
//
// Atomic batches are honoured: a record is part of the log only when its
// whole batch is, so the records of a batch cut short by a torn tail or by
// damage are neither counted nor returned, and a repair cuts at the start of
// that batch.
package inspect
