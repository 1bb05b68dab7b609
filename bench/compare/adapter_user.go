package main

import "errors"

// userLog wraps a library whose write call syncs every time (raft-wal,
// tidwall/wal, etcd's wal) the two ways a user would drive it: one mutex and
// one durable write per append, or the simple user-side group commit.
type userLog struct {
	write func(recs [][]byte) error // one durable write of recs, in order
	close func() error

	spa *syncPerAppend
	gc  *groupCommit

	// Bulk mode.
	arena     *bulkArena
	bulkWrite func(recs [][]byte) error // not necessarily durable
	bulkSync  func() error
}

func newUserLog(groupCommit bool, mode Mode, write func([][]byte) error, close func() error) *userLog {
	l := &userLog{write: write, close: close, bulkWrite: write, bulkSync: func() error { return nil }}
	switch {
	case mode == ModeBulk:
		l.arena = newBulkArena(bulkChunk)
	case groupCommit:
		l.gc = newGroupCommit(func(b *gcBatch) error { return write(b.recs) }, nil)
	default:
		l.spa = &syncPerAppend{write: write}
	}
	return l
}

func (l *userLog) Append(p []byte) error {
	switch {
	case l.gc != nil:
		return l.gc.Append(p)
	case l.spa != nil:
		return l.spa.Append(p)
	}
	return errors.New("log opened in bulk mode")
}

func (l *userLog) BulkAppend(p []byte) error {
	if l.arena == nil {
		return errNoBulk
	}
	if l.arena.add(p) {
		return l.flushArena()
	}
	return nil
}

func (l *userLog) flushArena() error {
	if l.arena.empty() {
		return nil
	}
	err := l.bulkWrite(l.arena.records())
	l.arena.reset()
	return err
}

func (l *userLog) BulkSync() error {
	if err := l.flushArena(); err != nil {
		return err
	}
	return l.bulkSync()
}

func (l *userLog) Close() error {
	var err error
	if l.gc != nil {
		err = l.gc.Close()
	}
	return errors.Join(err, l.close())
}

func variantName(base string, gc bool) string {
	if gc {
		return base + "-gc"
	}
	return base
}

func variantHow(lib string, gc bool) string {
	if gc {
		return lib + " under a simple user-side group commit (one flusher, one sync per batch)"
	}
	return lib + " under a mutex, one sync per append"
}
