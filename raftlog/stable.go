package raftlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

// The StableStore half of Store. Raft keeps a handful of small keys here
// (CurrentTerm, LastVoteTerm, LastVoteCand) and changes them a few times per
// election, so the store keeps them in memory and replaces the whole STABLE
// file on every change (see the package documentation): one small write and
// two fsyncs, which is what raft-boltdb pays for its transaction, without a
// B-tree to keep. A write-ahead log of its own would only pay off for
// frequent writes.

// Set stores val under key. It does not return until the change is durable.
func (s *Store) Set(key, val []byte) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if old, ok := s.stable[string(key)]; ok && bytes.Equal(old, val) {
		return nil
	}
	kv := maps.Clone(s.stable)
	kv[string(key)] = slices.Clone(val)
	if err := replaceFile(s.dirf, s.dir, stableFileName, encodeStable(kv)); err != nil {
		return err
	}
	s.stable = kv
	return nil
}

// Get returns the value stored under key, or nil (and no error) when there
// is none.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.smu.Lock()
	defer s.smu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return slices.Clone(s.stable[string(key)]), nil
}

// SetUint64 stores val under key as 8 bytes, little-endian.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.LittleEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value SetUint64 stored under key, or 0 (and no error)
// when there is none.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil || v == nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raftlog: key %q holds %d bytes, not a uint64", key, len(v))
	}
	return binary.LittleEndian.Uint64(v), nil
}
