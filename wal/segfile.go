package wal

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringwal/ringwal/internal/fsys"
	"github.com/ringwal/ringwal/segment"
)

// maxEpoch is the last writer epoch; a segment whose writers used it up is
// not resumed, a new segment is started instead.
const maxEpoch = 1<<16 - 1

// segFile is one segment of the log.
type segFile struct {
	name string
	path string
	hdr  segment.Header
	f    *os.File
	fd   int
	// fileMu is held shared by random reads through f and exclusively to
	// close or replace f, so a read never uses a closed (or reused) fd.
	fileMu sync.RWMutex

	// index[i] locates record hdr.BaseLSN+i: frame offset << 32 | payload
	// length. Entries are added when records are laid into a batch; readers
	// only look at LSNs that are durable. index is guarded by the log's mu;
	// count mirrors len(index) for last(), which readers call without it.
	index    []uint64
	count    atomic.Uint64
	maxEpoch uint16
	end      int64 // end of the last record, as found by recovery

	// A sealed segment Open did not read (see Options.VerifyOnOpen) has no
	// index yet: lazy is set and its last LSN, lazyLast, is the next
	// segment's base - 1 (fixed by Open). indexSeg reads it on first need
	// and clears lazy after installing the index. idxMu serializes that.
	lazy     atomic.Bool
	lazyLast uint64
	idxMu    sync.Mutex

	// hdrPending holds the header bytes of a new segment until the first
	// batch carries them to disk.
	hdrPending []byte
}

func (s *segFile) base() uint64 { return s.hdr.BaseLSN }

// last is the LSN of the last record laid (base-1 when empty).
func (s *segFile) last() uint64 {
	if s.lazy.Load() {
		return s.lazyLast
	}
	return s.hdr.BaseLSN + s.count.Load() - 1
}

func (s *segFile) addIndex(off int64, n int) {
	s.index = append(s.index, indexEntry(off, n))
	s.count.Store(uint64(len(s.index)))
}

// setIndex replaces the index (under the log's mu).
func (s *segFile) setIndex(idx []uint64) {
	s.index = idx
	s.count.Store(uint64(len(idx)))
}

// locate returns the frame offset and payload length of lsn. A lazy segment
// must be indexed first (indexSeg).
func (s *segFile) locate(lsn uint64) (int64, int, bool) {
	if s.lazy.Load() || lsn < s.hdr.BaseLSN || lsn > s.last() {
		return 0, 0, false
	}
	e := s.index[lsn-s.hdr.BaseLSN]
	return int64(e >> 32), int(uint32(e)), true
}

func (s *segFile) close() error {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// ReadAt reads through the segment's file under fileMu, so TruncateFront
// cannot close it mid-read; once it is closed, reads return ErrNotFound.
func (s *segFile) ReadAt(p []byte, off int64) (int, error) {
	s.fileMu.RLock()
	defer s.fileMu.RUnlock()
	if s.f == nil {
		return 0, ErrNotFound
	}
	return s.f.ReadAt(p, off)
}

// size is the segment file's size (ErrNotFound once it is closed).
func (s *segFile) size() (int64, error) {
	s.fileMu.RLock()
	defer s.fileMu.RUnlock()
	if s.f == nil {
		return 0, ErrNotFound
	}
	fi, err := s.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// indexEntry packs a record's frame offset and payload length (see index).
func indexEntry(off int64, n int) uint64 { return uint64(off)<<32 | uint64(uint32(n)) }

// sealedTornError is how damage ahead of a sealed segment's end is reported:
// a torn tail can only be in the last segment, anywhere else it is corruption.
func sealedTornError(name string, torn *segment.TornTailError) error {
	return &segment.CorruptionError{Segment: name, Offset: torn.Offset, LSN: torn.LSN,
		Reason: "damaged frames before the end of a sealed segment: " + torn.Reason}
}

// indexSeg reads and verifies a lazy segment and installs its index. It is
// called without w.mu. Damage found is reported as a *segment.CorruptionError
// (and reported again on the next try: nothing is cached but success).
func (w *WAL) indexSeg(s *segFile) error {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if !s.lazy.Load() {
		return nil
	}
	last := s.lazyLast
	size, err := s.size()
	if err != nil {
		return err
	}
	r, err := segment.NewReader(s, size, segment.ReaderOptions{
		MaxRecordSize: w.opts.MaxRecordSize,
		FileBaseLSN:   s.base(),
		Name:          s.name,
		LastLSN:       last, // a recycled segment's stale tail is not read
	})
	if err != nil {
		return err
	}
	idx := make([]uint64, 0, last+1-s.base())
	for {
		rec, err := r.Next()
		if err == nil {
			if rec.LSN > last {
				return &segment.CorruptionError{Segment: s.name, Offset: rec.Offset, LSN: rec.LSN,
					Reason: fmt.Sprintf("record past the segment's end %d (the next segment starts at %d)", last, last+1)}
			}
			idx = append(idx, indexEntry(rec.Offset, len(rec.Payload)))
			continue
		}
		var torn *segment.TornTailError
		switch {
		case errors.As(err, &torn):
			return sealedTornError(s.name, torn)
		case !errors.Is(err, io.EOF):
			return err
		}
		break
	}
	if got := s.base() + uint64(len(idx)) - 1; got != last {
		return &segment.CorruptionError{Segment: s.name, Offset: r.Offset(), LSN: got + 1,
			Reason: fmt.Sprintf("segment ends at lsn %d, the next segment starts at %d: records are missing", got, last+1)}
	}
	w.mu.Lock()
	s.setIndex(idx)
	// TruncateBack may make this segment the active one again: its next
	// writer must stamp an epoch above every epoch in it.
	s.maxEpoch = r.LastEpoch()
	s.lazy.Store(false)
	w.mu.Unlock()
	return nil
}

// findSegLocked returns the segment holding lsn, or nil.
func (w *WAL) findSegLocked(lsn uint64) *segFile {
	i := sort.Search(len(w.segs), func(i int) bool { return w.segs[i].base() > lsn }) - 1
	if i < 0 {
		return nil
	}
	return w.segs[i]
}

func randomSalt() uint32 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return uint32(time.Now().UnixNano())
	}
	return binary.LittleEndian.Uint32(b[:])
}

