package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringwal/ringwal/wal"
)

// TestBadInput: every bad input gets exit status 2, one line on stderr that
// says what is wrong, and nothing on stdout.
func TestBadInput(t *testing.T) {
	tmp := t.TempDir()
	empty := filepath.Join(tmp, "empty")
	require.NoError(t, os.Mkdir(empty, 0o755))
	notLog := filepath.Join(tmp, "notlog")
	require.NoError(t, os.Mkdir(notLog, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(notLog, "data.txt"), []byte("x"), 0o644))
	loop := filepath.Join(tmp, "loop")
	require.NoError(t, os.Symlink(loop, loop))
	fifo := filepath.Join(tmp, "fifo")
	require.NoError(t, unix.Mkfifo(fifo, 0o644))
	missing := filepath.Join(tmp, "missing")
	intact := testdataDir + "/intact"
	seg := intact + "/00000000000000000001.seg"

	locked := filepath.Join(tmp, "locked")
	require.NoError(t, os.CopyFS(locked, os.DirFS(intact)))
	unknown := filepath.Join(tmp, "unknown-version")
	require.NoError(t, os.CopyFS(unknown, os.DirFS(testdataDir+"/unknown-version")))
	w, err := wal.Open(locked, wal.Options{Backend: wal.BackendPwrite, SegmentSize: 64 << 10, MaxRecordSize: 4096})
	require.NoError(t, err)
	defer w.Close()

	for _, tc := range []struct {
		args []string
		want string // in the one stderr line
	}{
		// Missing, extra and unknown arguments.
		{[]string{}, "missing command, one of: bench, dump, ls, repair, stat, verify"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"ls"}, "missing DIR"},
		{[]string{"stat"}, "missing DIR"},
		{[]string{"dump"}, "missing PATH"},
		{[]string{"verify"}, "missing PATH"},
		{[]string{"repair"}, "missing DIR"},
		{[]string{"ls", intact, intact}, "one DIR expected, got 2"},
		{[]string{"dump", "--nope", intact}, "flag provided but not defined: -nope"},
		{[]string{"verify", "--json=maybe", intact}, "invalid boolean value"},
		{[]string{"ls", ""}, "empty DIR"},
		// Flags out of range.
		{[]string{"dump", "--payload", "octal", intact}, `--payload "octal"`},
		{[]string{"dump", "--format", "xml", intact}, `--format "xml"`},
		{[]string{"dump", "--from", "10", "--to", "5", intact}, "--from 10 is above --to 5"},
		{[]string{"dump", "--from", "-1", intact}, "invalid value"},
		{[]string{"verify", "--max-record-size", "0", intact}, "--max-record-size 0 out of range"},
		{[]string{"ls", "--max-record-size", "2000000000", intact}, "out of range"},
		// Paths.
		{[]string{"ls", missing}, missing + ": no such file or directory"},
		{[]string{"stat", missing}, "no such file or directory"},
		{[]string{"dump", missing}, "no such file or directory"},
		{[]string{"verify", missing}, "no such file or directory"},
		{[]string{"repair", missing}, "no such file or directory"},
		{[]string{"repair", "--dry-run", missing}, "no such file or directory"},
		{[]string{"ls", empty}, "empty directory, not a log"},
		{[]string{"verify", empty}, "empty directory, not a log"},
		{[]string{"repair", empty}, "empty directory, not a log"},
		{[]string{"ls", notLog}, "not a log directory: no segment files"},
		{[]string{"dump", notLog}, "not a log directory"},
		{[]string{"repair", notLog}, "not a log directory"},
		{[]string{"ls", seg}, "not a directory"},
		{[]string{"stat", seg}, "not a directory"},
		{[]string{"repair", seg}, "not a directory"},
		{[]string{"dump", testdataDir + "/foreign-file/notes.txt"}, "notes.txt: not a segment file"},
		{[]string{"verify", testdataDir + "/foreign-file/0000000000000000000a.seg"}, "not a segment file"},
		{[]string{"dump", filepath.Join(notLog, "data.txt")}, "not a segment file"},
		{[]string{"verify", loop}, "too many levels of symbolic links"},
		{[]string{"dump", fifo}, "not a regular file"},
		// A log a writer holds cannot be repaired (inspection needs no lock).
		{[]string{"repair", locked}, "locked by another process"},
		// An upgrade, not a repair.
		{[]string{"repair", unknown}, "unsupported format version 3"},
	} {
		r := runWalctl(tc.args...)
		assert.Equal(t, 2, r.code, "%v", tc.args)
		assert.Empty(t, r.stdout, "%v", tc.args)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "%v: one line: %q", tc.args, r.stderr)
		assert.True(t, strings.HasPrefix(r.stderr, "walctl"), "%v: %q", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.want, "%v", tc.args)
	}

	// Inspection of the locked log works: it takes no lock.
	for _, cmd := range []string{"ls", "stat", "verify"} {
		r := runWalctl(cmd, locked)
		assert.Equal(t, 0, r.code, "%s: %s", cmd, r.stderr)
	}
}

// TestHelpHasExamples: walctl help CMD and walctl CMD -h print the usage
// with examples on stdout, and exit 0.
func TestHelpHasExamples(t *testing.T) {
	for name := range commands {
		for _, args := range [][]string{{"help", name}, {name, "-h"}, {name, "--help"}, {name, "some/dir", "-h"}} {
			r := runWalctl(args...)
			assert.Equal(t, 0, r.code, "%v", args)
			assert.Empty(t, r.stderr, "%v", args)
			assert.Contains(t, r.stdout, "usage: walctl "+name, "%v", args)
			assert.Contains(t, r.stdout, "examples:\n", "%v", args)
			assert.Contains(t, r.stdout, "flags:\n", "%v", args)
		}
	}
	r := runWalctl("help")
	assert.Equal(t, 0, r.code)
	for name := range commands {
		assert.Contains(t, r.stdout, "  "+name+" ")
	}
}
