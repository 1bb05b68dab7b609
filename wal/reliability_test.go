package wal

// Shared machinery of the reliability tests (crash_test.go,
// powerloss_test.go, chaos_test.go, enospc_test.go, badinput_test.go):
// self-checking payloads, seeds and knobs, and the checker that compares a
// recovered log with what was acknowledged.
//
// Every reliability test prints its seed and its figures on lines that start
// with "FIGURES" (go test -v shows them); RELIABILITY.md collects them.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Knobs. Each default keeps `go test -race ./...` (CI) bounded; the long run
// in RELIABILITY.md raises them.
const (
	envSeed       = "RINGWAL_SEED"                // one seed for every reliability test
	envCrashIters = "RINGWAL_CRASH_ITERS"         // kills per backend (TestCrashLoop)
	envPowerLoss  = "RINGWAL_POWERLOSS_SCENARIOS" // disk images recovered (TestPowerLoss)
	envFaultRound = "RINGWAL_FAULT_ROUNDS"        // fault rounds per backend (TestChaosRing)
	envENOSPC     = "RINGWAL_ENOSPC_CYCLES"       // full-disk cycles per configuration (TestFullDisk)
)

// envInt reads a positive integer knob.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s=%q", name, v)
	require.Positive(t, n, "%s=%q", name, v)
	return n
}

// testSeed returns the run's seed (RINGWAL_SEED, or the clock) and logs how
// to reproduce it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	var seed uint64
	if v := os.Getenv(envSeed); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "%s=%q", envSeed, v)
		seed = n
	} else {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (reproduce with %s=%d)", seed, envSeed, seed)
	return seed
}

// testRand returns a generator for one (sub)test: the seed and the test's
// name, so that subtests draw independent, reproducible streams.
func testRand(t *testing.T, seed uint64) *rand.Rand {
	h := fnv.New64a()
	io.WriteString(h, t.Name())
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// Self-checking payloads. Each record carries who wrote it and where it
// belongs, and a checksum, so that any record can be validated alone and a
// record that no writer made is recognised:
//
//	0  4 magic "RLT1"
//	4  4 writer id
//	8  8 writer's sequence number of this record
//	16 2 records in the atomic batch (1 for Append)
//	18 2 index in the batch
//	20 4 total length
//	24 4 CRC-32C of bytes [0,24) and [28,len)
//	28 . body: a pseudo-random stream of (writer, seq)
//
// The body is a function of the header, so a record is byte-identical to
// what its writer appended exactly when tpParse accepts it.
const (
	tpMagic  = "RLT1"
	tpHeader = 28
)

var castagnoliTable = crc32.MakeTable(crc32.Castagnoli)

type tpInfo struct {
	writer         uint32
	seq            uint64
	batchN, batchI uint16
}

// batchStart is the sequence number of the first record of the batch.
func (i tpInfo) batchStart() uint64 { return i.seq - uint64(i.batchI) }

func tpMake(writer uint32, seq uint64, batchN, batchI uint16, size int) []byte {
	size = max(size, tpHeader)
	p := make([]byte, size)
	copy(p, tpMagic)
	binary.LittleEndian.PutUint32(p[4:], writer)
	binary.LittleEndian.PutUint64(p[8:], seq)
	binary.LittleEndian.PutUint16(p[16:], batchN)
	binary.LittleEndian.PutUint16(p[18:], batchI)
	binary.LittleEndian.PutUint32(p[20:], uint32(size))
	tpBody(p)
	binary.LittleEndian.PutUint32(p[24:], tpSum(p))
	return p
}

func tpBody(p []byte) {
	x := uint64(binary.LittleEndian.Uint32(p[4:]))<<32 ^ binary.LittleEndian.Uint64(p[8:])*0x9E3779B97F4A7C15 | 1
	for i := tpHeader; i < len(p); i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p[i] = byte(x >> 24)
	}
}

