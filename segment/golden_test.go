package segment

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "regenerate the golden files in ../testdata")

// goldenDir holds the golden logs, one directory per variant.
const goldenDir = "../testdata"

// The golden log: three small preallocated segments, each filled with about
// 40 KiB of records, with salts, payloads and timestamps derived from
// constants so that regenerating is byte-identical.
const (
	goldenSegSize = 64 << 10
	goldenFill    = 40 << 10
	goldenSegs    = 3
	goldenCreated = 1_735_689_600_000_000_000 // 2025-01-01T00:00:00Z
)

func goldenSalt(seq uint64) uint32 { return uint32(seq*0x9E3779B9) ^ 0x5EED5EED }

// goldenPayload is the payload of lsn: text that names it, of a length that
// varies from 0 to 1099 bytes (every 13th record is empty).
func goldenPayload(lsn uint64) []byte {
	n := int(lsn * 7919 % 1100)
	if lsn%13 == 0 {
		n = 0
	}
	var b []byte
	for len(b) < n {
		b = fmt.Appendf(b, "record %d. ", lsn)
	}
	return b[:n]
}

// gFrame is where a frame of the golden log landed.
type gFrame struct {
	off, end int64
	lsn      uint64
	flags    uint8
}

type gSeg struct {
	name   string
	hdr    Header
	frames []gFrame
	data   []byte
}

// gLog is a golden log: its segments (as generated, for the metadata) and
// the files of its directory.
type gLog struct {
	segs  []*gSeg
	files map[string][]byte
}

func (l *gLog) seg(i int) *gSeg { return l.segs[i] }

// buildGolden generates the intact log, in format version 1 (files written
// before version 2 must stay readable). Records are single frames except
// that every LSN divisible by 10 starts an atomic batch of three; the last
// record of each segment is a single frame.
func buildGolden(t testing.TB) *gLog { return buildGoldenLog(t, false) }

// buildPaddedGolden generates the intact log in format version 2, with
// every atomic batch and the last record of each segment padded to the
// next page boundary (Writer.AppendBatchPadded), as a writer that syncs
// them lays them.
func buildPaddedGolden(t testing.TB) *gLog { return buildGoldenLog(t, true) }

func buildGoldenLog(t testing.TB, padded bool) *gLog {
	l := &gLog{files: map[string][]byte{}}
	lsn := uint64(1)
	version := uint16(1)
	if padded {
		version = 2
	}
	for seq := uint64(1); seq <= goldenSegs; seq++ {
		f := &memFile{b: make([]byte, goldenSegSize)}
		h := Header{Version: version, Seq: seq, BaseLSN: lsn, Size: goldenSegSize, Salt: goldenSalt(seq), Created: goldenCreated + int64(seq)*1e9}
		w, err := NewWriter(f, h)
		require.NoError(t, err)
		s := &gSeg{name: FileName(lsn), hdr: h}
		add := func(n int) {
			off := w.Position().Offset
			var payloads [][]byte
			for i := range n {
				payloads = append(payloads, goldenPayload(lsn+uint64(i)))
			}
			pad := padded && (n > 1 || w.Position().Offset >= DataOffset+goldenFill)
			if pad {
				_, err = w.AppendBatchPadded(payloads...)
			} else {
				_, err = w.AppendBatch(payloads...)
			}
			require.NoError(t, err)
			for i, p := range payloads {
				fr := gFrame{off: off, end: off + int64(FrameSize(len(p))), lsn: lsn}
				if i < n-1 {
					fr.flags = FlagBatchContinues
				}
				if pad && i == n-1 && fr.end%PageSize != 0 {
					fr.flags = FlagPadToPage
				}
				s.frames = append(s.frames, fr)
				off, lsn = FrameEnd(fr.off, len(p), fr.flags), lsn+1
			}
			require.Equal(t, off, w.Position().Offset)
		}
		for w.Position().Offset < DataOffset+goldenFill {
			if lsn%10 == 0 {
				add(3)
			} else {
				add(1)
			}
		}
		add(1)
		s.data = f.b
		l.segs = append(l.segs, s)
		l.files[s.name] = f.b
	}
	return l
}