// errRetry tells enqueue to re-evaluate the state: rotation waited.
var errRetry = errors.New("wal: retry")

// rotateLocked seals the active segment and switches to a prepared one. The
// new segment's header and directory entry reach the disk with its first
// batch (a recycled file's header also before its rename); its batches are
// submitted only after the old segment's chains completed (pumpLocked).
func (w *WAL) rotateLocked() error {
	// The old segment's records must be durable before the new one's: a
	// chain on the new file syncs only that file.
	w.requestSyncLocked()
	w.closeOpenLocked()
	w.pumpLocked()
	w.rotating = true
	defer func() {
		w.rotating = false
		w.cond.Broadcast()
	}()
	// Appends and truncations wait while rotating: nextSeq and nextLSN
	// stay as they are.
	h := segment.Header{
		Version: segment.Version,
		Seq:     w.nextSeq,
		BaseLSN: w.nextLSN,
		Size:    w.opts.SegmentSize,
		Salt:    randomSalt(),
		Created: time.Now().UnixNano(),
	}
	hb := make([]byte, segment.HeaderSize)
	w.mu.Unlock()
	p, err := w.prep.get(w.closeCtx)
	w.mu.Lock()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return ErrClosed
		}
		return fmt.Errorf("wal: prepare segment %d: %w", h.Seq, err)
	}
	if p.recycled {
		// Its stale frames must not verify with the new salt.
		h.Flags = segment.HeaderFlagRecycled
		h.Salt = saltOtherThan(p.oldSalt, h.Salt)
	}
	h.MarshalTo(hb)
	if p.recycled && w.failed == nil && !w.closed {
		// A recycled file gets its new header on disk before it takes a
		// segment name, so no segment name ever shows its old header.
		// But then, unlike a zeroed file whose header comes with its
		// first batch, it is a valid (empty) last segment as soon as the
		// rename is on disk: the old segment's chains must all be durable
		// first, or a crash would leave the old one, sealed, with a torn
		// tail. New batches would wait for them anyway (pumpLocked).
		w.drainLocked()
		if w.failed == nil && !w.closed {
			w.mu.Unlock()
			err = writeHeaderRegion(p.f, hb)
			w.mu.Lock()
			if err != nil {
				p.f.Close()
				os.Remove(p.path)
				return fmt.Errorf("wal: prepare segment %d: %w", h.Seq, err)
			}
		}
	}
	if w.closed || w.failed != nil {
		w.prep.giveBack(p)
		return errRetry
	}
	name := segment.FileName(h.BaseLSN)
	path := filepath.Join(w.dir, name)
	if err := os.Rename(p.path, path); err != nil {
		w.prep.giveBack(p)
		return fmt.Errorf("wal: rotate to %s: %w", name, err)
	}
	if p.recycled {
		w.stats.recycled.Add(1)
	}
	s := &segFile{name: name, path: path, hdr: h, f: p.f, fd: int(p.f.Fd()), hdrPending: hb}
	// Size the index for as many records as the segment before held, so
	// that it does not grow (and copy itself) a dozen times as it fills.
	if w.active != nil && len(w.active.index) > 0 {
		prev := len(w.active.index)
		s.index = make([]uint64, 0, prev+prev/8)
	}
	w.segs = append(w.segs, s)
	w.active = s
	w.nextSeq++
	w.enc = newEncoder(h.Salt, 0, w.opts.MaxRecordSize)
	w.tail = segment.DataOffset
	w.prepKicked = false
	w.markSegStartLocked()
	w.segAsync, w.segWaited, w.segSyncs, w.segSyncBytes = 0, 0, 0, 0
	w.stats.rotations.Add(1)
	w.log.Info("wal rotated", "segment", name, "seq", h.Seq)
	return nil
}

