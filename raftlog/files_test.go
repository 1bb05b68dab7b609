package raftlog

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []meta{
		{runs: []run{{index: 1, lsn: 1}}},
		{runs: []run{{index: 1 << 40, lsn: 7}}},
		{runs: []run{{index: 5, lsn: 1}, {index: 10, lsn: 20}, {index: 11, lsn: 21}}},
	} {
		got, err := decodeMeta(m.encode())
		require.NoError(t, err)
		require.Equal(t, m, got)
	}
}

// FuzzDecodeMeta: any input fails cleanly or decodes to a mapping that
// encodes back to exactly the input and keeps the invariants Store relies
// on.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(meta{runs: []run{{index: 1, lsn: 1}}}.encode())
	f.Add(meta{runs: []run{{index: 5, lsn: 1}, {index: 10, lsn: 20}}}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		require.Equal(t, b, m.encode())
		for i := 1; i < len(m.runs); i++ {
			p, r := m.runs[i-1], m.runs[i]
			require.Greater(t, r.index, p.index)
			require.GreaterOrEqual(t, r.lsn-p.lsn, r.index-p.index)
		}
		for lsn := range uint64(3) {
			first, last, ok := m.bounds(m.runs[len(m.runs)-1].lsn + lsn - 1)
			if ok {
				require.LessOrEqual(t, first, last+1)
			}
		}
	})
}
