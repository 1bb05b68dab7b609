package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble's WAL writer, set up the way pebble's standalone WAL manager sets
// up a fresh (not recycled) log: vfs.Default file wrapped in a syncing file
// with pebble's default preallocation (110% of the default 4 MiB memtable),
// record.NewLogWriter with a sync-queue semaphore, the WAL sync-chunk format
// of the newest format major version. Writers call SyncRecord under one
// mutex (pebble's commitPipeline provides that external synchronisation)
// and wait on their own WaitGroup: pebble's flushLoop is the group commit.

const (
	pebbleLogName  = "000001.log"
	pebbleLogNum   = 1
	pebblePrealloc = (4 << 20) + (4<<20)/10
)

func pebbleAdapter() *Adapter {
	return &Adapter{
		Name:      "pebble",
		Lib:       "pebble",
		How:       "record.LogWriter.SyncRecord under a mutex: pebble's flushLoop group commit",
		Checksums: true,
		BulkNote:  "WriteRecord (no sync) per record, LogWriter.Close flushes and syncs at the end",
		Primary:   true,
		Open:      openPebble,
		Replay:    replayPebble,
	}
}

type pebbleLog struct {
	f      vfs.File
	lw     *record.LogWriter
	mu     sync.Mutex // external synchronisation SyncRecord requires
	sem    chan struct{}
	closed bool
}

type pebbleWaiter struct {
	wg  sync.WaitGroup
	err error
}

var pebbleWaiters = sync.Pool{New: func() any { return new(pebbleWaiter) }}

func openPebble(dir string, o OpenOptions) (Log, error) {
	f, err := vfs.Default.Create(filepath.Join(dir, pebbleLogName), vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	sf := vfs.NewSyncingFile(f, vfs.SyncingFileOptions{PreallocateSize: pebblePrealloc})
	sem := make(chan struct{}, record.SyncConcurrency-1)
	lw := record.NewLogWriter(sf, pebbleLogNum, record.LogWriterConfig{
		QueueSemChan:        sem,
		WriteWALSyncOffsets: func() bool { return true },
	})
	return &pebbleLog{f: sf, lw: lw, sem: sem}, nil
}

func (l *pebbleLog) Append(p []byte) error {
	w := pebbleWaiters.Get().(*pebbleWaiter)
	w.err = nil
	w.wg.Add(1)
	l.sem <- struct{}{} // released by the flushLoop when the sync completes
	l.mu.Lock()
	_, err := l.lw.SyncRecord(p, &w.wg, &w.err)
	l.mu.Unlock()
	if err != nil {
		<-l.sem
		pebbleWaiters.Put(w)
		return err
	}
	w.wg.Wait()
	err = w.err
	pebbleWaiters.Put(w)
	return err
}

func (l *pebbleLog) BulkAppend(p []byte) error {
	_, err := l.lw.WriteRecord(p)
	return err
}

// BulkSync closes the writer: Close flushes every block and syncs.
func (l *pebbleLog) BulkSync() error {
	l.closed = true
	return l.lw.Close()
}

func (l *pebbleLog) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	return l.lw.Close() // also closes the file
}

// replayPebble reads the log with record.Reader, which verifies each chunk's
// checksum, stopping at the EOF trailer Close wrote.
func replayPebble(dir string, fn func(p []byte) error, ph *phases) error {
	ph.start()
	f, err := os.Open(filepath.Join(dir, pebbleLogName))
	if err != nil {
		return err
	}
	defer f.Close()
	defer func() { ph.Read = ph.lap() }()
	r := record.NewReader(f, pebbleLogNum)
	var buf bytes.Buffer
	for {
		rr, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(rr); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := fn(buf.Bytes()); err != nil {
			return err
		}
	}
}
