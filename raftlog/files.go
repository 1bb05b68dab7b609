package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// Names in the store's directory (on-disk format).
const (
	walDirName     = "wal"
	metaFileName   = "META"
	stableFileName = "STABLE"
	tempSuffix     = ".tmp"
)

// META and STABLE layouts, version 1 (on-disk format).
const (
	metaMagic     = "RLOGMETA"
	metaVersion   = 1
	metaHdrSize   = 16 // magic, version, number of runs
	metaRunSize   = 16 // index, lsn
	stableMagic   = "RLSTABLE"
	stableVersion = 1
	stableHdrSize = 16
	checksumSize  = 4
	metaMinSize   = metaHdrSize + metaRunSize + checksumSize
	stableMinSize = stableHdrSize + checksumSize
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// run says that entries from index on are stored at consecutive LSNs from
// lsn on, up to the next run's index (see the package documentation,
// "Entries and LSNs").
type run struct {
	index uint64
	lsn   uint64
}

// meta is the mapping between raft indexes and LSNs: at least one run,
// indexes and LSNs increasing. It is never modified once built; a change
// builds a new one.
type meta struct {
	runs []run
}

func (m meta) equal(o meta) bool { return slices.Equal(m.runs, o.runs) }

// bounds returns the live range of raft indexes when the wal's last LSN is
// lastLSN; ok is false when the store is empty.
func (m meta) bounds(lastLSN uint64) (first, last uint64, ok bool) {
	r0, rn := m.runs[0], m.runs[len(m.runs)-1]
	switch {
	case rn.lsn <= lastLSN:
		return r0.index, rn.index + (lastLSN - rn.lsn), true
	case len(m.runs) == 1:
		return 0, 0, false
	default:
		// The last run is empty: a suffix was deleted and nothing
		// appended since.
		return r0.index, rn.index - 1, true
	}
}

// lsnOf returns the LSN of entry index, which must lie within bounds.
func (m meta) lsnOf(index uint64) uint64 {
	i := sort.Search(len(m.runs), func(i int) bool { return m.runs[i].index > index }) - 1
	return m.runs[i].lsn + (index - m.runs[i].index)
}

func (m meta) encode() []byte {
	b := make([]byte, 0, metaHdrSize+metaRunSize*len(m.runs)+checksumSize)
	b = append(b, metaMagic...)
	b = binary.LittleEndian.AppendUint32(b, metaVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.runs)))
	for _, r := range m.runs {
		b = binary.LittleEndian.AppendUint64(b, r.index)
		b = binary.LittleEndian.AppendUint64(b, r.lsn)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeMeta(b []byte) (meta, error) {
	bad := func(format string, args ...any) (meta, error) {
		return meta{}, fmt.Errorf("%w: %s: %s", ErrCorrupt, metaFileName, fmt.Sprintf(format, args...))
	}
	if len(b) < metaMinSize {
		return bad("%d bytes, shorter than the %d of one run", len(b), metaMinSize)
	}
	if string(b[:8]) != metaMagic {
		return bad("bad magic %q", b[:8])
	}
	body := b[:len(b)-checksumSize]
	if binary.LittleEndian.Uint32(b[len(body):]) != crc32.Checksum(body, castagnoli) {
		return bad("checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != metaVersion {
		return meta{}, fmt.Errorf("%w: %s version %d (this build reads %d)", ErrUnsupportedVersion, metaFileName, v, metaVersion)
	}
	n := binary.LittleEndian.Uint32(b[12:])
	if n == 0 || uint64(len(body)) != metaHdrSize+uint64(n)*metaRunSize {
		return bad("%d bytes for %d runs", len(b), n)
	}
	m := meta{runs: make([]run, n)}
	for i := range m.runs {
		p := body[metaHdrSize+i*metaRunSize:]
		r := run{index: binary.LittleEndian.Uint64(p), lsn: binary.LittleEndian.Uint64(p[8:])}
		switch {
		case r.index == 0 || r.lsn == 0:
			return bad("run %d at index %d, lsn %d", i, r.index, r.lsn)
		case i > 0 && r.index <= m.runs[i-1].index:
			return bad("run %d at index %d after index %d", i, r.index, m.runs[i-1].index)
		case i > 0 && (r.lsn <= m.runs[i-1].lsn || r.lsn-m.runs[i-1].lsn < r.index-m.runs[i-1].index):
			return bad("run %d at lsn %d overlaps the run before (index %d at lsn %d)",
				i, r.lsn, m.runs[i-1].index, m.runs[i-1].lsn)
		}
		m.runs[i] = r
	}
	return m, nil
}

func encodeStable(kv map[string][]byte) []byte {
	keys := make([]string, 0, len(kv))
	n := stableMinSize
	for k, v := range kv {
		keys = append(keys, k)
		n += 8 + len(k) + len(v)
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	b = append(b, stableMagic...)
	b = binary.LittleEndian.AppendUint32(b, stableVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[k])))
		b = append(b, kv[k]...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeStable(b []byte) (map[string][]byte, error) {
	bad := func(format string, args ...any) (map[string][]byte, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrCorrupt, stableFileName, fmt.Sprintf(format, args...))
	}
	if len(b) < stableMinSize {
		return bad("%d bytes, shorter than header and checksum", len(b))
	}
	if string(b[:8]) != stableMagic {
		return bad("bad magic %q", b[:8])
	}
	body, sum := b[:len(b)-checksumSize], binary.LittleEndian.Uint32(b[len(b)-checksumSize:])
	if crc32.Checksum(body, castagnoli) != sum {
		return bad("checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != stableVersion {
		return nil, fmt.Errorf("%w: %s version %d (this build reads %d)", ErrUnsupportedVersion, stableFileName, v, stableVersion)
	}
	n := binary.LittleEndian.Uint32(b[12:])
	kv := make(map[string][]byte, min(n, 1024))
	p := body[stableHdrSize:]
	field := func() ([]byte, bool) {
		if len(p) < 4 {
			return nil, false
		}
		l := binary.LittleEndian.Uint32(p)
		if uint64(len(p)-4) < uint64(l) {
			return nil, false
		}
		f := p[4 : 4+l : 4+l]
		p = p[4+l:]
		return f, true
	}
	for i := uint32(0); i < n; i++ {
		k, ok1 := field()
		v, ok2 := field()
		if !ok1 || !ok2 {
			return bad("key %d of %d runs past the end", i+1, n)
		}
		if _, dup := kv[string(k)]; dup {
			return bad("key %q twice", k)
		}
		kv[string(k)] = slices.Clone(v)
	}
	if len(p) != 0 {
		return bad("%d bytes after the last key", len(p))
	}
	return kv, nil
}

// readFile reads dir/name; a missing file returns (nil, false, nil).
func readFile(dir, name string) ([]byte, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("raftlog: %w", err)
	}
	return b, true, nil
}

// replaceFile atomically replaces dir/name by data: write name.tmp, fsync
// it, rename it over name, fsync the directory. A crash leaves the old
// contents or the new ones.
func replaceFile(dirf *os.File, dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+tempSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("raftlog: replace %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("raftlog: replace %s: %w", name, err)
	}
	if err := dirf.Sync(); err != nil {
		return fmt.Errorf("raftlog: replace %s: sync directory: %w", name, err)
	}
	return nil
}

// removeTemps removes what an interrupted replaceFile left in dir.
func removeTemps(dirf *os.File, dir string) error {
	removed := false
	for _, name := range []string{metaFileName, stableFileName} {
		err := os.Remove(filepath.Join(dir, name+tempSuffix))
		switch {
		case err == nil:
			removed = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("raftlog: remove leftover %s%s: %w", name, tempSuffix, err)
		}
	}
	if removed {
		if err := dirf.Sync(); err != nil {
			return fmt.Errorf("raftlog: sync directory: %w", err)
		}
	}
	return nil
}

// mkdirDurable creates dir and any missing parents, and syncs the directory
// that holds each one created, so that a crash cannot lose the store's
// directory after something in it was acknowledged.
func mkdirDurable(dir string) error {
	var created []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := syncDir(filepath.Dir(created[i])); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("raftlog: sync directory %s: %w", dir, err)
	}
	return nil
}
