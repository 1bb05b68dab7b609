package segment

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/klauspost/crc32"
)

// benchSizes are the payload sizes of the encode and decode benchmarks.
var benchSizes = []int{128, 1 << 10, 64 << 10}

// BenchmarkEncode lays frames into a 1 MiB buffer with an Encoder, as the wal
// fills its registered buffers.
func BenchmarkEncode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			payload := payloadFor(1, size, 0)
			buf := make([]byte, 1<<20)
			e := NewEncoder(testSalt, 0, 0)
			e.Reset(buf, DataOffset, 1)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				lsn := e.NextLSN()
				if _, _, err := e.Append(payload, lsn-1, 0); err == ErrBufferFull {
					e.Reset(buf, DataOffset, lsn)
					if _, _, err := e.Append(payload, lsn-1, 0); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkAppendFrame appends whole frames to a reused slice.
func BenchmarkAppendFrame(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			payload := payloadFor(1, size, 0)
			buf := make([]byte, 0, FrameSize(size))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			lsn := uint64(1)
			for b.Loop() {
				buf = AppendFrame(buf[:0], testSalt, FrameHeader{LSN: lsn, Lag: 1}, payload)
				lsn++
			}
		})
	}
}

// BenchmarkDecode reads records with Reader.Next from an 8 MiB segment held
// in memory behind an io.ReaderAt, starting over at the end.
func BenchmarkDecode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			f := &memFile{}
			h := testHeader()
			h.Size = 1 << 40
			w, err := NewWriter(f, h)
			if err != nil {
				b.Fatal(err)
			}
			payload := payloadFor(1, size, 0)
			for f.b == nil || len(f.b) < 8<<20 {
				if _, err := w.Append(payload); err != nil {
					b.Fatal(err)
				}
			}
			r, err := NewReader(bytes.NewReader(f.b), int64(len(f.b)), ReaderOptions{})
			if err != nil {
				b.Fatal(err)
			}
			start := Position{Offset: DataOffset, LSN: h.BaseLSN}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				rec, err := r.Next()
				if err == io.EOF {
					if err := r.Seek(start); err != nil {
						b.Fatal(err)
					}
					rec, err = r.Next()
				}
				if err != nil || len(rec.Payload) != size {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBaseline measures what encode and decode cannot beat: the
// checksum alone, and checksum plus one copy of the payload.
func BenchmarkBaseline(b *testing.B) {
	tab := crc32.MakeTable(crc32.Castagnoli)
	for _, size := range benchSizes {
		payload := payloadFor(1, size, 0)
		b.Run(fmt.Sprintf("crc32c/size=%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var sum uint32
			for b.Loop() {
				sum = crc32.Update(sum, tab, payload)
			}
		})
		b.Run(fmt.Sprintf("crc32c+copy/size=%d", size), func(b *testing.B) {
			dst := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var sum uint32
			for b.Loop() {
				copy(dst, payload)
				sum = crc32.Update(sum, tab, dst)
			}
		})
	}
}
