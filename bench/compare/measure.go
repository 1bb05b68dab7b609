package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// snapshot holds the process and device counters read at the edges of a
// measured window. Deltas of two snapshots give the per-workload resource
// columns.
type snapshot struct {
	at  time.Time
	cpu time.Duration // user + system time of the whole process (getrusage)
	// runtime.MemStats.Mallocs as the snapshot started and as it ended:
	// a window counts from the end of its first snapshot to the start of
	// its last, so reading the counters (a file read, its parsing) is not
	// charged to the library measured.
	mallocsIn, mallocsOut uint64
	devSectors            uint64 // sectors written by the device holding the directory
}

// meter reads the counters for one directory's device.
type meter struct {
	devStat string // /sys/dev/block/MAJ:MIN/stat of the directory's device
	devName string
}

func newMeter(dir string) (*meter, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", dir, err)
	}
	maj, min := unix.Major(st.Dev), unix.Minor(st.Dev)
	base := fmt.Sprintf("/sys/dev/block/%d:%d", maj, min)
	m := &meter{devStat: base + "/stat", devName: fmt.Sprintf("%d:%d", maj, min)}
	if b, err := os.ReadFile(base + "/uevent"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "DEVNAME="); ok {
				m.devName = name
			}
		}
	}
	if _, err := m.sectorsWritten(); err != nil {
		return nil, fmt.Errorf("device counters for %s: %w", dir, err)
	}
	return m, nil
}

// sectorsWritten is field 7 of the block device's stat file: 512-byte
// sectors written (Documentation/block/stat.rst).
func (m *meter) sectorsWritten() (uint64, error) {
	b, err := os.ReadFile(m.devStat)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 7 {
		return 0, fmt.Errorf("%s: %d fields", m.devStat, len(f))
	}
	return strconv.ParseUint(f[6], 10, 64)
}

func (m *meter) snap() snapshot {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	in := ms.Mallocs
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	sec, _ := m.sectorsWritten()
	runtime.ReadMemStats(&ms)
	return snapshot{
		at:         time.Now(),
		cpu:        time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		mallocsIn:  in,
		mallocsOut: ms.Mallocs,
		devSectors: sec,
	}
}

// usage is the difference of two snapshots, normalised by the work done.
type usage struct {
	Secs           float64 // wall seconds of the window
	CPUSecsPerGB   float64 // process CPU seconds per 1e9 payload bytes
	AllocsPerOp    float64 // heap allocations per append (or per record read)
	DevBytesPerOp  float64 // device bytes written per append (whole device: noisy on a shared disk)
	ProcBytesPerOp float64 // bytes this process sent to storage per append (/proc/self/io)
}

func diff(a, b snapshot, ops, payloadBytes int64) usage {
	u := usage{Secs: b.at.Sub(a.at).Seconds()}
	if payloadBytes > 0 {
		u.CPUSecsPerGB = (b.cpu - a.cpu).Seconds() / (float64(payloadBytes) / 1e9)
	}
	if ops > 0 {
		u.AllocsPerOp = float64(b.mallocsIn-a.mallocsOut) / float64(ops)
		u.DevBytesPerOp = float64((b.devSectors-a.devSectors)*512) / float64(ops)
	}
	return u
}

// Peak RSS of one phase: writing 5 to /proc/self/clear_refs resets the
// high-water mark VmHWM (Linux >= 4.0), so one process can measure the peak
// of each replay in turn.
func resetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// rssKB returns VmRSS and VmHWM in KiB.
func rssKB() (rss, hwm int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		parse := func(p string) (int64, bool) {
			v, ok := strings.CutPrefix(line, p)
			if !ok {
				return 0, false
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n, true
		}
		if n, ok := parse("VmRSS:"); ok {
			rss = n
		}
		if n, ok := parse("VmHWM:"); ok {
			hwm = n
		}
	}
	return rss, hwm
}

// evict makes every file under dir durable and drops its pages from the page
// cache (posix_fadvise DONTNEED drops clean pages only, hence the sync
// first). It touches only this log's files, not the whole machine's cache.
func evict(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fd := int(f.Fd())
		if err := unix.Fdatasync(fd); err != nil {
			return fmt.Errorf("fdatasync %s: %w", path, err)
		}
		return unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
	})
}

// residentFraction reports which fraction of the pages of the files under
// dir is in the page cache (mmap + mincore; does not fault pages in).
func residentFraction(dir string) float64 {
	var in, total int64
	page := int64(os.Getpagesize())
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || fi.Size() == 0 {
			return nil
		}
		b, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return nil
		}
		defer unix.Munmap(b)
		vec := make([]byte, (fi.Size()+page-1)/page)
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			return nil
		}
		for _, v := range vec {
			total++
			if v&1 != 0 {
				in++
			}
		}
		return nil
	})
	if total == 0 {
		return 0
	}
	return float64(in) / float64(total)
}

// hist is a log-linear latency histogram in nanoseconds: 32 sub-buckets per
// power of two (about 3% resolution). Adding is allocation-free, so it does
// not disturb the allocations-per-append column.
type hist struct {
	n      uint64
	counts [histBuckets]uint64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = 48 * histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits - 1 // v>>e in [32, 64)
	i := (e+1)*histSub + int(v>>e) - histSub
	return min(i, histBuckets-1)
}