// preparer keeps the next segment file ready: created under a temporary
// name, its space reserved (zeros written, or fallocated), file and directory
// synced, so a rotation costs only a rename.
//
// It works on demand: the log kicks it once the active segment is a quarter
// full (and a rotation that finds nothing ready kicks it too), so a fresh or
// lightly used log does not write a segment's worth of zeros in the
// background, and the zeros are paced over the time the active segment
// takes to fill (maybePrepareLocked). Only appends kick it, never Open: a
// log opened to be replayed writes nothing beside its reads. Close
// interrupts it.
type preparer struct {
	w     *WAL
	want  chan struct{} // a kick: prepare one file
	ready chan prepResult
	quit  chan struct{}
	done  chan struct{}

	// hurry is set while a rotation waits: a zero-fill in progress stops
	// and fallocates the rest of the file, so a rotation never waits for a
	// segment's worth of zeros (the unfilled part syncs a little slower).
	hurry atomic.Bool
	// mode is how the next file's space is reserved (see
	// maybePrepareLocked); prepared counts files made in each mode.
	mode     atomic.Int32
	prepared [2]atomic.Uint64
	cutShort atomic.Uint64 // zero-fills a hurry cut short (Stats.FillsHurried)
	// rate paces the next zero-fill (fillControl.rate), set with the kick.
	rate atomic.Int64
	wake chan struct{} // hurry was set

	mu      sync.Mutex
	seq     int
	back    *prepared // a prepared file given back by a rotation that could not use it
	recycle []kept    // files of dropped segments kept for reuse (offerRecycle); the last is taken first
}

// kept is a dropped segment's file kept for reuse, and the salt its frames
// were written with.
type kept struct {
	path string
	salt uint32
}

type prepared struct {
	path     string
	f        *os.File
	recycled bool   // a dropped segment's file, its stale content kept
	oldSalt  uint32 // recycled: the salt of its stale frames
}

type prepResult struct {
	p   *prepared
	err error
}