// clone returns a copy of l whose files can be changed.
func (l *gLog) clone() *gLog {
	c := &gLog{segs: l.segs, files: map[string][]byte{}}
	for name, b := range l.files {
		c.files[name] = bytes.Clone(b)
	}
	return c
}

// standalone returns the index of a frame near the end of s that starts a
// record of its own, with the records before and after it also of their own.
func (s *gSeg) standalone(fromEnd int) int {
	for i := len(s.frames) - fromEnd; i > 0; i-- {
		if s.frames[i-1].flags == 0 && s.frames[i].flags == 0 && s.frames[i+1].flags == 0 {
			return i
		}
	}
	panic("no standalone frame")
}

// segWant is the outcome expected for one segment file.
type segWant struct {
	end    string // "eof", "torn", "corrupt", "noheader", "version"
	off    int64  // torn, corrupt: the error's Offset
	last   uint64 // the last LSN returned
	reason string // a substring of the error
}

// goldenVariant is one directory of testdata: the intact log changed by
// damage, and what reading it must give.
type goldenVariant struct {
	dir    string
	about  string // for the README: what the variant is and how it was made
	padded bool   // the damage is done to buildPaddedGolden's log, not buildGolden's
	damage func(t testing.TB, l *gLog)
	// want returns the outcome of the segments that do not read as intact.
	want  func(l *gLog) map[string]segWant
	other []string // names that are not segments
	gap   string   // a substring of the cross-segment check's complaint
}