// histValue is the midpoint of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := i/histSub - 1
	lo := uint64(i%histSub+histSub) << e
	return lo + (uint64(1)<<e)/2
}

func (h *hist) add(d time.Duration) {
	h.n++
	h.counts[histIndex(uint64(max(d, 0)))]++
}

func (h *hist) merge(o *hist) {
	h.n += o.n
	for i := range h.counts {
		h.counts[i] += o.counts[i]
	}
}

// quantile returns the q-quantile (0 < q <= 1).
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(histValue(i))
		}
	}
	return time.Duration(histValue(histBuckets - 1))
}

// machine describes the host for the results header.
type machine struct {
	Date       string  `json:"date"`
	Host       string  `json:"host"`
	CPU        string  `json:"cpu"`
	Cores      int     `json:"cores"`
	MemGiB     float64 `json:"mem_gib"`
	Kernel     string  `json:"kernel"`
	Go         string  `json:"go"`
	Dir        string  `json:"dir"`
	FS         string  `json:"fs"`
	Device     string  `json:"device"`
	DevModel   string  `json:"device_model"`
	Rotational bool    `json:"rotational"`
	LoadStart  string  `json:"loadavg_start"`
	LoadEnd    string  `json:"loadavg_end,omitempty"`
	// Device writes by everyone else while this process is idle, sampled
	// for one second before and after the runs: the noise floor of the
	// device-bytes columns.
	IdleWriteStart float64 `json:"idle_dev_write_mb_s_start"`
	// Tree is the ringwal source measured: HEAD of the repository holding
	// this module, plus the library files that differed from it.
	Tree         string  `json:"tree"`
	IdleWriteEnd float64 `json:"idle_dev_write_mb_s_end,omitempty"`
}

// idleWriteRate samples the device's write rate over d while this process
// does nothing, in MB/s.
func (m *meter) idleWriteRate(d time.Duration) float64 {
	a, _ := m.sectorsWritten()
	t := time.Now()
	time.Sleep(d)
	b, _ := m.sectorsWritten()
	return float64((b-a)*512) / time.Since(t).Seconds() / 1e6
}

func describeMachine(dir string, m *meter) machine {
	var u unix.Utsname
	_ = unix.Uname(&u)
	cstr := func(b []byte) string { return string(bytes.TrimRight(b, "\x00")) }
	mc := machine{
		Date:   time.Now().UTC().Format(time.RFC3339),
		Host:   cstr(u.Nodename[:]),
		Cores:  runtime.NumCPU(),
		Kernel: cstr(u.Release[:]),
		Go:     runtime.Version(),
		Dir:    dir,
		Device: m.devName,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				mc.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		mc.MemGiB = float64(si.Totalram) * float64(si.Unit) / (1 << 30)
	}
	var sfs unix.Statfs_t
	if unix.Statfs(dir, &sfs) == nil {
		switch sfs.Type {
		case unix.EXT4_SUPER_MAGIC:
			mc.FS = "ext4"
		case unix.XFS_SUPER_MAGIC:
			mc.FS = "xfs"
		case unix.TMPFS_MAGIC:
			mc.FS = "tmpfs"
		case unix.BTRFS_SUPER_MAGIC:
			mc.FS = "btrfs"
		default:
			mc.FS = fmt.Sprintf("0x%x", sfs.Type)
		}
	}
	// The whole disk's attributes live under the parent of a partition.
	sys := strings.TrimSuffix(m.devStat, "/stat")
	if _, err := os.Stat(sys + "/partition"); err == nil {
		sys += "/.."
	}
	if b, err := os.ReadFile(sys + "/queue/rotational"); err == nil {
		mc.Rotational = strings.TrimSpace(string(b)) == "1"
	}
	if b, err := os.ReadFile(sys + "/device/model"); err == nil {
		mc.DevModel = strings.TrimSpace(string(b))
	} else if b, err := os.ReadFile(sys + "/device/vendor"); err == nil {
		mc.DevModel = strings.TrimSpace(string(b))
	}
	if strings.HasPrefix(mc.Device, "vd") && (mc.DevModel == "" || mc.DevModel == "0x1af4") {
		mc.DevModel = "virtio-blk" // 0x1af4: the virtio vendor id
	}
	mc.LoadStart = loadavg()
	mc.Tree = sourceTree()
	mc.IdleWriteStart = m.idleWriteRate(time.Second)
	return mc
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// sourceTree describes the ringwal source this binary was built from, as
// far as git in ../.. can tell: the HEAD commit and any modified library
// files (tests and tooling excluded).
func sourceTree() string {
	git := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", "../.."}, args...)...).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	head := git("log", "-1", "--format=%h %cI %s")
	if head == "" {
		return "unknown (not run from bench/compare in a git checkout)"
	}
	var dirty []string
	for _, line := range strings.Split(git("status", "--porcelain", "--", "wal", "segment", "bufpool", "internal"), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.HasSuffix(f[1], ".go") && !strings.HasSuffix(f[1], "_test.go") {
			dirty = append(dirty, f[1])
		}
	}
	if len(dirty) > 0 {
		return head + " + uncommitted changes to " + strings.Join(dirty, ", ")
	}
	return head
}