func newPreparer(w *WAL) *preparer {
	p := &preparer{w: w, want: make(chan struct{}, 1), ready: make(chan prepResult),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	p.mode.Store(int32(w.opts.Prealloc))
	go p.run()
	return p
}

// kick asks for the next file to be prepared (once; extra kicks merge).
func (p *preparer) kick() {
	select {
	case p.want <- struct{}{}:
	default:
	}
}

func (p *preparer) run() {
	defer close(p.done)
	for {
		select {
		case <-p.want:
		case <-p.quit:
			return
		}
		res := prepResult{}
		res.p, res.err = p.prepare()
		select {
		case p.ready <- res:
			p.hurry.Store(false)
			select { // a wake-up meant for this file must not cut the next one's pauses
			case <-p.wake:
			default:
			}
		case <-p.quit:
			if res.p != nil {
				res.p.f.Close()
				os.Remove(res.p.path)
			}
			return
		}
	}
}

func (p *preparer) prepare() (*prepared, error) {
	p.mu.Lock()
	if b := p.back; b != nil {
		p.back = nil
		p.mu.Unlock()
		return b, nil
	}
	for len(p.recycle) > 0 {
		k := p.recycle[len(p.recycle)-1]
		p.recycle = p.recycle[:len(p.recycle)-1]
		f, err := os.OpenFile(k.path, os.O_RDWR, 0)
		if err == nil {
			p.mu.Unlock()
			return &prepared{path: k.path, f: f, recycled: true, oldSalt: k.salt}, nil
		}
		p.w.log.Warn("recycled segment file unusable", "file", k.path, "err", err)
		os.Remove(k.path)
	}
	p.seq++
	seq := p.seq
	p.mu.Unlock()
	path := filepath.Join(p.w.dir, fmt.Sprintf("prepare-%d%s", seq, segment.TempFileSuffix))
	mode := Prealloc(p.mode.Load())
	fc := fillControl{stop: p.quit, hurry: &p.hurry, wake: p.wake, rate: p.rate.Load(), noFallocate: p.w.noteNoFallocate, cutShort: &p.cutShort}
	f, err := createPrepared(path, p.w.opts.SegmentSize, mode, fc)
	if err != nil {
		return nil, err
	}
	p.prepared[mode].Add(1)
	if err := p.w.syncDir(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return &prepared{path: path, f: f}, nil
}

var errStopped = errors.New("wal: segment preparation stopped")

// fillControl steers a zero-fill running in the background. The zero value
// is an unpaced fill nobody interrupts.
type fillControl struct {
	stop  <-chan struct{} // closed: abandon the work
	hurry *atomic.Bool    // set: stop writing zeros and fallocate the rest
	wake  <-chan struct{} // signalled when hurry is set (ends a pacing pause)
	// rate paces the zeros, in bytes per second (0: as fast as the disk
	// takes them). A segment's worth of zeros written at full speed
	// queues up in front of the fdatasyncs that appenders wait for; spread
	// over the time the active segment takes to fill, the same bytes cost
	// them far less.
	rate int64
	// noFallocate, when set, is called when the file system refuses
	// fallocate(2) (ext2, ramfs, some NFS and FUSE file systems): the fill
	// writes zeros instead.
	noFallocate func()
	// cutShort, if set, counts fills a hurry cut short (the rest
	// fallocated).
	cutShort  *atomic.Uint64
	zerosOnly bool // fallocate refused: zeros to the end
}

// fallocate reserves [off, off+n) of f. It reports false, and no error,
// when the file system does not support fallocate(2) (after telling
// fc.noFallocate): the caller writes zeros instead.
func (fc fillControl) fallocate(f *os.File, off, n int64) (bool, error) {
	ok, err := fsys.Fallocate(int(f.Fd()), off, n)
	if err != nil {
		return false, fmt.Errorf("fallocate %s: %w", f.Name(), err)
	}
	if !ok && fc.noFallocate != nil {
		fc.noFallocate()
	}
	return ok, nil
}

func (fc fillControl) hurried() bool { return fc.hurry != nil && fc.hurry.Load() }

// pace waits until the byte at off is due, rate bytes per second after
// start; a hurry or a stop ends the wait. t is the fill's timer, stopped
// between waits and reused for each (a fill waits once per zeroChunk).
func (fc fillControl) pace(t *time.Timer, start time.Time, off int64) {
	if fc.rate <= 0 || fc.hurried() {
		return
	}
	d := time.Until(start.Add(time.Duration(float64(off) / float64(fc.rate) * float64(time.Second))))
	if d <= 0 {
		return
	}
	t.Reset(d) // stopped: since Go 1.23 no stale tick is left in t.C
	select {
	case <-t.C:
	case <-fc.wake:
	case <-fc.stop:
	}
	t.Stop()
}

// zeroBuf is what zero-fills write from: zeroChunk zeros, never written, so
// shared by every fill (one allocation per process, not per segment).
var zeroBuf = make([]byte, zeroChunk)

// zeroChunk is how many zeros a zero-fill writes (and starts writing back)
// at a time; at most two chunks are being written back at once. An
// appender's fdatasync queues behind the zeros being written back, so the
// chunk bounds what a fill adds to an append's latency: 128 KiB chunks
// instead of 1 MiB took p99 at 16 appenders of 1 KiB records from 975 to
// 406 µs while a fill ran, at the same throughput, and the bound of two
// took it at 64 appenders of 16 KiB from 6.3-7.7 ms to 2.7-2.8 ms
// (PERFORMANCE.md).
const zeroChunk = 128 << 10

// createPrepared creates a file of size bytes whose content reads as zeros
// and is durable, as fc steers.
func createPrepared(path string, size int64, mode Prealloc, fc fillControl) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	done := false
	if mode == PreallocFallocate {
		if done, err = fc.fallocate(f, 0, size); err != nil {
			return fail(err)
		}
	}
	if !done {
		zeros := zeroBuf
		start := time.Now()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for off := int64(0); off < size; off += int64(len(zeros)) {
			fc.pace(timer, start, off)
			select {
			case <-fc.stop:
				return fail(errStopped)
			default:
			}
			if fc.hurried() && !fc.zerosOnly {
				done, err := fc.fallocate(f, off, size-off)
				if err != nil {
					return fail(err)
				}
				if done {
					if fc.cutShort != nil {
						fc.cutShort.Add(1)
					}
					break
				}
				fc.zerosOnly = true // the rest in zeros, unpaced
			}
			n := min(int64(len(zeros)), size-off)
			if _, err := f.WriteAt(zeros[:n], off); err != nil {
				return fail(err)
			}
			// Stream the zeros out as they are written: the final
			// fdatasync, which a waiting rotation pays for, stays short,
			// and the disk is not hit by a segment's worth at once.
			if err := fsys.StartWriteback(int(f.Fd()), off, n); err != nil {
				return fail(fmt.Errorf("sync_file_range %s: %w", path, err))
			}
			// And keep at most two chunks of zeros in the disk's queue:
			// wait for the one before this to be written. Appenders'
			// fdatasyncs queue behind what is there, and a fill paced
			// faster than the disk takes it would otherwise queue
			// megabytes; slowed down, it is hurried at the rotation and
			// fallocates the rest instead.
			if off >= zeroChunk {
				if err := fsys.WaitWriteback(int(f.Fd()), off-zeroChunk, zeroChunk); err != nil {
					return fail(fmt.Errorf("sync_file_range %s: %w", path, err))
				}
			}
		}
	}
	if err := fsys.Fdatasync(int(f.Fd())); err != nil {
		return fail(fmt.Errorf("sync %s: %w", path, err))
	}
	return f, nil
}

// saltOtherThan returns salt, or another random one if salt is old, the
// salt of a recycled file's stale frames: with it they would verify.
// (Older lives' frames further on keep the format's 2^-32 chance.)
func saltOtherThan(old, salt uint32) uint32 {
	for salt == old {
		salt = randomSalt()
	}
	return salt
}

// writeHeaderRegion writes a segment's header region (the header in hb,
// zeros up to DataOffset) and syncs it.
func writeHeaderRegion(f *os.File, hb []byte) error {
	region := make([]byte, segment.DataOffset)
	copy(region, hb)
	if _, err := f.WriteAt(region, 0); err != nil {
		return fmt.Errorf("write header of %s: %w", f.Name(), err)
	}
	if err := fsys.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("sync header of %s: %w", f.Name(), err)
	}
	return nil
}