func tpSum(p []byte) uint32 {
	c := crc32.Update(0, castagnoliTable, p[:24])
	return crc32.Update(c, castagnoliTable, p[28:])
}

// crcOf is the checksum acknowledged records are compared by.
// unitShape describes the random append units the reliability tests make:
// mostly one record of tpHeader+[0,body) bytes; one unit in 6 an atomic
// batch of 2..1+maxBatch such records; and one single record in bigEvery a
// large one of bigMin+[0,bigSpan) bytes.
type unitShape struct{ maxBatch, body, bigEvery, bigMin, bigSpan int }

// next makes writer's next unit, from seq on. It draws from rng in the order
// the tests always have, so a seed keeps reproducing the same workload.
func (u unitShape) next(rng *rand.Rand, writer uint32, seq uint64) [][]byte {
	n := 1
	if rng.IntN(6) == 0 {
		n = 2 + rng.IntN(u.maxBatch)
	}
	recs := make([][]byte, n)
	for i := range recs {
		size := tpHeader + rng.IntN(u.body)
		if n == 1 && rng.IntN(u.bigEvery) == 0 {
			size = u.bigMin + rng.IntN(u.bigSpan)
		}
		recs[i] = tpMake(writer, seq+uint64(i), uint16(n), uint16(i), size)
	}
	return recs
}

// appendUnit appends one unit: Append for a single record, AppendBatch for
// an atomic batch.
func appendUnit(w *WAL, recs [][]byte) (uint64, error) {
	if len(recs) == 1 {
		return w.Append(recs[0])
	}
	return w.AppendBatch(recs)
}

func crcOf(p []byte) uint32 { return crc32.Checksum(p, castagnoliTable) }

// tpParse validates a payload alone.
func tpParse(p []byte) (tpInfo, error) {
	if len(p) < tpHeader || string(p[:4]) != tpMagic {
		return tpInfo{}, fmt.Errorf("not a test payload (%d bytes)", len(p))
	}
	if n := binary.LittleEndian.Uint32(p[20:]); int(n) != len(p) {
		return tpInfo{}, fmt.Errorf("length field %d, payload has %d bytes", n, len(p))
	}
	if got, want := tpSum(p), binary.LittleEndian.Uint32(p[24:]); got != want {
		return tpInfo{}, fmt.Errorf("payload checksum %08x, field says %08x", got, want)
	}
	info := tpInfo{
		writer: binary.LittleEndian.Uint32(p[4:]),
		seq:    binary.LittleEndian.Uint64(p[8:]),
		batchN: binary.LittleEndian.Uint16(p[16:]),
		batchI: binary.LittleEndian.Uint16(p[18:]),
	}
	if info.batchN == 0 || info.batchI >= info.batchN || uint64(info.batchI) > info.seq {
		return tpInfo{}, fmt.Errorf("bad batch position %d/%d at seq %d", info.batchI, info.batchN, info.seq)
	}
	want := bytes.Clone(p)
	tpBody(want)
	if !bytes.Equal(want[tpHeader:], p[tpHeader:]) {
		return tpInfo{}, errors.New("body differs from what its writer generates")
	}
	return info, nil
}

// ackRec is what one acknowledged append promised: this record at this LSN.
type ackRec struct {
	writer uint32
	seq    uint64
	sum    uint32 // crcOf(payload)
}

// logModel is what a recovered log must agree with. It survives crashes: a
// test feeds it every acknowledgement and every TruncateFront request, and
// after each recovery the recovered content (records that were in flight
// and survived are part of the log from then on, and must not vanish
// later).
type logModel struct {
	acked      map[uint64]ackRec // LSN -> acknowledged record
	maxAcked   map[uint32]uint64 // writer -> highest acknowledged seq + 1
	truncFront uint64            // highest TruncateFront target requested (0: none)
	prev       map[uint64]uint32 // LSN -> crcOf(payload) found by the previous recovery
	conflicts  []string          // acknowledgements that contradict earlier ones
	// asyncRun[writer] > 0: the writer appends runs of up to that many
	// AppendAsync records, then Syncs; a crash may keep any prefix of its
	// run in flight.
	asyncRun map[uint32]int
}

