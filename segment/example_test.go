package segment_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/ringwal/ringwal/segment"
)

// Write a segment file, then read it back.
func Example() {
	dir, err := os.MkdirTemp("", "segment-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	path := filepath.Join(dir, segment.FileName(1))
	w, err := segment.Create(path, segment.Header{Seq: 1, BaseLSN: 1, Size: 1 << 20, Salt: 0x5eed})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := w.Append([]byte("hello")); err != nil {
		log.Fatal(err)
	}
	if _, err := w.AppendBatch([]byte("all"), []byte("or nothing")); err != nil {
		log.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	r, err := segment.OpenReader(path, segment.ReaderOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("lsn %d at offset %d: %q batch continues: %v\n", rec.LSN, rec.Offset, rec.Payload, rec.BatchContinues())
	}
	fmt.Println("next frame at offset", r.Offset())
	// Output:
	// lsn 1 at offset 4096: "hello" batch continues: false
	// lsn 2 at offset 4125: "all" batch continues: true
	// lsn 3 at offset 4152: "or nothing" batch continues: false
	// next frame at offset 4186
}

// An Encoder lays frames into buffers that map to consecutive ranges of the
// segment file; a frame larger than what is left is split across buffers
// with AppendSplit and Continue.
func ExampleEncoder() {
	buf := make([]byte, 64)
	e := segment.NewEncoder(0x5eed, 0, 0)
	e.Reset(buf, segment.DataOffset, 1)

	lsn, off, err := e.Append([]byte("small"), 0, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("lsn %d at %d, %d bytes used\n", lsn, off, e.Len())

	_, _, err = e.Append(make([]byte, 100), lsn, 0)
	fmt.Println(err)

	lsn, off, err = e.AppendSplit(make([]byte, 100), lsn, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("lsn %d at %d, %d bytes pending\n", lsn, off, e.Pending())
	for e.Pending() > 0 {
		// Here the wal submits e.Bytes() for writing at
		// e.Offset()-len(e.Bytes()) and takes a fresh buffer.
		e.Continue(make([]byte, 64))
	}
	fmt.Printf("next frame at %d with lsn %d\n", e.Offset(), e.NextLSN())
	// Output:
	// lsn 1 at 4096, 29 bytes used
	// segment: buffer full
	// lsn 2 at 4125, 89 bytes pending
	// next frame at 4249 with lsn 3
}

// After a crash the last segment may end in a torn tail: zero it, then
// resume with a higher epoch.
func ExampleTornTailError() {
	dir, err := os.MkdirTemp("", "segment-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, segment.FileName(1))
	w, err := segment.Create(path, segment.Header{Seq: 1, BaseLSN: 1, Size: 1 << 20, Salt: 0x5eed})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range []string{"durable", "torn by a crash"} {
		if _, err := w.Append([]byte(p)); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	// Damage the second frame as a crash in the middle of its write would.
	if _, err := f.WriteAt([]byte{0xff}, segment.DataOffset+31+30); err != nil {
		log.Fatal(err)
	}

	r, err := segment.OpenReader(path, segment.ReaderOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	for {
		_, err = r.Next()
		if err != nil {
			break
		}
	}
	var torn *segment.TornTailError
	if !errors.As(err, &torn) {
		log.Fatal(err)
	}
	fmt.Printf("log ends at offset %d, lsn %d is lost; zero [%d,%d)\n", torn.Offset, torn.LSN, torn.Offset, torn.End)
	if err := segment.ZeroRange(f, torn.Offset, torn.End); err != nil {
		log.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		log.Fatal(err)
	}
	w2 := segment.ResumeWriter(f, r.Header(), segment.Position{Offset: torn.Offset, LSN: torn.LSN, Epoch: r.LastEpoch() + 1})
	lsn, err := w2.Append([]byte("after recovery"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("appended lsn", lsn, "with epoch", w2.Position().Epoch)
	// Output:
	// log ends at offset 4127, lsn 2 is lost; zero [4127,4166)
	// appended lsn 2 with epoch 1
}