// offerRecycle keeps the file of a dropped segment at path (its frames
// written with salt) for reuse, under a temporary name, if fewer than
// Options.RecycleSegments are kept and its size is the segment size. It
// reports whether it took the file (renamed); if not, the caller removes
// it. The caller syncs the directory.
func (p *preparer) offerRecycle(path string, salt uint32, size int64) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.recycle) >= p.w.opts.RecycleSegments || size != p.w.opts.SegmentSize {
		return false, nil
	}
	p.seq++
	to := filepath.Join(p.w.dir, fmt.Sprintf("recycle-%d%s", p.seq, segment.TempFileSuffix))
	if err := os.Rename(path, to); err != nil {
		return false, err
	}
	p.recycle = append(p.recycle, kept{path: to, salt: salt})
	return true, nil
}

// get waits for the next prepared file.
//
// A failure is reported only from an attempt that began after get was
// called: the preparer holds its last result until someone takes it, so a
// failure it met earlier (a disk full then, freed since) is dropped and the
// next attempt, made now, is awaited instead.
func (p *preparer) get(ctx context.Context) (*prepared, error) {
	p.hurry.Store(true)
	select {
	case p.wake <- struct{}{}:
	default:
	}
	for fresh := false; ; fresh = true {
		p.kick()
		select {
		case r := <-p.ready:
			if r.err == nil || fresh {
				return r.p, r.err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// giveBack returns an unused prepared file; the next get hands it out again.
func (p *preparer) giveBack(pf *prepared) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.back != nil {
		pf.f.Close()
		os.Remove(pf.path)
		return
	}
	p.back = pf
}

func (p *preparer) stop() {
	close(p.quit)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.back != nil {
		p.back.f.Close()
		os.Remove(p.back.path)
		p.back = nil
	}
	for _, k := range p.recycle {
		os.Remove(k.path)
	}
	p.recycle = nil
}
