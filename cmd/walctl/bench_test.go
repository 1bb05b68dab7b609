package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringwal/ringwal/internal/fsys"
)

func TestBenchJSON(t *testing.T) {
	for _, be := range []string{"uring", "pwrite"} {
		t.Run(be, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{"bench", "--dir", t.TempDir(), "--writers", "4", "--size", "100", "--duration", "200ms", "--backend", be, "--json"}, &out, &errb)
			require.Equal(t, 0, code, errb.String())
			var res benchResult
			require.NoError(t, json.Unmarshal(out.Bytes(), &res))
			assert.Equal(t, be, res.Backend)
			assert.Positive(t, res.Records)
			assert.Equal(t, res.Records, res.ReplayRecords, "every acknowledged record replays")
			assert.Positive(t, res.P50us)
		})
	}
}

func TestBenchBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--writers", "0"},
		{"bench", "--size", "-1"},
		{"bench", "--duration", "1ms"},
		{"bench", "--backend", "fast"},
		{"bench", "--nope"},
		{"bench", "extra"},
		{"frobnicate"},
	} {
		var out, errb bytes.Buffer
		assert.Equal(t, 2, run(args, &out, &errb), "%v", args)
		assert.NotEmpty(t, errb.String(), "%v: one clear line", args)
	}
	var out, errb bytes.Buffer
	assert.Equal(t, 0, run([]string{"help", "bench"}, &out, &errb))
	assert.Contains(t, out.String(), "examples:")
}

// TestBenchCold: --cold replays a log whose pages were dropped from the page
// cache, --replay-huge-pages replays with ReplayHugePages, and every record
// still replays; the JSON says how the replay ran.
func TestBenchCold(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"bench", "--dir", t.TempDir(), "--writers", "4", "--size", "1000", "--duration", "300ms", "--backend", "pwrite", "--cold", "--replay-huge-pages", "--json"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	var res benchResult
	require.NoError(t, json.Unmarshal(out.Bytes(), &res))
	assert.True(t, res.ReplayCold)
	assert.True(t, res.ReplayHuge)
	assert.Positive(t, res.Records)
	assert.Equal(t, res.Records, res.ReplayRecords, "every acknowledged record replays")

	out.Reset()
	code = run([]string{"bench", "--dir", t.TempDir(), "--writers", "2", "--duration", "200ms", "--backend", "pwrite", "--cold"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	assert.Contains(t, out.String(), "replay from the disk:")
}

// TestDropCached: what --cold does leaves none of a file's pages cached.
func TestDropCached(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i)
	}
	require.NoError(t, os.WriteFile(path, data, 0o600))
	_, err := os.ReadFile(path)
	require.NoError(t, err)
	cached := func() float64 {
		f, err := os.Open(path)
		require.NoError(t, err)
		defer f.Close()
		frac, known := fsys.Cached(int(f.Fd()), 0, int64(len(data)))
		require.True(t, known, "cachestat(2) is missing (Linux 6.5 or later); CI runs on a kernel that has it")
		return frac
	}
	require.Greater(t, cached(), 0.9, "a file just written and read is in the page cache")
	require.NoError(t, dropCached(dir))
	assert.Less(t, cached(), 0.1)
}
