package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// treeHash returns, for every entry under root, a hash of its contents with
// its size, mode and modification time: anything a command could change.
func treeHash(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h := sha256.New()
		fmt.Fprintf(h, "%v %d %d|", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		m[p] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	require.NoError(t, err)
	return m
}

// TestInspectionChangesNothing hashes every file of ../../testdata before
// and after each inspection command on each golden log (and on single
// segment files): nothing changes, nothing is created (not even a lock
// file).
func TestInspectionChangesNothing(t *testing.T) {
	stubProbe(t, nil)
	before := treeHash(t, testdataDir)
	var cmds [][]string
	for _, v := range variants(t) {
		dir := testdataDir + "/" + v
		cmds = append(cmds,
			[]string{"ls", dir},
			[]string{"stat", dir},
			[]string{"verify", dir},
			[]string{"verify", "--json", dir},
			[]string{"dump", dir},
			[]string{"dump", "--format", "json", "--payload", "base64", "--continue-on-corruption", dir},
			[]string{"repair", "--dry-run", dir},
		)
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range ents {
			cmds = append(cmds,
				[]string{"dump", "--payload", "hex", "--continue-on-corruption", dir + "/" + e.Name()},
				[]string{"verify", dir + "/" + e.Name()})
		}
	}
	for _, args := range cmds {
		r := runWalctl(args...)
		assert.Contains(t, []int{0, 1, 2}, r.code, "%v", args)
		after := treeHash(t, testdataDir)
		require.Equal(t, before, after, "walctl %v changed ../../testdata", args)
	}
	t.Logf("%d commands, ../../testdata unchanged", len(cmds))
}
