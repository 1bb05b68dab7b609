package raftlog

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/wal"
)

// counterFSM counts the commands it applied and chains a hash over them, in
// order: two FSMs with the same count and hash applied the same commands in
// the same order.
type counterFSM struct {
	mu       sync.Mutex
	count    uint64
	hash     [32]byte
	restores atomic.Int64
}

type fsmState struct {
	Count uint64
	Hash  [32]byte
}

func (s fsmState) next(cmd []byte) fsmState {
	return fsmState{Count: s.Count + 1, Hash: sha256.Sum256(append(s.Hash[:], cmd...))}
}

func (f *counterFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := fsmState{f.count, f.hash}.next(l.Data)
	f.count, f.hash = st.Count, st.Hash
	return st.Count
}

func (f *counterFSM) state() fsmState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fsmState{f.count, f.hash}
}

func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) {
	return f.state(), nil
}

func (f *counterFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [40]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.mu.Lock()
	f.count = binary.LittleEndian.Uint64(b[:8])
	copy(f.hash[:], b[8:])
	f.mu.Unlock()
	f.restores.Add(1)
	return nil
}

func (s fsmState) Persist(sink raft.SnapshotSink) error {
	b := binary.LittleEndian.AppendUint64(nil, s.Count)
	if _, err := sink.Write(append(b, s.Hash[:]...)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (fsmState) Release() {}

// node is one member of the test cluster; its directory outlives restarts.
type node struct {
	id    raft.ServerID
	dir   string
	addr  raft.ServerAddress // fixed across restarts
	store *Store
	trans *raft.NetworkTransport
	fsm   *counterFSM
	raft  *raft.Raft
}

// logWriter sends raft's log lines to the test log until the test ends.
type logWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Logf("%s", p)
	}
	return len(p), nil
}

type cluster struct {
	t     *testing.T
	nodes []*node
	log   *logWriter
}

func (c *cluster) config(n *node) *raft.Config {
	conf := raft.DefaultConfig()
	conf.LocalID = n.id
	// Quick elections on loopback, with room for -race on a shared
	// machine.
	conf.HeartbeatTimeout = 300 * time.Millisecond
	conf.ElectionTimeout = 300 * time.Millisecond
	conf.LeaderLeaseTimeout = 150 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	// Snapshots and compaction (DeleteRange from the front) every few
	// hundred entries.
	conf.SnapshotThreshold = 400
	conf.SnapshotInterval = 200 * time.Millisecond
	conf.TrailingLogs = 100
	conf.Logger = hclog.New(&hclog.LoggerOptions{
		Name: string(n.id), Level: hclog.Warn, Output: c.log,
	})
	return conf
}

// start opens n's stores from its directory and starts raft on its address.
func (c *cluster) start(n *node) {
	t := c.t
	var err error
	// Small segments, so that compaction removes files; the default
	// backend (io_uring where the kernel allows it).
	n.store, err = Open(filepath.Join(n.dir, "log"), Options{WAL: wal.Options{
		SegmentSize: 256 << 10, MaxRecordSize: 64 << 10, BufferSize: 64 << 10, BufferCount: 8,
	}})
	require.NoError(t, err)
	snaps, err := raft.NewFileSnapshotStore(n.dir, 2, io.Discard)
	require.NoError(t, err)
	bind := "127.0.0.1:0"
	if n.addr != "" {
		bind = string(n.addr)
	}
	n.trans, err = raft.NewTCPTransport(bind, nil, 3, 2*time.Second, io.Discard)
	require.NoError(t, err)
	n.addr = n.trans.LocalAddr()
	n.fsm = &counterFSM{}
	n.raft, err = raft.NewRaft(c.config(n), n.fsm, n.store, n.store, snaps, n.trans)
	require.NoError(t, err)
	// Restores from here on are snapshots sent by the leader, not the
	// node's own snapshot loaded by NewRaft.
	n.fsm.restores.Store(0)
}

// stop shuts n down the way a crash would leave it for its stores: raft is
// shut down, the stores are closed, nothing else is saved.
func (c *cluster) stop(n *node) {
	require.NoError(c.t, n.raft.Shutdown().Error())
	require.NoError(c.t, n.trans.Close())
	require.NoError(c.t, n.store.Close())
	n.raft = nil
}

