// Package raftlogbench compares ringwal's raftlog store with the log stores
// hashicorp/raft users have today: hashicorp/raft-wal and raft-boltdb. It is
// a module of its own so that users of ringwal never download those.
//
// Run it from this directory:
//
//	GOFLAGS=-ldflags=-checklinkname=0 go test -run '^$' -bench StoreLogs -benchtime 2s
//
// Each store runs with its defaults, in a fresh temporary directory on the
// file system of os.TempDir (set TMPDIR to measure another disk), one
// StoreLogs call at a time, as raft makes them, after 2 s to settle once
// opened (not timed). Every store syncs each call to disk before it returns.
package raftlogbench
