// Package raftlog stores the log and the stable state of a
// github.com/hashicorp/raft node in a ringwal log: a Store implements
// raft.LogStore, raft.MonotonicLogStore and raft.StableStore, so it can stand
// in for hashicorp/raft-wal or raft-boltdb:
//
//	s, err := raftlog.Open(dir, raftlog.Options{})
//	r, err := raft.NewRaft(conf, fsm, s, s, snapshots, transport)
//
// This comment is the specification of what the package writes to disk.
//
// # Directory
//
// A store owns one directory:
//
//	dir/wal/      the ringwal log (package wal): one record per raft entry
//	dir/META      which LSN holds which raft index, and where the log starts
//	dir/STABLE    the StableStore: current term, last vote, ...
//	dir/*.tmp     a META or STABLE being replaced; removed by Open
//
// Open creates dir if needed (and syncs the directory that holds it). The
// wal locks dir/wal against a second writer (wal.ErrLocked), and Open takes
// that lock before it reads or writes anything else, so the lock guards the
// whole directory.
//
// # Entries and LSNs
//
// Raft numbers its entries with indexes that do not start at 1 after a
// snapshot was installed, and it deletes entries from the front (compaction
// after a snapshot) and from the back (a follower drops entries that conflict
// with the leader's). The wal numbers its records with LSNs from 1, always
// contiguous, and drops only whole segments from the front. META maps one
// onto the other with a list of runs, each a pair (Index, LSN): entries
// Index, Index+1, ... are stored at LSNs LSN, LSN+1, ..., up to the entry
// before the next run's Index; the last run goes on to the wal's last record.
// Indexes and LSNs increase from run to run. Usually there is one run; each
// deletion of a suffix starts a new one, and compaction drops the runs it
// passes.
//
// With runs (I0, S0) ... (In, Sn) and L the wal's last LSN:
//
//   - the first entry is I0, at LSN S0 (unless the store is empty, below);
//   - if Sn <= L, the last entry is In + (L - Sn);
//   - if Sn = L+1 and n > 0, the last run is empty (a suffix was deleted and
//     nothing appended since) and the last entry is In - 1;
//   - if Sn > L and n = 0, the store is empty: FirstIndex()/LastIndex()
//     return 0.
//
// Records that no run maps are dead and never read: those below S0 (in
// segments that also hold live records, or not yet removed), and those
// between the end of one run and the start of the next (a deleted suffix).
// They are removed with their segments once compaction passes them.
//
// Every record also carries its own raft index (see Encoding), and GetLog
// checks it against the index asked for, so a wrong mapping is reported as
// corruption instead of returning the wrong entry. Open checks that the wal
// holds every record META maps, and reads the first and the last record of
// each run to check their indexes.
//
// # Operations
//
// StoreLogs(logs) requires logs[k].Index = logs[0].Index + k, and, unless the
// store is empty, logs[0].Index = LastIndex()+1 (ErrNonContiguous otherwise:
// Store is a MonotonicLogStore, so raft deletes the whole log before it
// restarts it at another index). The entries are appended with one
// wal.AppendBatch at L+1, which is where the mapping expects LastIndex()+1:
// one atomic, durable unit that survives a crash whole or not at all. An
// empty store accepts any first index: META is first replaced (durably) by
// the single run (logs[0].Index, L+1) unless it already says so.
//
// DeleteRange(min, max) accepts a prefix, a suffix, or the whole log (and
// does nothing for a range outside it); a range strictly inside the log is
// refused (ErrMiddleDelete), as raft never asks for one. Each replaces META,
// and only then removes wal segments:
//
//   - Prefix (min <= FirstIndex, max < LastIndex): the runs before max+1 are
//     dropped and the run holding max+1 now starts there, at its LSN P;
//     then wal.TruncateFront(P) removes the segments that hold only dead
//     records.
//   - Whole log (min <= FirstIndex, max >= LastIndex): META becomes the
//     single run (LastIndex+1, L+1), an empty store; then
//     wal.TruncateFront(L+1) removes every segment but the active one. The
//     next StoreLogs may continue at LastIndex+1 or start anywhere.
//   - Suffix (min > FirstIndex, max >= LastIndex): the runs from min on are
//     dropped and an empty run (min, L+1) is added: entry min will be
//     appended at L+1, and the records of the deleted entries are dead.
//
// A suffix is deleted without wal.TruncateBack. The records stay on disk
// until compaction passes them (raft deletes suffixes rarely, when leadership
// changes, and compacts after every snapshot), and deleting costs one small
// file replace instead of rewriting a segment. It also keeps the store away
// from a wal defect: TruncateBack in the middle of an atomic batch leaves the
// last kept record marked as continuing its batch, so recovery drops the
// kept part of the batch on the next Open.
//
// # Crash safety
//
// META is replaced atomically (Assumptions, below), and the wal is only ever
// appended to and shortened from the front, so every state a crash can leave
// is the state before or after the interrupted operation:
//
//   - META is replaced before the wal is shortened from the front, never
//     after: META never maps a record the wal no longer has. A crash after
//     the replace and before TruncateFront leaves dead segments, which Open
//     removes.
//   - On an empty store, META is replaced before the first record of the new
//     log is appended. A crash in between leaves an empty store that expects
//     that record at L+1.
//   - Deleting a suffix replaces META and nothing else.
//   - StoreLogs is one wal batch: after a crash the store holds all of its
//     entries or none.
//
// Once StoreLogs, DeleteRange, Set or SetUint64 has returned nil, its effect
// survives a crash of the process or of the machine.
//
// # Encoding of an entry (version 1)
//
// Each record in the wal is one raft.Log. Integers are little-endian.
//
//	offset  size  field
//	0       1     version: 1 (FormatVersion)
//	1       1     type: raft.LogType
//	2       8     index
//	10      8     term
//	18      8     appended_at seconds: AppendedAt.Unix(), signed
//	26      4     appended_at nanoseconds: AppendedAt.Nanosecond(), < 1e9
//	30      4     D: length of data
//	34      4     E: length of extensions
//	38      D     data
//	38+D    E     extensions
//
// The record is exactly 38+D+E bytes; anything else is corruption
// (ErrCorrupt), as is a nanoseconds field of 1e9 or more. A record of another
// version is refused with ErrUnsupportedVersion. The wal checksums every
// record, so the encoding carries no checksum of its own. AppendedAt is read
// back in UTC, to the nanosecond (the zero time reads back as the zero
// time); empty data and extensions read back as nil.
//
// # META (version 1)
//
// 20 + 16*N bytes:
//
//	offset   size  field
//	0        8     magic "RLOGMETA"
//	8        4     version: 1
//	12       4     N: number of runs, at least 1
//	16       16*N  runs, in increasing order: 8 Index, 8 LSN
//	16+16*N  4     CRC-32C (Castagnoli) of bytes [0, 16+16*N)
//
// Indexes and LSNs are at least 1 and increase, and no run overlaps the next
// (LSN[i+1] - LSN[i] >= Index[i+1] - Index[i]); anything else is corruption.
// A missing META means a new store, and is accepted only while the wal is
// empty; a damaged one is reported (ErrCorrupt), never guessed around.
//
// # STABLE (version 1)
//
// The StableStore keeps its keys in memory and rewrites the whole file on
// each change (raft changes a key a few times per election):
//
//	offset  size  field
//	0       8     magic "RLSTABLE"
//	8       4     version: 1
//	12      4     N: number of keys
//	16      ...   N times, in ascending key order:
//	                4 key length K, K key bytes, 4 value length V, V value bytes
//	end-4   4     CRC-32C (Castagnoli) of every byte before it
//
// SetUint64 stores 8 bytes, little-endian. A missing key reads as nil (Get) or
// 0 (GetUint64) with no error, as raft.StableStore documents.
//
// # Replacing a file
//
// META and STABLE are replaced the same way: the new contents are written to
// NAME.tmp, which is fsynced and renamed over NAME; then the directory is
// fsynced. Open removes a leftover NAME.tmp: a crash leaves the old file or
// the new one, never a mix.
//
// # Assumptions
//
// Those of package wal (fdatasync makes written data durable; a disk that
// acknowledges flushes it did not do loses data under any log), and: rename(2)
// within a directory is atomic, and an fsync of the directory makes the
// rename durable (ext4, xfs and btrfs on Linux do both).
package raftlog
