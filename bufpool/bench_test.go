package bufpool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringwal/ringwal/internal/ring"
)

func BenchmarkAcquireRelease(b *testing.B) {
	p := newPool(b, 4096, 16)
	b.ReportAllocs()
	for b.Loop() {
		idx, _, err := p.Acquire()
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Release(idx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSyncedWrite runs one WRITE_FIXED+FDATASYNC chain per op against
// pwrite+fdatasync of the same size, side by side in one run, each
// overwriting the same pre-written region of its own file.
func BenchmarkSyncedWrite(b *testing.B) {
	for _, size := range []int{4096, 65536} {
		for _, backend := range []string{"uring", "pwrite"} {
			b.Run(fmt.Sprintf("backend=%s/size=%d", backend, size), func(b *testing.B) {
				f, err := os.Create(filepath.Join(b.TempDir(), "bench"))
				require.NoError(b, err)
				defer f.Close()
				_, err = f.WriteAt(make([]byte, size), 0)
				require.NoError(b, err)
				require.NoError(b, f.Sync())
				fd := int(f.Fd())
				b.SetBytes(int64(size))
				b.ReportAllocs()
				switch backend {
				case "uring":
					r := newRing(b)
					p, err := New(r, size, 1)
					require.NoError(b, err)
					defer p.Close()
					idx, buf, err := p.Acquire()
					require.NoError(b, err)
					ops := []ring.Op{
						{Kind: ring.WriteFixed, Fd: fd, Buf: buf, BufIndex: idx},
						{Kind: ring.Fdatasync, Fd: fd},
					}
					for b.Loop() {
						c, err := r.Submit(ops)
						if err != nil {
							b.Fatal(err)
						}
						if err := ring.Wait(c, ops); err != nil {
							b.Fatal(err)
						}
					}
					require.NoError(b, p.Release(idx))
				case "pwrite":
					buf := make([]byte, size)
					for b.Loop() {
						if _, err := unix.Pwrite(fd, buf, 0); err != nil {
							b.Fatal(err)
						}
						if err := unix.Fdatasync(fd); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
