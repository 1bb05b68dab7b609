package segment

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVerifyFrame(t *testing.T) {
	payload := []byte("random read")
	frame := AppendFrame(nil, testSalt, FrameHeader{LSN: 42, Lag: 1, Epoch: 3}, payload)
	fh, got, err := VerifyFrame(testSalt, frame)
	require.NoError(t, err)
	assert.Equal(t, payload, got)
	assert.Equal(t, uint64(42), fh.LSN)
	assert.Equal(t, uint16(3), fh.Epoch)

	for name, damage := range map[string]func(b []byte) []byte{
		"short":        func(b []byte) []byte { return b[:FrameHeaderSize-1] },
		"cut payload":  func(b []byte) []byte { return b[:len(b)-1] },
		"bad type":     func(b []byte) []byte { b[frmType] = 2; return b },
		"unknown flag": func(b []byte) []byte { b[frmFlags] = 4; return b },
		"payload bit":  func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"lsn bit":      func(b []byte) []byte { b[frmLSN] ^= 1; return b },
		"all zero":     func(b []byte) []byte { return make([]byte, len(b)) },
	} {
		_, _, err := VerifyFrame(testSalt, damage(append([]byte(nil), frame...)))
		require.ErrorIs(t, err, ErrCorrupt, name)
	}
	_, _, err = VerifyFrame(testSalt+1, frame)
	require.ErrorIs(t, err, ErrCorrupt, "another segment's salt")
	// A checksum-valid frame whose lag is impossible is not a frame either.
	for _, lag := range []uint32{0, 43} {
		bad := AppendFrame(nil, testSalt, FrameHeader{LSN: 42, Lag: lag}, payload)
		_, _, err = VerifyFrame(testSalt, bad)
		require.ErrorIs(t, err, ErrCorrupt, "lag %d", lag)
	}
}
