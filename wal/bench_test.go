package wal

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
	w, err := Open(b.TempDir(), Options{Backend: be})
	require.NoError(b, err)
	defer w.Close()
	// Measure steady state: let the preparer finish zero-filling the next
	// segment before the clock starts.
	time.Sleep(1500 * time.Millisecond)
	p := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N / writers
	rest := b.N % writers
	for g := range writers {
		n := per
		if g < rest {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if _, err := w.Append(p); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	st := w.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(st.AvgBatch, "recs/batch")
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

// BenchmarkPrealloc compares durable appends into zero-filled and fallocated
// segments in steady state: the log is opened (first segment prepared), the
// next segment is given time to be prepared, and only then is the timer
// started. Appends stay inside the first segment.
func BenchmarkPrealloc(b *testing.B) {
	for _, writers := range []int{1, 16} {
		for _, mode := range []struct {
			name string
			p    Prealloc
		}{{"zero", PreallocZero}, {"fallocate", PreallocFallocate}} {
			b.Run(fmt.Sprintf("writers=%d/prealloc=%s", writers, mode.name), func(b *testing.B) {
				w, err := Open(b.TempDir(), Options{Prealloc: mode.p})
				require.NoError(b, err)
				defer w.Close()
				time.Sleep(1500 * time.Millisecond) // let the preparer finish
				p := make([]byte, 1024)
				b.SetBytes(1024)
				b.ResetTimer()
				var wg sync.WaitGroup
				for g := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := g; i < b.N; i += writers {
							if _, err := w.Append(p); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(w.Stats().SyncP50.Microseconds()), "p50-sync-us")
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
					w, err := Open(b.TempDir(), Options{Backend: be, MaxInFlight: depth})
					require.NoError(b, err)
					defer w.Close()
					time.Sleep(1500 * time.Millisecond)
					p := make([]byte, 1024)
					b.SetBytes(1024)
					b.ResetTimer()
					var wg sync.WaitGroup
					for g := range writers {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for i := g; i < b.N; i += writers {
								if _, err := w.Append(p); err != nil {
									b.Error(err)
									return
								}
							}
						}()
					}
					wg.Wait()
					b.StopTimer()
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
					b.ReportMetric(w.Stats().AvgBatch, "recs/batch")
				})
			}
		}
	}
}
