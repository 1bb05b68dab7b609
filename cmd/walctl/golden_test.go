package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Regenerate the expected output with
//
//	go test ./cmd/walctl -run TestGolden -update
//
// and review the diff: every file under testdata/golden is the output of one
// real command run against ../../testdata.
var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

const testdataDir = "../../testdata"

// variants lists the golden logs of ../../testdata (see its README).
func variants(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(testdataDir)
	require.NoError(t, err)
	var vs []string
	for _, e := range ents {
		if e.IsDir() {
			vs = append(vs, e.Name())
		}
	}
	require.NotEmpty(t, vs)
	return vs
}

type result struct {
	code           int
	stdout, stderr string
}

func runWalctl(args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (r result) golden(args []string) string {
	return fmt.Sprintf("$ walctl %s\nexit status %d\n-- stdout --\n%s-- stderr --\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
}

// stubProbe makes stat's io_uring line the same on every machine.
func stubProbe(t *testing.T, err error) {
	old := probeURing
	probeURing = func() error { return err }
	t.Cleanup(func() { probeURing = old })
}

type goldenCase struct {
	file string // under testdata/golden
	args []string
}

func goldenCases(t *testing.T) []goldenCase {
	var cs []goldenCase
	add := func(file string, args ...string) { cs = append(cs, goldenCase{file, args}) }
	for _, v := range variants(t) {
		dir := testdataDir + "/" + v
		add(v+"/ls.txt", "ls", dir)
		add(v+"/stat.txt", "stat", dir)
		add(v+"/verify.txt", "verify", dir)
		add(v+"/verify-json.txt", "verify", "--json", dir)
		add(v+"/dump.txt", "dump", "--payload", "none", "--from", "101", "--continue-on-corruption", dir)
		add(v+"/repair-dry-run.txt", "repair", "--dry-run", dir)
	}
	intact := testdataDir + "/intact"
	add("dump/text.txt", "dump", "--from", "65", "--to", "75", intact)
	add("dump/hex.txt", "dump", "--payload", "hex", "--from", "12", "--to", "14", intact)
	add("dump/base64-json.txt", "dump", "--format", "json", "--payload", "base64", "--from", "12", "--to", "14", intact)
	add("dump/json-none.txt", "dump", "--format", "json", "--payload", "none", "--to", "3", intact)
	add("dump/text-json.txt", "dump", "--format", "json", "--from", "236", intact)
	add("dump/flags-after-path.txt", "dump", intact, "--payload", "none", "--to", "2")
	add("dump/one-segment.txt", "dump", "--payload", "none", "--to", "155", intact+"/00000000000000000151.seg")
	add("dump/stop-at-damage.txt", "dump", "--payload", "none", "--from", "105", testdataDir+"/bitflip-payload")
	add("dump/continue-json.txt", "dump", "--format", "json", "--payload", "none", "--from", "108", "--to", "114", "--continue-on-corruption", testdataDir+"/lsn-gap")
	add("dump/incomplete-batch.txt", "dump", "--payload", "text", "--from", "236", testdataDir+"/incomplete-batch")
	add("dump/copy-under-other-name.txt", "dump", "--payload", "none", "--to", "3", testdataDir+"/foreign-file/0001.seg")
	add("verify/one-segment-torn.txt", "verify", testdataDir+"/torn-tail/00000000000000000151.seg")
	add("verify/one-segment-bad-magic.txt", "verify", testdataDir+"/bad-magic/00000000000000000071.seg")
	add("verify/one-segment-name-mismatch.txt", "verify", "--json", testdataDir+"/name-mismatch/00000000000000000072.seg")
	add("help/walctl.txt", "help")
	for _, c := range []string{"ls", "stat", "dump", "verify", "repair", "bench"} {
		add("help/"+c+".txt", "help", c)
		add("help/"+c+"-h.txt", c, "-h")
	}
	return cs
}

// TestGolden runs the real commands against every golden log and compares
// their exit status, stdout and stderr with testdata/golden.
func TestGolden(t *testing.T) {
	stubProbe(t, nil)
	seen := map[string]bool{}
	for _, c := range goldenCases(t) {
		t.Run(c.file, func(t *testing.T) {
			require.False(t, seen[c.file], "two cases write %s", c.file)
			seen[c.file] = true
			got := runWalctl(c.args...).golden(c.args)
			path := filepath.Join("testdata", "golden", c.file)
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run with -update to create it")
			assert.Equal(t, string(want), got)
		})
	}
	if *update {
		return
	}
	// No stale golden files: each belongs to a case.
	err := filepath.Walk(filepath.Join("testdata", "golden"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join("testdata", "golden"), p)
		assert.True(t, seen[filepath.ToSlash(rel)], "stale golden file %s (run with -update and delete it)", rel)
		return nil
	})
	require.NoError(t, err)
}

// TestExitStatus pins the exit status contract of verify and dump on every
// golden log, independently of the golden text.
func TestExitStatus(t *testing.T) {
	intact := map[string]bool{
		"intact": true, "torn-tail": true, "zeroed-tail": true, "foreign-file": true, "no-header": true,
		"stale-incarnation": true, "incomplete-batch": true, "pipelined-crash": true, "recycled": true,
		"padded": true, "padded-cut-padding": true,
	}
	for _, v := range variants(t) {
		want := 1
		if intact[v] {
			want = 0
		}
		r := runWalctl("verify", testdataDir+"/"+v)
		assert.Equal(t, want, r.code, "verify %s: %s", v, r.stdout)
		assert.Empty(t, r.stderr)
		r = runWalctl("dump", "--payload", "none", "--continue-on-corruption", testdataDir+"/"+v)
		assert.Equal(t, want, r.code, "dump %s", v)
		for _, cmd := range []string{"ls", "stat"} {
			r = runWalctl(cmd, testdataDir+"/"+v)
			assert.Equal(t, 0, r.code, "%s %s: %s", cmd, v, r.stderr)
		}
	}
}

func TestStatIOURingNotUsable(t *testing.T) {
	stubProbe(t, fmt.Errorf("ring: io_uring_setup(4): operation not permitted"))
	r := runWalctl("stat", testdataDir+"/intact")
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "io_uring:       not usable: ring: io_uring_setup(4): operation not permitted (the wal falls back to pwrite)\n")
}

// TestProgressBar runs verify as if stderr were a terminal and the log
// large: the bar goes to stderr and is cleared; stdout is unchanged.
func TestProgressBar(t *testing.T) {
	plain := runWalctl("verify", testdataDir+"/intact")
	oldTerm, oldMin := isTerminal, progressMinBytes
	t.Cleanup(func() { isTerminal, progressMinBytes = oldTerm, oldMin })
	isTerminal = func(io.Writer) bool { return true }
	progressMinBytes = 1
	r := runWalctl("verify", testdataDir+"/intact")
	assert.Equal(t, plain.stdout, r.stdout)
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stderr, "\rverify [")
	assert.Contains(t, r.stderr, "100% 192 KiB / 192 KiB")
	assert.True(t, strings.HasSuffix(r.stderr, "\r\033[K"), "the bar's line is cleared: %q", r.stderr)

	// A small log gets no bar, even on a terminal.
	progressMinBytes = 1 << 30
	r = runWalctl("verify", testdataDir+"/intact")
	assert.Empty(t, r.stderr)
}