func goldenVariants() []goldenVariant {
	last := func(s *gSeg) uint64 { return s.frames[len(s.frames)-1].lsn }
	mid := func(s *gSeg) gFrame { return s.frames[len(s.frames)/2] }
	lastFrame := func(s *gSeg) gFrame { return s.frames[len(s.frames)-1] }
	rewriteHeader := func(l *gLog, i int, mod func(h *Header)) {
		s := l.seg(i)
		h := s.hdr
		mod(&h)
		h.MarshalTo(l.files[s.name])
	}
	// reframe re-encodes frame f of segment i in place with another LSN.
	reframe := func(l *gLog, i int, f gFrame, lsn uint64) {
		s := l.seg(i)
		b := l.files[s.name]
		payload := bytes.Clone(b[f.off+FrameHeaderSize : f.end])
		fh := decodeFrameHeader(b[f.off:])
		fh.LSN = lsn
		EncodeFrameHeader(b[f.off:], s.hdr.Salt, fh, payload)
	}
	// recycle turns segment i into one written into a recycled file: the
	// header flag set, and from offset from (its last frame's end when 0)
	// to the end of the file frames of an earlier segment (another salt,
	// LSNs from 1), the last one cut off there.
	recycle := func(l *gLog, i int, from int64) {
		rewriteHeader(l, i, func(h *Header) { h.Flags = HeaderFlagRecycled })
		s := l.seg(i)
		b := l.files[s.name]
		if from == 0 {
			from = lastFrame(s).end
		}
		for off, lsn := from, uint64(1); off < int64(len(b)); lsn++ {
			frame := AppendFrame(nil, goldenSalt(100), FrameHeader{LSN: lsn, Lag: 1}, goldenPayload(lsn))
			off += int64(copy(b[off:], frame))
		}
	}
	return []goldenVariant{{
		dir:   "intact",
		about: "The intact log: three segments of 64 KiB (sequence numbers 1 to 3), each holding about 40 KiB of records followed by zeros. Payloads are text naming their LSN, 0 to 1099 bytes long (every 13th empty); every LSN divisible by 10 starts an atomic batch of three records.",
	}, {
		dir:   "torn-tail",
		about: "The last segment's file is cut short 5 bytes into the payload of its last frame, as a crash during an append leaves it.",
		damage: func(t testing.TB, l *gLog) {
			s := l.seg(2)
			l.files[s.name] = l.files[s.name][:lastFrame(s).off+FrameHeaderSize+5]
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(2)
			return map[string]segWant{s.name: {end: "torn", off: lastFrame(s).off, last: last(s) - 1, reason: "extends past end of file"}}
		},
	}, {
		dir:   "zeroed-tail",
		about: "The second half of the last frame of the last segment is zeroed (the file keeps its size): a write that reached the disk only in part.",
		damage: func(t testing.TB, l *gLog) {
			s := l.seg(2)
			f := lastFrame(s)
			clear(l.files[s.name][(f.off+f.end)/2 : f.end])
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(2)
			return map[string]segWant{s.name: {end: "torn", off: lastFrame(s).off, last: last(s) - 1, reason: "checksum mismatch"}}
		},
	}, {
		dir:   "bitflip-payload",
		about: "One bit flipped in the payload of the middle frame of the second segment: damage followed by acknowledged records.",
		damage: func(t testing.TB, l *gLog) {
			s := l.seg(1)
			l.files[s.name][mid(s).off+FrameHeaderSize+2] ^= 0x10
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(1)
			return map[string]segWant{s.name: {end: "corrupt", off: mid(s).off, last: mid(s).lsn - 1, reason: "checksum mismatch"}}
		},
	}, {
		dir:   "bitflip-header",
		about: "One bit flipped in the LSN field of the middle frame of the second segment.",
		damage: func(t testing.TB, l *gLog) {
			s := l.seg(1)
			l.files[s.name][mid(s).off+8] ^= 0x04
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(1)
			return map[string]segWant{s.name: {end: "corrupt", off: mid(s).off, last: mid(s).lsn - 1, reason: "checksum mismatch"}}
		},
	}, {
		dir:   "bad-magic",
		about: "The second segment's magic reads RWALSEX instead of RWALSEG.",
		damage: func(t testing.TB, l *gLog) {
			l.files[l.seg(1).name][6] = 'X'
		},
		want: func(l *gLog) map[string]segWant {
			return map[string]segWant{l.seg(1).name: {end: "corrupt", off: 0, reason: "bad magic"}}
		},
	}, {
		dir:   "header-checksum",
		about: "One bit flipped in the creation time of the second segment's header.",
		damage: func(t testing.TB, l *gLog) {
			l.files[l.seg(1).name][hdrCreated+3] ^= 0x01
		},
		want: func(l *gLog) map[string]segWant {
			return map[string]segWant{l.seg(1).name: {end: "corrupt", off: hdrCRC, reason: "header checksum mismatch"}}
		},
	}, {
		dir:   "unknown-version",
		about: "The last segment's header says format version 3, with a valid checksum: refused as an unsupported version, not as corruption.",
		damage: func(t testing.TB, l *gLog) {
			rewriteHeader(l, 2, func(h *Header) { h.Version = 3 })
		},
		want: func(l *gLog) map[string]segWant {
			return map[string]segWant{l.seg(2).name: {end: "version", reason: "unsupported format version 3"}}
		},
	}, {
		dir:   "lsn-gap",
		about: "The middle frame of the second segment is re-encoded, with a valid checksum, one LSN higher than it should be.",
		damage: func(t testing.TB, l *gLog) {
			reframe(l, 1, mid(l.seg(1)), mid(l.seg(1)).lsn+1)
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(1)
			return map[string]segWant{s.name: {end: "corrupt", off: mid(s).off, last: mid(s).lsn - 1, reason: "lsn gap"}}
		},
	}, {
		dir:   "duplicate-lsn",
		about: "The middle frame of the second segment is re-encoded, with a valid checksum, with the LSN of the frame before it.",
		damage: func(t testing.TB, l *gLog) {
			reframe(l, 1, mid(l.seg(1)), mid(l.seg(1)).lsn-1)
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(1)
			return map[string]segWant{s.name: {end: "corrupt", off: mid(s).off, last: mid(s).lsn - 1, reason: "duplicate lsn"}}
		},
	}, {
		dir:   "missing-middle-segment",
		about: "The second segment file is deleted. Each remaining file reads cleanly; the log has an LSN gap between them.",
		damage: func(t testing.TB, l *gLog) {
			delete(l.files, l.seg(1).name)
		},
		gap: "lsn gap between segments",
	}, {
		dir:   "name-mismatch",
		about: "The second segment file is renamed as if its base LSN were one higher than its header says.",
		damage: func(t testing.TB, l *gLog) {
			s := l.seg(1)
			l.files[FileName(s.hdr.BaseLSN+1)] = l.files[s.name]
			delete(l.files, s.name)
		},
		want: func(l *gLog) map[string]segWant {
			return map[string]segWant{FileName(l.seg(1).hdr.BaseLSN + 1): {end: "corrupt", off: hdrBaseLSN, reason: "does not match file name"}}
		},
	}, {
		dir:   "foreign-file",
		about: "The intact log with stray files beside it: a text file, a segment being prepared (.tmp, with a valid header), a copy of the first segment under a name of the wrong width, and a name with a letter. None is read as a segment.",
		damage: func(t testing.TB, l *gLog) {
			l.files["notes.txt"] = []byte("not a segment\n")
			next := &memFile{b: make([]byte, goldenSegSize)}
			_, err := NewWriter(next, Header{Seq: 4, BaseLSN: last(l.seg(2)) + 1, Size: goldenSegSize, Salt: goldenSalt(4), Created: goldenCreated + 4e9})
			require.NoError(t, err)
			l.files[FileName(last(l.seg(2))+1)+TempFileSuffix] = next.b
			l.files["0001.seg"] = l.files[l.seg(0).name]
			l.files["0000000000000000000a.seg"] = []byte("x")
		},
		other: []string{"0000000000000000000a.seg", "00000000000000000238.seg.tmp", "0001.seg", "notes.txt"},
	}, {
		dir:   "no-header",
		about: "The intact log followed by a fourth segment file of 64 KiB of zeros: created at rotation, its header never reached the disk (ErrNoHeader; the wal drops such a last segment).",
		damage: func(t testing.TB, l *gLog) {
			l.files[FileName(last(l.seg(2))+1)] = make([]byte, goldenSegSize)
		},
		want: func(l *gLog) map[string]segWant {
			return map[string]segWant{FileName(last(l.seg(2)) + 1): {end: "noheader"}}
		},
	}, {
		dir: "stale-incarnation",
		about: "In the last segment, a crash tore a record near the end; the log was cut there but the cut region was NOT zeroed (as if that step were skipped), " +
			"and a second writer (epoch 1) wrote the record and the next one again with payloads of the same lengths, so the old frames after them line up. " +
			"The epoch guard alone must keep the old frames (epoch 0) out of the log: they read as a torn tail after the rewritten records.",
		damage: func(t testing.TB, l *gLog) {
			s := l.seg(2)
			k := s.standalone(6)
			f := &memFile{b: l.files[s.name]}
			w := ResumeWriter(f, s.hdr, Position{Offset: s.frames[k].off, LSN: s.frames[k].lsn, Epoch: 1})
			for _, fr := range s.frames[k : k+2] {
				p := bytes.ReplaceAll(goldenPayload(fr.lsn), []byte("record"), []byte("REWRIT"))
				_, err := w.Append(p)
				require.NoError(t, err)
			}
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(2)
			k := s.standalone(6)
			return map[string]segWant{s.name: {end: "torn", off: s.frames[k+2].off, last: s.frames[k+1].lsn, reason: "stale frame of epoch 0"}}
		},
	}, {
		dir:   "incomplete-batch",
		about: "The last segment ends with an atomic batch of three records whose last frame never reached the disk (zeros): the whole batch is a torn tail.",
		damage: func(t testing.TB, l *gLog) {
			s := l.seg(2)
			f := &memFile{b: l.files[s.name]}
			w := ResumeWriter(f, s.hdr, Position{Offset: lastFrame(s).end, LSN: last(s) + 1})
			_, err := w.AppendBatch([]byte("batch one"), []byte("batch two"), []byte("batch three"))
			require.NoError(t, err)
			end := w.Position().Offset
			clear(f.b[end-int64(FrameSize(len("batch three"))) : end])
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(2)
			return map[string]segWant{s.name: {end: "torn", off: lastFrame(s).end, last: last(s) + 2, reason: "incomplete atomic batch"}}
		},
	}, {
		dir: "pipelined-crash",
		about: "The last five records of the last segment were written while only the record before them was durable (their Lag says so), and the first of them never reached the disk (zeros). " +
			"The records after the hole were never acknowledged: a torn tail at the hole.",
		damage: func(t testing.TB, l *gLog) {
			s := l.seg(2)
			k := len(s.frames) - 5
			f := &memFile{b: l.files[s.name]}
			first := s.frames[k]
			w := ResumeWriter(f, s.hdr, Position{Offset: first.off, LSN: first.lsn})
			for _, fr := range s.frames[k:] {
				_, err := w.AppendFrame(goldenPayload(fr.lsn), first.lsn-1, 0)
				require.NoError(t, err)
			}
			clear(f.b[first.off:first.end])
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(2)
			k := len(s.frames) - 5
			return map[string]segWant{s.name: {end: "torn", off: s.frames[k].off, last: s.frames[k].lsn - 1, reason: "zero frame header"}}
		},
	}, {
		dir:   "acknowledged-hole",
		about: "The middle frame of the last segment is zeroed: a hole followed by records written after it was acknowledged, which is corruption, not a torn tail.",
		damage: func(t testing.TB, l *gLog) {
			s := l.seg(2)
			f := mid(s)
			clear(l.files[s.name][f.off:f.end])
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(2)
			return map[string]segWant{s.name: {end: "corrupt", off: mid(s).off, last: mid(s).lsn - 1, reason: "acknowledged data follows"}}
		},
	}, {
		dir: "recycled",
		about: "The second and third segments were written into recycled files (header flag Recycled): after their last frame, up to the end of the file, lie the frames of an earlier segment (another salt, LSNs from 1). " +
			"They do not verify with the new salt: each segment ends cleanly after its own last frame.",
		damage: func(t testing.TB, l *gLog) {
			recycle(l, 1, 0)
			recycle(l, 2, 0)
		},
	}, {
		dir: "recycled-lost-record",
		about: "As recycled, but the last record of the sealed second segment is lost: stale bytes of the earlier segment are where it was. " +
			"The segment alone reads as ending cleanly one record early (stale bytes are indistinguishable from a write that never happened); the log has an LSN gap before the third segment.",
		damage: func(t testing.TB, l *gLog) {
			recycle(l, 1, lastFrame(l.seg(1)).off)
			recycle(l, 2, 0)
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(1)
			return map[string]segWant{s.name: {end: "eof", last: last(s) - 1}}
		},
		gap: "lsn gap between segments",
	}, {
		dir:    "padded",
		padded: true,
		about: "The intact log in format version 2, as a writer that syncs batches lays it: records made as in intact, but every atomic batch, and the last record of each segment, ends on a 4096-byte page boundary. " +
			"Its last frame is flagged PadToPage and zeros follow it up to the boundary, where the next frame starts. The padding takes space, so each segment holds fewer records than in intact.",
	}, {
		dir:    "padded-cut-padding",
		padded: true,
		about:  "As padded, but the last segment's file ends in the middle of the padding after its last frame: the padding is not data, and the segment ends cleanly after its last record.",
		damage: func(t testing.TB, l *gLog) {
			s := l.seg(2)
			f := lastFrame(s)
			l.files[s.name] = l.files[s.name][:f.end+(PadToPage(f.end)-f.end)/2]
		},
	}, {
		dir:    "padded-acknowledged-hole",
		padded: true,
		about:  "As padded, but the middle padded batch of the last segment is zeroed, frames and padding: a hole followed by records written after it was acknowledged, which is corruption, not a torn tail.",
		damage: func(t testing.TB, l *gLog) {
			s := l.seg(2)
			k := midPadded(s)
			clear(l.files[s.name][s.frames[k-2].off:PadToPage(s.frames[k].end)])
		},
		want: func(l *gLog) map[string]segWant {
			s := l.seg(2)
			k := midPadded(s)
			return map[string]segWant{s.name: {end: "corrupt", off: s.frames[k-2].off, last: s.frames[k-2].lsn - 1, reason: "acknowledged data follows"}}
		},
	}}
}