func newLogModel() *logModel {
	return &logModel{acked: map[uint64]ackRec{}, maxAcked: map[uint32]uint64{}, prev: map[uint64]uint32{}, asyncRun: map[uint32]int{}}
}

func (m *logModel) ack(lsn uint64, r ackRec) {
	if old, ok := m.acked[lsn]; ok && old != r {
		m.conflicts = append(m.conflicts, fmt.Sprintf("lsn %d acknowledged twice: writer %d seq %d, then writer %d seq %d",
			lsn, old.writer, old.seq, r.writer, r.seq))
	}
	m.acked[lsn] = r
	m.maxAcked[r.writer] = max(m.maxAcked[r.writer], r.seq+1)
}

func (m *logModel) requestTruncateFront(lsn uint64) { m.truncFront = max(m.truncFront, lsn) }

// recovered records the content of a recovery that passed check.
func (m *logModel) recovered(recs []Record) {
	m.prev = make(map[uint64]uint32, len(recs))
	for _, r := range recs {
		m.prev[r.LSN] = crcOf(r.Data)
	}
}

// check compares a recovered log [first, last] whose records are recs with
// the model and returns every violation (none: the log is good). It does not
// change the model.
func (m *logModel) check(recs []Record, first, last uint64) []string {
	var bad []string
	add := func(format string, a ...any) {
		if len(bad) < 20 {
			bad = append(bad, fmt.Sprintf(format, a...))
		}
	}
	bad = append(bad, m.conflicts...)

	// The log is gap-free: exactly first..last, in order.
	if last+1 < first {
		add("last lsn %d before first lsn %d", last, first)
	}
	if uint64(len(recs)) != last+1-first {
		add("read %d records, log claims [%d, %d]", len(recs), first, last)
	}
	for i, r := range recs {
		if r.LSN != first+uint64(i) {
			add("record %d has lsn %d, want %d: gap or reorder", i, r.LSN, first+uint64(i))
			break
		}
	}
	if m.truncFront == 0 && first != 1 {
		add("first lsn %d without a TruncateFront", first)
	}
	if m.truncFront > 0 && first > m.truncFront {
		add("first lsn %d past the highest TruncateFront target %d", first, m.truncFront)
	}

	// Every record is one a writer made, and none appears twice.
	byLSN := make(map[uint64]tpInfo, len(recs))
	type wkey struct {
		writer uint32
		seq    uint64
	}
	seen := map[wkey]uint64{}
	for _, r := range recs {
		info, err := tpParse(r.Data)
		if err != nil {
			add("lsn %d (%s:%d): never appended: %v", r.LSN, r.Segment, r.Offset, err)
			continue
		}
		k := wkey{info.writer, info.seq}
		if at, dup := seen[k]; dup {
			add("writer %d seq %d appears twice, at lsn %d and %d", info.writer, info.seq, at, r.LSN)
		}
		seen[k] = r.LSN
		byLSN[r.LSN] = info
	}
	sums := make(map[uint64]uint32, len(recs))
	for _, r := range recs {
		sums[r.LSN] = crcOf(r.Data)
	}

	// Every acknowledged record is there, byte-identical, unless a
	// TruncateFront dropped it.
	for lsn, a := range m.acked {
		if lsn < first {
			if lsn >= m.truncFront {
				add("acknowledged lsn %d lost: log starts at %d, highest TruncateFront %d", lsn, first, m.truncFront)
			}
			continue
		}
		got, ok := sums[lsn]
		if !ok {
			add("acknowledged lsn %d (writer %d seq %d) lost: log is [%d, %d]", lsn, a.writer, a.seq, first, last)
			continue
		}
		if got != a.sum {
			info := byLSN[lsn]
			add("acknowledged lsn %d changed: was writer %d seq %d crc %08x, now writer %d seq %d crc %08x",
				lsn, a.writer, a.seq, a.sum, info.writer, info.seq, got)
		}
	}
	// What the previous recovery found stays.
	for lsn, sum := range m.prev {
		if lsn < first {
			if lsn >= m.truncFront {
				add("recovered lsn %d vanished: log starts at %d", lsn, first)
			}
			continue
		}
		if got, ok := sums[lsn]; !ok || got != sum {
			add("lsn %d, recovered before, is gone or changed (log [%d, %d])", lsn, first, last)
		}
	}

	// Records nobody acknowledged are a writer's one append in flight: the
	// batch right after its last acknowledged one (or, for a writer of
	// AppendAsync runs, records of the run after its last Sync).
	for lsn, info := range byLSN {
		if _, ok := m.acked[lsn]; ok {
			continue
		}
		if _, ok := m.prev[lsn]; ok {
			continue
		}
		next := m.maxAcked[info.writer]
		if run := m.asyncRun[info.writer]; run > 0 {
			if info.seq < next || info.seq >= next+uint64(run) {
				add("lsn %d: async writer %d seq %d was never synced and is not in its run in flight (next seq %d, run %d)",
					lsn, info.writer, info.seq, next, run)
			}
			continue
		}
		if info.batchStart() != next {
			add("lsn %d: writer %d seq %d was never acknowledged and is not its append in flight (next seq %d)",
				lsn, info.writer, info.seq, next)
		}
	}

	// Per writer: LSN order is sequence order, without holes; atomic
	// batches are whole.
	perWriter := map[uint32][]uint64{}
	for lsn, info := range byLSN {
		perWriter[info.writer] = append(perWriter[info.writer], lsn)
	}
	for writer, lsns := range perWriter {
		slices.Sort(lsns)
		for i := 1; i < len(lsns); i++ {
			a, b := byLSN[lsns[i-1]], byLSN[lsns[i]]
			if b.seq != a.seq+1 {
				add("writer %d: seq %d at lsn %d follows seq %d at lsn %d", writer, b.seq, lsns[i], a.seq, lsns[i-1])
			}
		}
	}
	for lsn, info := range byLSN {
		if info.batchI != 0 {
			continue
		}
		for j := uint64(1); j < uint64(info.batchN); j++ {
			next, ok := byLSN[lsn+j]
			if !ok || next.writer != info.writer || next.seq != info.seq+j {
				add("atomic batch of %d at lsn %d (writer %d seq %d) is not whole", info.batchN, lsn, info.writer, info.seq)
				break
			}
		}
	}
	for lsn, info := range byLSN {
		if info.batchI == 0 {
			continue
		}
		start := lsn - uint64(info.batchI)
		if s, ok := byLSN[start]; (!ok || s.writer != info.writer || s.seq != info.batchStart()) && start >= first {
			add("lsn %d is record %d of a batch whose first record is missing", lsn, info.batchI)
		}
	}
	sort.Strings(bad[len(m.conflicts):])
	return bad
}

