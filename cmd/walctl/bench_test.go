package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
