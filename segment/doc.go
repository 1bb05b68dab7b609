// Package segment owns the bytes on disk of a ringwal log: the segment file
// format (versions 1 and 2), file names, frame encoding, and the reader and writer of
// one segment file. It knows nothing about rings, buffer pools or
// concurrency; the wal package builds ordering, batching and recovery of a
// whole log on top of it.
//
// This comment is the specification of format version 2, and of version 1,
// which differs from it only in that its frames are never padded
// (FlagPadToPage, "Record frame"). A reader of version 2 reads both; a
// version 1 reader refuses version 2 segments (ErrUnsupportedVersion).
//
// # Overview
//
// A log is a directory of segment files. Each segment holds the records with
// consecutive LSNs (log sequence numbers) from its base LSN on; the next
// segment starts with the LSN after the last record of the one before. LSNs
// start at 1. Every integer on disk is little-endian. Every checksum is
// CRC-32C (Castagnoli polynomial), as computed by
// github.com/klauspost/crc32.
//
// A segment file is a header region followed by frames:
//
//	0                64                         4096 (DataOffset)
//	+----------------+--------- zeros ----------+-------+-------+-----+-------- zeros --------+
//	| segment header |                          | frame | frame | ... |  (preallocated space) |
//	+----------------+--------------------------+-------+-------+-----+-----------------------+
//
// Files are preallocated (zero-filled or fallocated) to the segment size, so
// the space after the last frame reads as zeros, except in a recycled segment
// (header flag Recycled, below), whose file held an earlier segment and is
// overwritten in place: there the space after the last frame may hold that
// segment's stale frames. A file may also be shorter
// than its header's Size, for example after a crash before preallocation
// reached the disk; a reader goes by the actual file size.
//
// # File names
//
// A segment file is named by its base LSN in decimal, zero-padded to 20
// digits (the width of the largest uint64), with the suffix ".seg":
//
//	00000000000000000001.seg   base LSN 1
//	00000000000000004097.seg   base LSN 4097
//
// Names therefore sort by base LSN. FileName and ParseFileName convert. Any
// other name in a log directory is not a segment and is never read as one:
// other widths, non-digits, base LSN 0, and files being prepared, which end
// in ".tmp" (TempFileSuffix). List separates the two kinds.
//
// # Segment header
//
// The first HeaderSize (64) bytes of the file; the rest of the header region
// up to DataOffset (4096) is zero, so that frames start page-aligned.
//
//	 0       8   10  12      16              24              32              40  44  48              56  60  64
//	 +-------+---+---+-------+---------------+---------------+---------------+---+---+---------------+---+---+
//	 | Magic |Ver|HSz|DataOff|      Seq      |    BaseLSN    |     Size      |Slt|Flg|    Created    |rsv|CRC|
//	 +-------+---+---+-------+---------------+---------------+---------------+---+---+---------------+---+---+
//
//	offset size field       meaning
//	0      8    Magic       "RWALSEG\x00"
//	8      2    Version     2 (1 for segments written before version 2)
//	10     2    HeaderSize  64
//	12     4    DataOffset  4096
//	16     8    Seq         segment sequence number: 1 for the first segment, +1 for each new one
//	24     8    BaseLSN     LSN of the first record in the segment; equals the LSN in the file name
//	32     8    Size        size the file was preallocated to at creation; no frame is written past it
//	40     4    Salt        random per segment; seeds the checksum of every frame in it
//	44     4    Flags       bit 0 = Recycled: the file held an earlier segment, bytes after the last
//	                        frame may be stale ("Recycled segments"). Other bits must be 0
//	48     8    Created     creation time, Unix nanoseconds (informational)
//	56     4    reserved    0
//	60     4    CRC         CRC-32C of bytes [0,60), initial value 0
//
// A reader checks, in this order: all 64 bytes zero means the header never
// reached the disk (ErrNoHeader; the wal drops such a segment when it is the
// last one, the state a crash during rotation leaves, and likewise a last
// segment whose header is damaged while every byte after it is zero: a
// header write cut short, which the wal's rotation never follows with other
// writes until it completed); then the magic ("bad
// magic", corruption); then the checksum (corruption); then the version: an
// intact header of another version is refused with ErrUnsupportedVersion,
// not reported as corruption. Checking the checksum before the version means
// a damaged version field reads as damage; later versions keep the magic, the
// version and the checksum of [0,60) where they are so that this order keeps
// working. Finally HeaderSize, DataOffset, Seq != 0, BaseLSN != 0, Size >=
// DataOffset, no unknown Flags bits and reserved == 0 are checked (corruption if not), and a
// BaseLSN that differs from the file name's is corruption.
//
// # Record frame
//
// Each record is one frame: a 24-byte frame header followed by the payload.
// Frames are packed back to back from DataOffset on, with no alignment; a
// frame may span any page or buffer boundary. The one exception is padding:
// after a frame flagged PadToPage, the next frame starts at the next
// multiple of PageSize (4096) in the file, and the bytes in between are
// padding, zeros as written, never read as frames. A writer pads the last
// frame of a write it syncs, so that its next write starts on a page of its
// own instead of writing the same page again. A frame that ends on a
// multiple of PageSize is never flagged.
//
//	 0       4       8               16      20  21  22  24
//	 +-------+-------+---------------+-------+---+---+---+----------------------+
//	 |  CRC  |Length |      LSN      |  Lag  |Typ|Flg|Epc| payload (Length)     |
//	 +-------+-------+---------------+-------+---+---+---+----------------------+
//
//	offset size field   meaning
//	0      4    CRC     CRC-32C seeded with the segment's Salt over frame bytes [4,24) then the payload:
//	                    crc32.Update(crc32.Update(Salt, castagnoli, hdr[4:24]), castagnoli, payload)
//	4      4    Length  payload length in bytes; 0 is allowed (empty records are valid)
//	8      8    LSN     the record's LSN
//	16     4    Lag     LSN minus the writer's durable watermark when the frame was encoded;
//	                    1 <= Lag <= LSN. Every LSN <= LSN-Lag had been acknowledged when the frame was
//	                    written. A plain sequential writer writes 1.
//	20     1    Type    1 = record. 0 is never valid, so an all-zero frame never decodes; other
//	                    values are invalid (versions 1 and 2)
//	21     1    Flags   bit 0 = BatchContinues: the next frame belongs to the same atomic batch.
//	                    bit 1 = PadToPage (version 2 on): the next frame starts at the next
//	                    multiple of PageSize. Other bits must be 0 (bit 1 too in version 1)
//	22     2    Epoch   writer incarnation within the segment: 0 for the writer that created the
//	                    segment; a writer that resumes appending after a reopen uses the highest
//	                    epoch found in the segment + 1
//
// The payload length is limited by the reader's MaxRecordSize (default
// DefaultMaxRecordSize, 16 MiB) and by the format to MaxRecordSizeLimit
// (1 GiB). A writer must not write records longer than its readers accept.
//
// The checksum covers every header field as well as the payload, so a frame
// cannot be moved, renumbered or retyped without detection, and the salt
// makes a frame of another segment (or an older file on the same disk
// blocks) fail its checksum here.
//
// An atomic batch is a run of frames each flagged BatchContinues except the
// last: the batch is part of the log only if all of it is. A batch lies
// within one segment (a writer rotates between batches), so the last frame of
// a segment never has BatchContinues set.
//
// # Valid frames
//
// With L the LSN expected next (the header's BaseLSN for the first frame, one
// more than the previous frame's LSN after that) and E the previous frame's
// epoch (0 for the first frame), the frame at offset X is valid when:
//
//   - Type is 1 and the unknown flag bits are 0 (PadToPage is unknown in
//     version 1);
//   - Length <= MaxRecordSize and the frame fits in the file;
//   - the checksum matches;
//   - 1 <= Lag <= LSN;
//   - Epoch >= E: a frame with a lower epoch than the frame before it holds
//     stale bytes of an earlier incarnation; it marks the end of the log and is
//     never part of it;
//   - LSN == L.
//
// The first four conditions make a frame "valid in isolation": they need
// nothing but the frame and the file. A frame's watermark is LSN - Lag.
//
// # Recognising the end and recovery
//
// A reader applies these rules, and reports the outcome to its caller, which
// decides what to do with it:
//
//  1. Read frames in order from DataOffset. Each valid frame is a record;
//     the next frame is right after it or, if it is flagged PadToPage, at
//     the next multiple of PageSize (at the end of the file if that is
//     sooner: a file cut in the padding ends there).
//
//  2. At the first offset X without a valid frame (expected LSN L, previous
//     epoch E):
//
//     a. If every byte from X to the end of the file is zero, the log ends
//     cleanly at X (io.EOF). But if the last record had BatchContinues set,
//     its atomic batch is incomplete: that is a torn tail (rule d) whose cut
//     offset is the first frame of that batch.
//
//     b. Otherwise the written region ends at the last non-zero byte of the
//     file. Scan forward byte by byte from X+1 within it for frames valid
//     in isolation with LSN >= L and Epoch >= E; frames with a lower epoch
//     are stale and ignored. (A frame found valid is stepped over whole.)
//
//     c. If such a frame F has a watermark F.LSN-F.Lag >= L, its writer had
//     acknowledged LSN L before writing F, so whatever is at X lost an
//     acknowledged record: corruption, a *CorruptionError at offset X whose
//     reason names the failure at X ("checksum mismatch", "bad frame type 0",
//     "zero frame header", "record length N exceeds limit M", ...) and the
//     acknowledged frame that follows.
//
//     d. Otherwise (nothing valid follows, or only frames written before L
//     was acknowledged: a pipelined writer had several writes in flight when
//     it crashed) it is a torn tail: a *TornTailError with Offset, the cut
//     (X, or the first frame of the incomplete batch), End, one past the
//     last non-zero byte (at least the end of the frames cut), and LSN, the
//     first LSN not in the log.
//
//     e. A frame at X that is valid in isolation and not stale but carries
//     an LSN other than L is corruption, "lsn gap" (LSN > L) or "duplicate
//     lsn" (LSN < L), whatever follows it: a checksum-valid frame proves it
//     was written as such. A stale frame at X (Epoch < E) is an end of the
//     log, classified by rules a to d with stale frames ignored.
//
//  3. A header whose BaseLSN differs from the LSN in the file name is
//     corruption, "header base lsn N does not match file name".
//
//  4. In a recycled segment, rules a and d change: the bytes after the
//     written region are not zeros, so the scan of rule b runs to the last
//     non-zero byte of the file (in practice its end) and "written region"
//     means this segment's own frames. If the scan steps over no frame
//     valid in isolation (which, with this segment's salt, only this
//     segment's writers can have written) and no atomic batch is open, the
//     log ends cleanly at X (io.EOF). Otherwise it is a torn tail whose End
//     is one past the last such frame. Rule c is unchanged. When the
//     reader knows the segment's last LSN (ReaderOptions.LastLSN, from the
//     next segment's base: the segment is sealed), it ends with io.EOF after
//     that record and reads nothing after it.
//
// The wal cuts a torn tail in the last segment of the log: it writes zeros
// over [Offset, End) and syncs them before it appends again, so the next
// reader finds a clean end. A torn tail in any other segment is corruption:
// a segment after it exists only because everything in it had been made
// durable. Records a reader returned at or after a torn tail's Offset (the
// start of an incomplete batch) are not part of the log.
//
// # Stale bytes
//
// After a crash the wal cuts the log at a torn tail and appends again from
// there. The new frames may be shorter than the old ones they overwrite, so
// without care old frames could line up behind the new ones and reappear,
// with plausible LSNs, after the next crash. Two independent mechanisms
// prevent it:
//
//   - Zeroing: before appending after a cut, the wal writes zeros over
//     [Offset, End) of the torn tail and syncs them, so no old frame is left
//     behind the new end of the log.
//   - Epochs: a writer that resumes a segment stamps its frames with an epoch
//     above every epoch in the segment (Reader.LastEpoch, which includes
//     frames seen past the end, plus 1). A frame whose epoch is lower than
//     the frame before it is stale by definition and ends the log, even
//     where its LSN would line up. A segment resumed 65535 times cannot be
//     resumed again: the wal starts a new segment instead.
//
// # Recycled segments
//
// A log that drops old segments (a checkpoint) can reuse their files for new
// segments instead of preparing new ones: blocks that were already written
// are overwritten without zeroing them first and without converting
// unwritten extents at each sync, which on the disks measured halves the
// bytes written and raises the fdatasync rate. Such a segment sets header
// flag Recycled, and these rules keep its stale bytes out of the log:
//
//   - The new header, with a fresh random salt, is written over the old one
//     and synced while the file still has a temporary name; only then is
//     the file renamed to its segment name. A segment name therefore never
//     shows the old header, and a crash before the rename leaves a
//     temporary file that recovery removes. The rename waits until every
//     record of the segment before it is durable: unlike a zero-filled file,
//     whose header arrives with its first records, a recycled file is a
//     valid (empty) last segment as soon as its name is on disk, and the
//     segment before it is then sealed, where a torn tail is corruption.
//   - A stale frame does not verify: its checksum is seeded with the old
//     salt, and the writer picks a new salt other than the one the old
//     header holds. Frames of still older lives of the file, further on,
//     have a 2^-32 chance per life that their salt equals the new one; such
//     a frame matters only at the end of the log, where a valid frame with
//     a lower LSN than expected reads as "duplicate lsn" (the file held
//     only LSNs below the log's start, so none can pass for a record).
//   - Rule 4 decides where the log ends. A crash can leave torn frames of
//     this segment's own writers after the end (bytes of a write cut short),
//     which the wal does not zero when no valid frame of them survived:
//     they cannot verify either, and epochs make any frame left from before
//     a resumption stale (below).
//   - A sealed recycled segment ends at its last record; its stale tail is
//     never read as damage.
//
// # The watermark rule
//
// A crash can leave a hole: a pipelined writer submits several writes, and
// the later ones reach the disk while an earlier one does not. Those later
// frames were never acknowledged (an acknowledgement waits for every earlier
// LSN to be durable), so dropping them with the hole loses nothing. Each
// frame records, through Lag, how much had been acknowledged when it was
// written; a frame past the hole whose watermark covers the hole proves that
// the hole held acknowledged data, and turns the torn tail into corruption.
// Without that field the reader could not tell a crash in flight from a lost
// acknowledged write.
//
// # Rules for writers
//
// The reader's rules hold only if every writer keeps these:
//
//   - Frames go at consecutive offsets in LSN order, from DataOffset on,
//     with no gaps but the padding after a frame flagged PadToPage (version
//     2 on), which is written as zeros in the same write as its frame; a
//     frame may be split across several writes.
//   - Every byte after the last frame stays zero, except in a recycled
//     segment (which keeps the rules of "Recycled segments" instead). A
//     writer that writes whole
//     blocks (O_DIRECT) zeroes the part of the block after its last frame,
//     and rewrites the acknowledged bytes at the start of a partial block
//     with exactly the bytes they already hold, so that a torn rewrite
//     cannot change them.
//   - Lag never claims more than was acknowledged when the frame was
//     encoded: LSN-Lag must be durable and acknowledged by then. A smaller
//     claim (a larger Lag) is always safe; a larger claim can turn a torn
//     tail into reported corruption.
//   - An atomic batch lies within one segment.
//   - Records are no longer than the MaxRecordSize of every reader.
//   - Before appending to a segment that was read after a crash, the writer
//     zeroes and syncs the torn tail [Offset, End), and uses epoch
//     Reader.LastEpoch()+1.
//
// # Assumptions about the disk
//
//   - Writes may tear at any byte: a crash can leave any prefix, suffix or
//     mix of the sectors of a write on disk, in any order across writes that
//     were in flight together.
//   - Space that was never written reads as zeros (preallocated files,
//     fallocate, sparse extension), never as old data from other files.
//     Only a recycled segment holds old data, of an earlier segment of the
//     same log, and says so in its header.
//   - fsync (fdatasync) is the only durability barrier: data is durable once
//     a sync that began after the write returned success. Nothing is
//     acknowledged before that.
//   - After a failed sync the state of the written data is unknown; the wal
//     does not retry the sync or reuse the data, and treats the log as
//     needing recovery.
//   - Bits written and synced do not change silently. Should they (a bad
//     sector), the checksums detect it, and the rules above report it as
//     corruption where acknowledged data follows.
package segment