// readLog reads every record of an open log without failing the test, so
// that callers can report read errors as violations.
func readLog(w *WAL) ([]Record, error) {
	r, err := w.NewReader(w.FirstLSN())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		rec.Data = bytes.Clone(rec.Data)
		out = append(out, rec)
	}
}

// checkLog opens dir, reads it whole and checks it against m. It returns the
// records and the log's range, or the violations.
func checkLog(dir string, o Options, m *logModel) (recs []Record, first, last uint64, bad []string) {
	w, err := Open(dir, o)
	if err != nil {
		return nil, 0, 0, []string{fmt.Sprintf("open after the crash failed: %v", err)}
	}
	defer w.Close()
	first, last = w.FirstLSN(), w.LastLSN()
	recs, err = readLog(w)
	if err != nil {
		return nil, first, last, []string{fmt.Sprintf("reading the recovered log [%d, %d] failed: %v", first, last, err)}
	}
	// Random reads agree with the replay.
	for i := 0; i < len(recs); i += 1 + len(recs)/16 {
		data, err := w.Read(recs[i].LSN)
		if err != nil || !bytes.Equal(data, recs[i].Data) {
			return nil, first, last, []string{fmt.Sprintf("Read(%d) disagrees with the replay: %v", recs[i].LSN, err)}
		}
	}
	return recs, first, last, m.check(recs, first, last)
}