// midPadded returns the index of the padded last frame of an atomic batch
// of three in the middle of s.
func midPadded(s *gSeg) int {
	for k := len(s.frames) / 2; k < len(s.frames); k++ {
		if s.frames[k].flags == FlagPadToPage && k >= 2 && s.frames[k-1].flags == FlagBatchContinues {
			return k
		}
	}
	panic("no padded batch")
}

// goldenTree generates every variant: directory -> file name -> bytes.
func goldenTree(t testing.TB) map[string]map[string][]byte {
	intact, padded := buildGolden(t), buildPaddedGolden(t)
	tree := map[string]map[string][]byte{}
	for _, v := range goldenVariants() {
		l := intact.clone()
		if v.padded {
			l = padded.clone()
		}
		if v.damage != nil {
			v.damage(t, l)
		}
		tree[v.dir] = l.files
	}
	return tree
}

func TestGolden(t *testing.T) {
	tree := goldenTree(t)
	variants := goldenVariants()

	if *update {
		for _, v := range variants {
			dir := filepath.Join(goldenDir, v.dir)
			require.NoError(t, os.RemoveAll(dir))
			require.NoError(t, os.MkdirAll(dir, 0o755))
			for name, b := range tree[v.dir] {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
			}
		}
	}

	// The files on disk are exactly what the generator makes.
	for _, v := range variants {
		dir := filepath.Join(goldenDir, v.dir)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err, "run go test ./segment -run TestGolden -update")
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		require.Equal(t, slices.Sorted(maps.Keys(tree[v.dir])), names, "files of %s", dir)
		for name, want := range tree[v.dir] {
			got, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			require.True(t, bytes.Equal(want, got), "%s/%s differs from the generator's output; regenerate with -update", dir, name)
		}
	}

	// The README describes what reading each variant gives.
	readme := goldenReadme(t, variants)
	readmePath := filepath.Join(goldenDir, "README.md")
	if *update {
		require.NoError(t, os.WriteFile(readmePath, []byte(readme), 0o644))
	}
	got, err := os.ReadFile(readmePath)
	require.NoError(t, err)
	require.Equal(t, readme, string(got), "%s is out of date; regenerate with -update", readmePath)

	// Each variant reads as it must.
	for _, v := range variants {
		intact := buildGolden(t)
		if v.padded {
			intact = buildPaddedGolden(t)
		}
		t.Run(v.dir, func(t *testing.T) {
			res := readLogDir(t, filepath.Join(goldenDir, v.dir))
			var wants map[string]segWant
			if v.want != nil {
				wants = v.want(intact)
			}
			assert.Equal(t, v.other, res.other)
			if v.gap == "" {
				assert.Empty(t, res.gaps)
			} else {
				require.Len(t, res.gaps, 1)
				assert.Contains(t, res.gaps[0], v.gap)
			}
			for _, sr := range res.segs {
				w, ok := wants[sr.name]
				if !ok {
					s := intactSeg(intact, sr.name)
					require.NotNil(t, s, "%s is not a segment of the intact log", sr.name)
					w = segWant{end: "eof", last: s.frames[len(s.frames)-1].lsn}
				}
				delete(wants, sr.name)
				checkSegRead(t, sr, w)
			}
			assert.Empty(t, wants, "segments expected but not found")
		})
	}
}

