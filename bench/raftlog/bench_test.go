package raftlogbench

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"

	"github.com/ringwal/ringwal/raftlog"
	"github.com/ringwal/ringwal/wal"
)

type logStore interface {
	raft.LogStore
	io.Closer
}

// stores opens each store under comparison in a fresh directory.
var stores = []struct {
	name string
	open func(dir string) (logStore, error)
}{
	{"ringwal", func(dir string) (logStore, error) {
		return raftlog.Open(dir, raftlog.Options{}) // io_uring where the kernel allows it
	}},
	{"ringwal-pwrite", func(dir string) (logStore, error) {
		return raftlog.Open(dir, raftlog.Options{WAL: wal.Options{Backend: wal.BackendPwrite}})
	}},
	{"raft-wal", func(dir string) (logStore, error) {
		return raftwal.Open(dir)
	}},
	{"raft-boltdb", func(dir string) (logStore, error) {
		return raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	}},
}

// settle gives a store just opened time to finish its background work
// before the clock starts: ringwal zero-fills its next 64 MiB segment, once
// per 64 MiB of log in steady state, which a short run would otherwise
// charge to its first seconds.
func settle() { time.Sleep(2 * time.Second) }

// BenchmarkStoreLogs appends batches of 1 KiB entries, one StoreLogs call
// at a time, as a raft leader or follower does. The stores run side by side
// in one run, for each batch size.
func BenchmarkStoreLogs(b *testing.B) {
	const size = 1024
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, batch := range []int{1, 16, 64} {
		for _, st := range stores {
			b.Run(fmt.Sprintf("batch=%d/size=%d/store=%s", batch, size, st.name), func(b *testing.B) {
				s, err := st.open(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				settle()
				logs := make([]*raft.Log, batch)
				for i := range logs {
					logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: data}
				}
				next := uint64(1)
				b.SetBytes(int64(batch * size))
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					now := time.Now()
					for _, l := range logs {
						l.Index, l.AppendedAt = next, now
						next++
					}
					if err := s.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
				}
				elapsed := time.Since(start)
				b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "logs/s")
				b.ReportMetric(float64(elapsed.Microseconds())/float64(b.N), "µs/call")
			})
		}
	}
}

// BenchmarkGetLog reads random entries back from a store of 10,000.
func BenchmarkGetLog(b *testing.B) {
	const size, n = 1024, 10000
	data := make([]byte, size)
	for _, st := range stores {
		b.Run(fmt.Sprintf("size=%d/store=%s", size, st.name), func(b *testing.B) {
			s, err := st.open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			logs := make([]*raft.Log, 0, 100)
			for i := uint64(1); i <= n; i++ {
				logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: data})
				if len(logs) == cap(logs) {
					if err := s.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
					logs = logs[:0]
				}
			}
			b.SetBytes(size)
			b.ResetTimer()
			var l raft.Log
			idx := uint64(1)
			for range b.N {
				idx = idx*6364136223846793005 + 1442695040888963407
				if err := s.GetLog(1+idx%n, &l); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
