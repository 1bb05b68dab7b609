package wal

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReplayHugePages: with ReplayHugePages, a Reader reads a segment that
// is not in the page cache into 2 MiB folios and maps them whole (smaps
// counts them as FilePmdMapped), and returns the same records.
func TestReplayHugePages(t *testing.T) {
	thp, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || bytes.Contains(thp, []byte("[never]")) {
		t.Skip("transparent huge pages are off on this machine: ReplayHugePages changes nothing here")
	}
	o := Options{Backend: BackendPwrite, ReplayHugePages: true}
	dir, records, _ := coldLog(t, o)
	o.SegmentSize, o.MaxRecordSize = 8<<20, 64<<10
	w := openT(t, dir, o)
	r, err := w.NewReader(w.FirstLSN())
	require.NoError(t, err)
	defer r.Close()

	cold := map[string]bool{}
	pmd := map[string]int{} // per segment: the most kB mapped by PMD in one of its windows
	maps := 0
	lsn := uint64(1)
	for ; ; lsn++ {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		require.Equal(t, lsn, rec.LSN)
		require.Equal(t, payload(lsn, 1000), rec.Data)
		cold[rec.Segment] = r.cold
		if r.mr != nil && r.mr.maps != maps && len(r.mr.m) > 0 {
			// A new window: its pages were read in when it was mapped.
			maps = r.mr.maps
			kb, err := pmdMappedKB(uintptr(unsafe.Pointer(&r.mr.m[0])))
			require.NoError(t, err)
			pmd[rec.Segment] = max(pmd[rec.Segment], kb)
		}
	}
	require.Equal(t, records+1, lsn)
	n := 0
	for seg, c := range cold {
		if c {
			n++
			assert.GreaterOrEqual(t, pmd[seg], 2048, "%s, read from the disk: no window mapped a 2 MiB folio whole", seg)
		}
	}
	require.GreaterOrEqual(t, n, 2, "segments read from the disk: %v", cold)
}

// pmdMappedKB returns the FilePmdMapped count of the mapping that holds
// addr, from /proc/self/smaps.
func pmdMappedKB(addr uintptr) (int, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	in := false
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				in = uint64(addr) >= a && uint64(addr) < b
				continue
			}
		}
		if in && fields[0] == "FilePmdMapped:" && len(fields) > 1 {
			return strconv.Atoi(fields[1])
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no mapping holds %#x in /proc/self/smaps", addr)
}