func intactSeg(l *gLog, name string) *gSeg {
	for _, s := range l.segs {
		if s.name == name {
			return s
		}
	}
	return nil
}

func checkSegRead(t *testing.T, sr segRead, w segWant) {
	t.Helper()
	switch w.end {
	case "eof":
		require.ErrorIs(t, sr.err, io.EOF, sr.name)
	case "torn":
		var te *TornTailError
		require.ErrorAs(t, sr.err, &te, sr.name)
		assert.Equal(t, w.off, te.Offset, sr.name)
	case "corrupt":
		var ce *CorruptionError
		require.ErrorAs(t, sr.err, &ce, sr.name)
		assert.Equal(t, w.off, ce.Offset, sr.name)
	case "noheader":
		require.ErrorIs(t, sr.err, ErrNoHeader, sr.name)
	case "version":
		require.ErrorIs(t, sr.err, ErrUnsupportedVersion, sr.name)
		require.NotErrorIs(t, sr.err, ErrCorrupt, sr.name)
	default:
		t.Fatalf("bad want %q", w.end)
	}
	if w.reason != "" {
		assert.Contains(t, sr.err.Error(), w.reason, sr.name)
	}
	assert.Equal(t, w.last, sr.last, "%s: last lsn", sr.name)
}

// segRead is what reading one segment file of a directory gave.
type segRead struct {
	name        string
	hdr         Header
	n           int
	first, last uint64
	end         int64 // Reader.Offset at the end
	err         error // what ended it: io.EOF for a clean end
}

