package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/segment"
)

// BenchmarkAppend measures durable appends: each op is one Append that
// returns once its record is durable, from W concurrent writers. Both
// backends run side by side in one run, so compare them as ratios.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{128, 1024, 16 << 10} {
		for _, writers := range []int{1, 16, 64} {
			for _, be := range []Backend{BackendURing, BackendPwrite} {
				b.Run(fmt.Sprintf("size=%d/writers=%d/backend=%s", size, writers, be), func(b *testing.B) {
					benchAppend(b, be, size, writers)
				})
			}
		}
	}
}

func benchAppend(b *testing.B, be Backend, size, writers int) {
	benchWriters(b, Options{Backend: be}, size, writers)
}

// benchWriters runs b.N durable appends of size bytes from writers
// goroutines on a fresh log opened with o, and reports records/s, the
// average batch and the p99 chain latency. The next segment is prepared only
// once the first is a quarter full, so nothing is zero-filled in the background
// while the clock runs unless the run itself gets that far.
func benchWriters(b *testing.B, o Options, size, writers int) {
	w, err := Open(b.TempDir(), o)
	require.NoError(b, err)
	defer w.Close()
	p := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := g; i < b.N; i += writers {
				if _, err := w.Append(p); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	st := w.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(st.AvgBatch, "recs/batch")
	b.ReportMetric(float64(st.SyncP50.Microseconds()), "p50-sync-us")
	b.ReportMetric(float64(st.SyncP99.Microseconds()), "p99-sync-us")
}

// BenchmarkReplay reads a 64 MiB log back with every checksum verified.
func BenchmarkReplay(b *testing.B) {
	for _, be := range []Backend{BackendURing, BackendPwrite} {
		b.Run("backend="+string(be), func(b *testing.B) {
			dir := b.TempDir()
			w, err := Open(dir, Options{Backend: be})
			require.NoError(b, err)
			rec := make([][]byte, 64)
			for i := range rec {
				rec[i] = make([]byte, 1000)
			}
			var total int64
			for total < 64<<20 {
				_, err := w.AppendBatch(rec)
				require.NoError(b, err)
				total += 64 * 1000
			}
			b.SetBytes(total)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				r, err := w.NewReader(w.FirstLSN())
				require.NoError(b, err)
				n := 0
				for {
					_, err := r.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				r.Close()
				if uint64(n) != w.LastLSN() {
					b.Fatalf("read %d records, want %d", n, w.LastLSN())
				}
			}
			b.StopTimer()
			require.NoError(b, w.Close())
		})
	}
}

// BenchmarkPrealloc compares durable appends into a zero-filled and a
// fallocated segment: Open prepares the first segment in the chosen mode
// before the clock starts, and short runs stay inside it.
func BenchmarkPrealloc(b *testing.B) {
	for _, writers := range []int{1, 16} {
		for _, mode := range []struct {
			name string
			p    Prealloc
		}{{"zero", PreallocZero}, {"fallocate", PreallocFallocate}} {
			b.Run(fmt.Sprintf("writers=%d/prealloc=%s", writers, mode.name), func(b *testing.B) {
				benchWriters(b, Options{Prealloc: mode.p}, 1024, writers)
			})
		}
	}
}

// BenchmarkInFlight measures how the pipelining depth (MaxInFlight) changes
// durable 1 KiB appends, on both backends, side by side in one run.
func BenchmarkInFlight(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		for _, be := range []Backend{BackendURing, BackendPwrite} {
			for _, depth := range []int{1, 2, 4, 8} {
				b.Run(fmt.Sprintf("writers=%d/backend=%s/inflight=%d", writers, be, depth), func(b *testing.B) {
					benchWriters(b, Options{Backend: be, MaxInFlight: depth}, 1024, writers)
				})
			}
		}
	}
}

// BenchmarkAppendAsync measures the bulk path: each op is one AppendAsync of
// 256 bytes (the harness's bulk record), one Sync at the end. ns/op is the
// appender's cost per record while the flusher writes behind it.
func BenchmarkAppendAsync(b *testing.B) {
	for _, be := range []Backend{BackendURing, BackendPwrite} {
		b.Run("backend="+string(be), func(b *testing.B) {
			benchAppendAsync(b, Options{Backend: be}, 256)
		})
	}
}

