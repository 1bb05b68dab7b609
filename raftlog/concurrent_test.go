package raftlog

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// Readers race with a writer that appends, compacts, deletes suffixes and
// restarts the log, as raft's replication goroutines race with its main
// loop and its snapshots. A reader may see an entry or ErrLogNotFound, and
// any entry it sees carries the index it asked for, with the contents of
// some term that was stored there.
func TestConcurrentReadersAndWriter(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	storeRange(t, s, 1, 100, 10, 1)

	var stop atomic.Bool
	var reads, found atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var l raft.Log
			for i := uint64(0); !stop.Load(); i++ {
				first, err1 := s.FirstIndex()
				last, err2 := s.LastIndex()
				if err := errors.Join(err1, err2); err != nil {
					errc <- err
					return
				}
				if last < first {
					continue // a change between the two calls
				}
				idx := first + i%(last-first+1+2) // a little past the end too
				err := s.GetLog(idx, &l)
				reads.Add(1)
				switch {
				case err == raft.ErrLogNotFound:
				case err != nil:
					errc <- err
					return
				case l.Index != idx:
					errc <- errors.New("wrong entry")
					return
				default:
					want := makeLogs(idx, 1, l.Term)[0]
					if string(want.Data) != string(l.Data) {
						errc <- errors.New("wrong contents")
						return
					}
					found.Add(1)
				}
			}
		}()
	}

	term := uint64(1)
	deadline := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		switch {
		case i%10 == 9 && last-first > 50: // compaction
			require.NoError(t, s.DeleteRange(first, first+20))
		case i%10 == 5 && last-first > 10: // conflict
			require.NoError(t, s.DeleteRange(last-5, last))
			term++
			last -= 6
		case i%50 == 49: // snapshot install: everything goes, restart higher
			require.NoError(t, s.DeleteRange(first, last))
			last += 1000
		}
		storeRange(t, s, last+1, 8, 8, term)
	}
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
	t.Logf("%d reads, %d found", reads.Load(), found.Load())
	require.Positive(t, found.Load())
}