type dirRead struct {
	segs  []segRead
	other []string
	gaps  []string // complaints about the sequence of segments
}

// readLogDir reads every segment of a log directory to its end and checks
// that the segments follow one another.
func readLogDir(t testing.TB, dir string) dirRead {
	bases, other, err := List(dir)
	require.NoError(t, err)
	res := dirRead{other: other}
	for _, base := range bases {
		name := FileName(base)
		sr := segRead{name: name}
		r, err := OpenReader(filepath.Join(dir, name), ReaderOptions{Name: name})
		if err != nil {
			sr.err = err
			res.segs = append(res.segs, sr)
			continue
		}
		sr.hdr = r.Header()
		for {
			rec, err := r.Next()
			if err != nil {
				sr.err = err
				break
			}
			if sr.n == 0 {
				sr.first = rec.LSN
			}
			sr.last = rec.LSN
			sr.n++
		}
		sr.end = r.Offset()
		require.NoError(t, r.Close())
		if n := len(res.segs); n > 0 {
			prev := res.segs[n-1]
			// Only a segment read to a clean end says where the next
			// must start.
			if errors.Is(prev.err, io.EOF) && prev.n > 0 && sr.hdr.BaseLSN != prev.last+1 {
				res.gaps = append(res.gaps, fmt.Sprintf("lsn gap between segments %s and %s: want base lsn %d, got %d", prev.name, name, prev.last+1, sr.hdr.BaseLSN))
			}
		}
		res.segs = append(res.segs, sr)
	}
	return res
}