// benchAppendAsync runs b.N AppendAsync calls of size bytes on a fresh log
// opened with o, then one Sync.
func benchAppendAsync(b *testing.B, o Options, size int) {
	w, err := Open(b.TempDir(), o)
	require.NoError(b, err)
	defer w.Close()
	p := make([]byte, size)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.AppendAsync(p); err != nil {
			b.Fatal(err)
		}
	}
	require.NoError(b, w.Sync())
}

// BenchmarkOpen opens a log of 80 MiB of 1000-byte records written with
// AppendAsync (the last of its two segments fallocated, a fifth full) whose
// files are in the page cache, tail included: each op is Open and Close.
// Open reads and verifies the last segment's records and must know that
// nothing follows them; the fallocated space after them is unwritten and
// not read, whatever the page cache holds.
func BenchmarkOpen(b *testing.B) {
	for _, be := range []Backend{BackendURing, BackendPwrite} {
		b.Run("backend="+string(be), func(b *testing.B) {
			dir := b.TempDir()
			o := Options{Backend: be}
			w, err := Open(dir, o)
			require.NoError(b, err)
			p := make([]byte, 1000)
			for range 80 << 10 {
				_, err := w.AppendAsync(p)
				require.NoError(b, err)
			}
			require.NoError(b, w.Sync())
			require.NoError(b, w.Close())
			// Read every file whole: the page cache holds the unwritten
			// tail's zero pages too, as after a replay.
			paths, err := filepath.Glob(filepath.Join(dir, "*"+segment.FileSuffix))
			require.NoError(b, err)
			for _, path := range paths {
				data, err := os.ReadFile(path)
				require.NoError(b, err)
				require.NotEmpty(b, data)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				w, err := Open(dir, o)
				if err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFollow measures a reader that follows the log: one goroutine
// appends 1000-byte records in durable batches of 4 while a Reader returns
// each as soon as it is durable (polling every 50 µs once caught up). Each op
// is one record appended and read; compare with the appender alone
// (reader=false) as a ratio.
func BenchmarkFollow(b *testing.B) {
	for _, be := range []Backend{BackendURing, BackendPwrite} {
		for _, follow := range []bool{false, true} {
			b.Run(fmt.Sprintf("backend=%s/reader=%v", be, follow), func(b *testing.B) {
				w, err := Open(b.TempDir(), Options{Backend: be})
				require.NoError(b, err)
				defer w.Close()
				r, err := w.NewReader(1)
				require.NoError(b, err)
				defer r.Close()
				n := uint64(b.N)
				done := make(chan error, 1)
				b.ReportAllocs()
				b.ResetTimer()
				go func() {
					p := make([]byte, 1000)
					batch := [][]byte{p, p, p, p}
					for lsn := uint64(1); lsn <= n; lsn += uint64(len(batch)) {
						if _, err := w.AppendBatch(batch[:min(uint64(len(batch)), n-lsn+1)]); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
				for got := uint64(0); follow && got < n; {
					_, err := r.Next()
					if err == io.EOF {
						time.Sleep(50 * time.Microsecond)
						continue
					}
					if err != nil {
						b.Fatal(err)
					}
					got++
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// nullIO is a fileIO whose writes and syncs succeed at once without touching
// the disk: BenchmarkAppendPath uses it to time the log's own work.
type nullIO struct{}

func (nullIO) Pwrite(_ int, p []byte, _ int64) (int, error) { return len(p), nil }
func (nullIO) Fdatasync(int) error                          { return nil }
func (nullIO) Fsync(int) error                              { return nil }
func (nullIO) SyncRange(int, int64, int64) error            { return nil }

// BenchmarkAppendPath is BenchmarkAppendAsync on the pwrite backend with the
// disk taken out (writes and syncs return at once): the CPU the log spends
// per record laying, checksumming, indexing and handing batches on, which
// bounds a bulk load on a machine with few cores. Segment files are still
// created, rotated and prepared for real.
func BenchmarkAppendPath(b *testing.B) {
	for _, size := range []int{256, 1024} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			o := Options{Backend: BackendPwrite}
			o.fileIO = nullIO{}
			benchAppendAsync(b, o, size)
		})
	}
}
