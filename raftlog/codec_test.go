package raftlog

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

func TestCodecRoundTrip(t *testing.T) {
	cases := []raft.Log{
		{},
		{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("x")},
		{Index: 1 << 63, Term: 1<<64 - 1, Type: raft.LogConfiguration, Data: bytes.Repeat([]byte{0xab}, 5000),
			Extensions: []byte("ext"), AppendedAt: time.Date(2025, 11, 26, 13, 0, 0, 123456789, time.UTC)},
		{Index: 9, Term: 2, Type: raft.LogBarrier, Extensions: []byte{0}},
		{Index: 10, AppendedAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		{Index: 11, AppendedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
	}
	for _, want := range cases {
		b, err := AppendLog([]byte("prefix"), &want)
		require.NoError(t, err)
		require.Equal(t, "prefix", string(b[:6]))
		require.Len(t, b[6:], EncodedSize(&want))
		var got raft.Log
		require.NoError(t, DecodeLog(b[6:], &got))
		require.Equal(t, want, got)
	}
	// A local time reads back as the same instant, in UTC.
	local := time.Date(2024, 2, 29, 12, 0, 0, 5, time.FixedZone("X", 3600))
	b, _ := AppendLog(nil, &raft.Log{AppendedAt: local})
	var got raft.Log
	require.NoError(t, DecodeLog(b, &got))
	require.True(t, local.Equal(got.AppendedAt))
}

// The layout of version 1, byte by byte, as documented in doc.go.
func TestCodecLayout(t *testing.T) {
	l := raft.Log{Index: 0x0102, Term: 0x03, Type: raft.LogNoop, Data: []byte("DA"), Extensions: []byte("E"),
		AppendedAt: time.Unix(0x0a0b, 0x0c0d).UTC()}
	b, err := AppendLog(nil, &l)
	require.NoError(t, err)
	want := []byte{
		1,                            // version
		byte(raft.LogNoop),           // type
		0x02, 0x01, 0, 0, 0, 0, 0, 0, // index
		0x03, 0, 0, 0, 0, 0, 0, 0, // term
		0x0b, 0x0a, 0, 0, 0, 0, 0, 0, // seconds
		0x0d, 0x0c, 0, 0, // nanoseconds
		2, 0, 0, 0, // data length
		1, 0, 0, 0, // extensions length
		'D', 'A', 'E',
	}
	require.Equal(t, want, b)
}

func TestCodecErrors(t *testing.T) {
	good, err := AppendLog(nil, &raft.Log{Index: 5, Term: 1, Data: []byte("data"), Extensions: []byte("ext")})
	require.NoError(t, err)
	cases := []struct {
		name   string
		mutate func(b []byte) []byte
		want   error
	}{
		{"empty", func(b []byte) []byte { return nil }, ErrCorrupt},
		{"version 0", func(b []byte) []byte { b[0] = 0; return b }, ErrUnsupportedVersion},
		{"version 2", func(b []byte) []byte { b[0] = 2; return b }, ErrUnsupportedVersion},
		{"header cut", func(b []byte) []byte { return b[:entryHdrSize-1] }, ErrCorrupt},
		{"payload cut", func(b []byte) []byte { return b[:len(b)-1] }, ErrCorrupt},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, ErrCorrupt},
		{"data length too long", func(b []byte) []byte { b[offDataLen]++; return b }, ErrCorrupt},
		{"extensions length huge", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[offExtLen:], 1<<32-1)
			return b
		}, ErrCorrupt},
		{"nanoseconds out of range", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[offNsec:], 1e9)
			return b
		}, ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var l raft.Log
			err := DecodeLog(tc.mutate(bytes.Clone(good)), &l)
			require.ErrorIs(t, err, tc.want)
			t.Log(err)
		})
	}
}

// FuzzDecodeLog: any input either fails cleanly or decodes to an entry that
// encodes back to exactly the input.
func FuzzDecodeLog(f *testing.F) {
	for _, l := range makeLogs(1, 4, 3) {
		b, _ := AppendLog(nil, l)
		f.Add(b)
	}
	f.Add([]byte{1})
	f.Add(make([]byte, entryHdrSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		if err := DecodeLog(b, &l); err != nil {
			return
		}
		again, err := AppendLog(nil, &l)
		require.NoError(t, err)
		require.Equal(t, b, again)
	})
}