func (c *cluster) leader(timeout time.Duration) *node {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, n := range c.nodes {
			if n.raft != nil && n.raft.State() == raft.Leader {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no leader after %v", timeout)
	return nil
}

// apply submits commands [from, to) through the leader, pipelined, and
// waits for every one to be committed and applied there; it returns the
// expected FSM state after them.
func (c *cluster) apply(leader *node, want fsmState, from, to int) fsmState {
	futures := make([]raft.ApplyFuture, 0, to-from)
	for i := from; i < to; i++ {
		cmd := []byte(fmt.Sprintf("command %06d", i))
		futures = append(futures, leader.raft.Apply(cmd, 10*time.Second))
		want = want.next(cmd)
	}
	for i, f := range futures {
		require.NoError(c.t, f.Error(), "command %d", from+i)
		require.Equal(c.t, uint64(from+i+1), f.Response(), "command %d applied out of order", from+i)
	}
	return want
}

// converge waits until every running node's FSM is in state want.
func (c *cluster) converge(want fsmState, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		same := true
		for _, n := range c.nodes {
			if n.raft != nil && n.fsm.state() != want {
				same = false
			}
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			for _, n := range c.nodes {
				if n.raft != nil {
					c.t.Logf("%s: applied %d, want %d", n.id, n.fsm.state().Count, want.Count)
				}
			}
			c.t.Fatalf("FSMs did not converge in %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) follower(leader *node) *node {
	for _, n := range c.nodes {
		if n != leader && n.raft != nil {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// checkStore reads every entry a node's store holds. The node may be
// running: a snapshot can compact a prefix away while we read (the cluster
// snapshots every 200 ms). An entry reported missing must then lie below the
// new first index - compaction removes only a prefix - and reading goes on
// from there; any other miss fails.
func checkStore(t *testing.T, n *node) (first, last uint64) {
	first, err := n.store.FirstIndex()
	require.NoError(t, err)
	last, err = n.store.LastIndex()
	require.NoError(t, err)
	var l raft.Log
	for idx := first; first > 0 && idx <= last; idx++ {
		err := n.store.GetLog(idx, &l)
		if errors.Is(err, raft.ErrLogNotFound) {
			now, ferr := n.store.FirstIndex()
			require.NoError(t, ferr)
			require.Greater(t, now, idx, "%s: GetLog(%d) not found, and no compaction removed it (first index %d)", n.id, idx, now)
			idx = now - 1
			continue
		}
		require.NoError(t, err, "%s: GetLog(%d)", n.id, idx)
	}
	return first, last
}

// TestCluster runs three hashicorp/raft nodes over loopback TCP, each with
// its log and stable state in a Store: it elects a leader, applies
// thousands of commands, stops and restarts a follower (which then needs a
// snapshot: the leader compacted past its log), then the leader, applies
// more, and checks that every FSM applied every acknowledged command once, in
// order.
func TestCluster(t *testing.T) {
	first, more := 3000, 500
	if testing.Short() {
		first, more = 600, 200
	}
	c := &cluster{t: t, log: &logWriter{t: t}}
	t.Cleanup(func() {
		c.log.mu.Lock()
		c.log.done = true
		c.log.mu.Unlock()
	})
	defer func() {
		for _, n := range c.nodes {
			if n.raft != nil {
				c.stop(n)
			}
		}
	}()

	var servers []raft.Server
	for i := range 3 {
		n := &node{id: raft.ServerID(fmt.Sprintf("node%d", i)), dir: t.TempDir()}
		c.start(n)
		c.nodes = append(c.nodes, n)
		servers = append(servers, raft.Server{ID: n.id, Address: n.addr})
	}
	t.Logf("backend: %s", c.nodes[0].store.Stats().Backend)
	for _, n := range c.nodes {
		require.NoError(t, n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error())
	}

	start := time.Now()
	leader := c.leader(10 * time.Second)
	want := c.apply(leader, fsmState{}, 0, first)
	c.converge(want, 20*time.Second)
	t.Logf("%d commands applied on 3 nodes in %v (leader %s)", first, time.Since(start).Round(time.Millisecond), leader.id)
	applied := first

	// A follower goes down; the cluster goes on and compacts past it.
	f := c.follower(leader)
	_, fLast := checkStore(t, f)
	c.stop(f)
	want = c.apply(leader, want, applied, applied+more)
	applied += more
	require.NoError(t, leader.raft.Snapshot().Error())
	lFirst, _ := checkStore(t, leader)
	require.Greater(t, lFirst, fLast+1, "the leader compacted past the follower's log")

	// It comes back from its directory and catches up through a snapshot:
	// raft empties its store and restarts the log after the snapshot.
	c.start(f)
	c.converge(want, 20*time.Second)
	require.Positive(t, f.fsm.restores.Load(), "the follower installed a snapshot from the leader")

	// The leader goes down; another is elected and takes more commands.
	old := leader
	c.stop(old)
	leader = c.leader(10 * time.Second)
	want = c.apply(leader, want, applied, applied+more)
	applied += more

	// The old leader comes back from its directory as a follower.
	c.start(old)
	c.converge(want, 20*time.Second)
	want = c.apply(leader, want, applied, applied+more)
	applied += more
	c.converge(want, 20*time.Second)

	for _, n := range c.nodes {
		first, last := checkStore(t, n)
		term, err := n.store.GetUint64([]byte("CurrentTerm"))
		require.NoError(t, err)
		require.Positive(t, term)
		t.Logf("%s: log %d-%d, term %d, %d commands applied, %d snapshots installed",
			n.id, first, last, term, n.fsm.state().Count, n.fsm.restores.Load())
	}
	require.Equal(t, uint64(applied), want.Count)
	fFirst, _ := checkStore(t, f)
	require.Greater(t, fFirst, fLast+1, "the follower's log restarted past its old end")
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
