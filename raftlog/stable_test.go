package raftlog

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStable(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	defer func() { s.Close() }()

	// Missing keys: nil and 0, no error (raft.StableStore's contract).
	v, err := s.Get([]byte("CurrentTerm"))
	require.NoError(t, err)
	require.Nil(t, v)
	n, err := s.GetUint64([]byte("CurrentTerm"))
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoFileExists(t, filepath.Join(dir, stableFileName), "nothing written before the first Set")

	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 7))
	require.NoError(t, s.Set([]byte("LastVoteCand"), []byte("node-2")))
	require.NoError(t, s.SetUint64([]byte("LastVoteTerm"), 7))
	require.NoError(t, s.Set([]byte("empty"), []byte{}))
	require.NoError(t, s.Set([]byte(""), []byte("empty key")))
	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 8)) // overwrite
	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 8)) // unchanged

	for range 2 {
		n, err := s.GetUint64([]byte("CurrentTerm"))
		require.NoError(t, err)
		require.Equal(t, uint64(8), n)
		n, err = s.GetUint64([]byte("LastVoteTerm"))
		require.NoError(t, err)
		require.Equal(t, uint64(7), n)
		v, err := s.Get([]byte("LastVoteCand"))
		require.NoError(t, err)
		require.Equal(t, []byte("node-2"), v)
		v, err = s.Get([]byte("empty"))
		require.NoError(t, err)
		require.Equal(t, []byte{}, v, "an empty value is not a missing one")
		v, err = s.Get([]byte(""))
		require.NoError(t, err)
		require.Equal(t, []byte("empty key"), v)

		_, err = s.GetUint64([]byte("LastVoteCand"))
		require.ErrorContains(t, err, "not a uint64")
		s = reopen(t, s)
	}

	// The caller's slices are not kept, and Get returns a copy.
	val := []byte("abc")
	require.NoError(t, s.Set([]byte("k"), val))
	val[0] = 'x'
	v, _ = s.Get([]byte("k"))
	require.Equal(t, []byte("abc"), v)
	v[0] = 'y'
	v, _ = s.Get([]byte("k"))
	require.Equal(t, []byte("abc"), v)
}

func TestStableEncoding(t *testing.T) {
	kv := map[string][]byte{"a": {1}, "CurrentTerm": {8, 0, 0, 0, 0, 0, 0, 0}, "": {}}
	b := encodeStable(kv)
	got, err := decodeStable(b)
	require.NoError(t, err)
	require.Equal(t, kv, got)
	require.Equal(t, b, encodeStable(got), "the encoding is canonical")

	cases := []struct {
		name   string
		mutate func(b []byte) []byte
		want   error
	}{
		{"short", func(b []byte) []byte { return b[:10] }, ErrCorrupt},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }, ErrCorrupt},
		{"checksum", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, ErrCorrupt},
		{"payload", func(b []byte) []byte { b[20] ^= 1; return b }, ErrCorrupt},
		{"count too high", func(b []byte) []byte {
			b[12]++
			rechecksum(b[:len(b)-4], b[len(b)-4:])
			return b
		}, ErrCorrupt},
		{"count too low", func(b []byte) []byte {
			b[12]--
			rechecksum(b[:len(b)-4], b[len(b)-4:])
			return b
		}, ErrCorrupt},
		{"version", func(b []byte) []byte {
			b[8] = 9
			rechecksum(b[:len(b)-4], b[len(b)-4:])
			return b
		}, ErrUnsupportedVersion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeStable(tc.mutate(encodeStable(kv)))
			require.ErrorIs(t, err, tc.want)
			t.Log(err)
		})
	}
}

// A leftover STABLE.tmp (a crash during Set) is ignored and removed: the
// value before the interrupted Set stays.
func TestStableInterruptedSet(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 4))
	require.NoError(t, s.Close())
	torn := encodeStable(map[string][]byte{"CurrentTerm": {5, 0, 0, 0, 0, 0, 0, 0}})
	require.NoError(t, os.WriteFile(filepath.Join(dir, stableFileName+tempSuffix), torn[:len(torn)/2], 0o644))
	s = openTest(t, dir)
	defer s.Close()
	n, err := s.GetUint64([]byte("CurrentTerm"))
	require.NoError(t, err)
	require.Equal(t, uint64(4), n)
}