// The checker must catch what it is there to catch: each case breaks one
// property of a good recovered log.
func TestLogModelCatchesViolations(t *testing.T) {
	rec := func(lsn uint64, writer uint32, seq uint64, n, i uint16) Record {
		return Record{LSN: lsn, Data: tpMake(writer, seq, n, i, 100)}
	}
	// Good: writer 1 seq 0..2 acknowledged at 1..3, writer 2's batch of two
	// in flight at 4..5.
	good := func() []Record {
		return []Record{rec(1, 1, 0, 1, 0), rec(2, 1, 1, 1, 0), rec(3, 1, 2, 1, 0), rec(4, 2, 0, 2, 0), rec(5, 2, 1, 2, 1)}
	}
	model := func() *logModel {
		m := newLogModel()
		for i, r := range good()[:3] {
			m.ack(uint64(i+1), ackRec{writer: 1, seq: uint64(i), sum: crcOf(r.Data)})
		}
		return m
	}
	require.Empty(t, model().check(good(), 1, 5))
	require.Empty(t, model().check(good()[:3], 1, 3), "the batch in flight may be lost whole")

	for _, c := range []struct {
		name  string
		recs  func() []Record
		first uint64
		last  uint64
		model func(m *logModel)
		want  string
	}{
		{"acknowledged record lost", func() []Record { return good()[:2] }, 1, 2, nil, "acknowledged lsn 3"},
		{"acknowledged record changed", func() []Record {
			r := good()
			r[1] = rec(2, 1, 7, 1, 0)
			return r
		}, 1, 5, nil, "changed"},
		{"gap", func() []Record {
			r := good()
			return append(r[:2], r[3:]...)
		}, 1, 5, nil, "gap"},
		{"never appended", func() []Record {
			r := good()
			r[4].Data = bytes.Clone(r[4].Data)
			r[4].Data[50] ^= 1
			return r
		}, 1, 5, nil, "never appended"},
		{"duplicate", func() []Record {
			r := good()
			return append(r, Record{LSN: 6, Data: r[4].Data})
		}, 1, 6, nil, "appears twice"},
		{"not the append in flight", func() []Record {
			return append(good(), rec(6, 1, 9, 1, 0))
		}, 1, 6, nil, "never acknowledged"},
		{"batch not whole", func() []Record { return good()[:4] }, 1, 4, nil, "not whole"},
		{"recovered record vanished", func() []Record { return good()[:3] }, 1, 3,
			func(m *logModel) { m.recovered(good()) }, "recovered before"},
		{"start moved without TruncateFront", func() []Record { return nil }, 4, 3, nil, "without a TruncateFront"},
		{"start past the TruncateFront", func() []Record { return good()[3:] }, 4, 5,
			func(m *logModel) { m.requestTruncateFront(3) }, "past the highest TruncateFront"},
		{"acknowledged twice", good, 1, 5,
			func(m *logModel) { m.ack(2, ackRec{writer: 3, seq: 0}) }, "acknowledged twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := model()
			if c.model != nil {
				c.model(m)
			}
			bad := m.check(c.recs(), c.first, c.last)
			require.NotEmpty(t, bad)
			assert.Contains(t, strings.Join(bad, "\n"), c.want)
		})
	}
}
