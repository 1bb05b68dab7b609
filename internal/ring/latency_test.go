//go:build linux

package ring

import (
	"os"
	"slices"
	"testing"
	"time"
	"unsafe"

	iouring "github.com/iceber/iouring-go"
	iouring_syscall "github.com/iceber/iouring-go/syscall"
	"golang.org/x/sys/unix"
)

// BenchmarkDepth1 measures one durable write at a time, the way each path
// would carry a lone appender's record, and where the time goes: the same
// 1 KiB (4 KiB for O_DIRECT) overwrite of zero-filled blocks through plain
// syscalls, through this package's chains, and through the pieces of a
// chain alone. It reports p50 and p99 of each operation in µs. The file is
// put in RINGWAL_BENCH_DIR (default: the test's temporary directory; use a
// directory on the disk you care about).
//
//	go test ./internal/ring -run XXX -bench Depth1 -benchtime 2000x
func BenchmarkDepth1(b *testing.B) {
	dir := os.Getenv("RINGWAL_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	f, err := os.CreateTemp(dir, "depth1-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	const size = 64 << 20
	zero := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zero)) {
		if _, err := f.WriteAt(zero, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
	df, err := os.OpenFile(f.Name(), os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer df.Close()
	fd, dfd := int(f.Fd()), int(df.Fd())

	r, err := New(64)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(buf)
	if err := r.RegisterBuffers([][]byte{buf}); err != nil {
		b.Fatal(err)
	}
	defer r.UnregisterBuffers()

	chain := func(ops ...Op) {
		c, err := r.Submit(ops)
		if err != nil {
			b.Fatal(err)
		}
		if err := Wait(c, ops); err != nil {
			b.Fatal(err)
		}
		c.(Releaser).Release()
	}
	// raw submits prepared requests through the library and checks every
	// result: what this package does not offer (NOP, O_DIRECT, RWF_DSYNC).
	raw := func(preps ...iouring.PrepRequest) {
		set, err := r.r.SubmitRequests(preps, nil)
		if err != nil {
			b.Fatal(err)
		}
		<-set.Done()
		for _, rq := range set.Requests() {
			if res, _ := rq.GetRes(); res < 0 {
				b.Fatalf("result %d", res)
			}
		}
	}
	var off int64
	directWrite := func(rwFlags uint32, link bool) iouring.PrepRequest {
		return func(sqe iouring_syscall.SubmissionQueueEntry, _ *iouring.UserData) {
			sqe.PrepOperation(iouring_syscall.IORING_OP_WRITE_FIXED, int32(dfd), uint64(uintptr(unsafe.Pointer(&buf[0]))), 4096, uint64(off&^4095))
			sqe.SetBufIndex(0)
			sqe.SetOpFlags(rwFlags)
			if link {
				sqe.SetFlags(iouring_syscall.IOSQE_FLAGS_IO_LINK)
			}
		}
	}
	directSync := func(sqe iouring_syscall.SubmissionQueueEntry, _ *iouring.UserData) {
		sqe.PrepOperation(iouring_syscall.IORING_OP_FSYNC, int32(dfd), 0, 0, 0)
		sqe.SetOpFlags(iouring_syscall.IORING_FSYNC_DATASYNC)
	}
	nop := func(sqe iouring_syscall.SubmissionQueueEntry, _ *iouring.UserData) {
		sqe.PrepOperation(iouring_syscall.IORING_OP_NOP, -1, 0, 0, 0)
	}
	write := Op{Kind: WriteFixed, Fd: fd, Buf: buf[:1024]}
	sync := Op{Kind: Fdatasync, Fd: fd}
	cases := []struct {
		name string
		one  func()
	}{
		{"pwrite+fdatasync", func() { unix.Pwrite(fd, buf[:1024], off); unix.Fdatasync(fd) }},
		{"ring:write_fixed+fdatasync", func() { w := write; w.Offset = off; chain(w, sync) }},
		{"pwrite,ring:fdatasync", func() { unix.Pwrite(fd, buf[:1024], off); chain(sync) }},
		{"ring:write_fixed,fdatasync", func() { w := write; w.Offset = off; chain(w); unix.Fdatasync(fd) }},
		{"ring:write_fixed", func() { w := write; w.Offset = off; chain(w) }},
		{"pwrite", func() { unix.Pwrite(fd, buf[:1024], off) }},
		{"ring:nop", func() { raw(nop) }},
		{"odirect:pwrite+fdatasync", func() { unix.Pwrite(dfd, buf[:4096], off&^4095); unix.Fdatasync(dfd) }},
		{"odirect:ring:write_fixed+fdatasync", func() { raw(directWrite(0, true), directSync) }},
		{"odirect:ring:write_fixed_dsync", func() { raw(directWrite(unix.RWF_DSYNC, false)) }},
		{"odirect:ring:write_fixed", func() { raw(directWrite(0, false)) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				c.one()
				lat = append(lat, time.Since(t0))
				off = (off + 1024) % size
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
