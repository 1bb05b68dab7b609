package raftlog_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ringwal/ringwal/raftlog"
)

// The LogStore calls raft makes: append, read, compact, truncate.
func Example() {
	dir, _ := os.MkdirTemp("", "example-raftlog-")
	defer os.RemoveAll(dir)

	s, err := raftlog.Open(dir, raftlog.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// After a snapshot install the log may start anywhere.
	var logs []*raft.Log
	for i := uint64(100); i < 110; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte(fmt.Sprint("cmd ", i))})
	}
	if err := s.StoreLogs(logs); err != nil { // one durable batch
		log.Fatal(err)
	}
	var l raft.Log
	_ = s.GetLog(105, &l)
	fmt.Printf("entry %d: %s\n", l.Index, l.Data)

	_ = s.DeleteRange(100, 103) // compaction after a snapshot
	_ = s.DeleteRange(108, 109) // entries that conflict with a new leader's
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	fmt.Println("log:", first, "-", last)
	fmt.Println(s.GetLog(109, &l) == raft.ErrLogNotFound)

	_ = s.SetUint64([]byte("CurrentTerm"), 2) // the StableStore half
	term, _ := s.GetUint64([]byte("CurrentTerm"))
	fmt.Println("term:", term)
	// Output:
	// entry 105: cmd 105
	// log: 104 - 107
	// true
	// term: 2
}

type countFSM struct{ n int }

func (f *countFSM) Apply(*raft.Log) any { f.n++; return f.n }
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, fmt.Errorf("not in this example")
}
func (f *countFSM) Restore(io.ReadCloser) error { return nil }

// A one-node raft cluster with its log and stable state in a Store: the
// same Store is passed as both.
func Example_raft() {
	dir, _ := os.MkdirTemp("", "example-raftlog-")
	defer os.RemoveAll(dir)

	store, err := raftlog.Open(dir, raftlog.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	conf := raft.DefaultConfig()
	conf.LocalID = "node0"
	conf.Logger = hclog.NewNullLogger()
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	addr, transport := raft.NewInmemTransport("")
	r, err := raft.NewRaft(conf, &countFSM{}, store, store, raft.NewInmemSnapshotStore(), transport)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Shutdown()
	boot := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}
	if err := r.BootstrapCluster(boot).Error(); err != nil {
		log.Fatal(err)
	}
	for r.State() != raft.Leader {
		time.Sleep(10 * time.Millisecond)
	}
	f := r.Apply([]byte("hello"), time.Second)
	if err := f.Error(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("applied, count:", f.Response())
	// Output:
	// applied, count: 1
}