// describe renders a directory read for the README.
func (d dirRead) describe() string {
	var b strings.Builder
	for _, s := range d.segs {
		switch {
		case s.hdr.Seq == 0:
			fmt.Fprintf(&b, "%s: %v\n", s.name, s.err)
		case s.n == 0:
			fmt.Fprintf(&b, "%s: seq %d, no records, ", s.name, s.hdr.Seq)
		default:
			fmt.Fprintf(&b, "%s: seq %d, lsn %d-%d (%d records), ", s.name, s.hdr.Seq, s.first, s.last, s.n)
		}
		if s.hdr.Seq != 0 {
			if errors.Is(s.err, io.EOF) {
				fmt.Fprintf(&b, "clean end at offset %d\n", s.end)
			} else {
				fmt.Fprintf(&b, "then %v\n", s.err)
			}
		}
	}
	for _, g := range d.gaps {
		fmt.Fprintf(&b, "log: %s\n", g)
	}
	for _, o := range d.other {
		fmt.Fprintf(&b, "not a segment: %s\n", o)
	}
	return b.String()
}

// goldenReadme renders testdata/README.md.
func goldenReadme(t testing.TB, variants []goldenVariant) string {
	var b strings.Builder
	b.WriteString(`# testdata: golden segment logs

Generated by ` + "`go test ./segment -run TestGolden -update`" + ` from segment/golden_test.go;
edit the generator, not these files. Without -update, TestGolden checks that every
file here is byte-identical to what the generator makes, that this README is up to
date, and that each directory reads with the outcome stated below. FuzzReader uses
the segment files as its seed corpus.

Each directory is a log directory in segment format version 1 (see
segment/doc.go): the intact log, or the intact log with one kind of damage;
the padded ones are in version 2, whose frames may be padded to a page
boundary. Segments are 64 KiB,
preallocated; salts, payloads and timestamps are derived from constants, so
regeneration is byte-identical. Offsets below are byte offsets in the file named.
`)
	for _, v := range variants {
		res := readLogDir(t, filepath.Join(goldenDir, v.dir))
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\nReading it segment by segment gives:\n\n```\n%s```\n", v.dir, v.about, res.describe())
	}
	return b.String()
}
