package wal_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/ringwal/ringwal/wal"
)

// The README's API example.
func Example() {
	dir, _ := os.MkdirTemp("", "example-wal-")
	defer os.RemoveAll(dir)

	w, err := wal.Open(dir, wal.Options{}) // defaults: 64 MiB segments, io_uring if available
	if err != nil {
		log.Fatal(err)
	}
	lsn, err := w.Append([]byte("hello")) // returns once the record is durable
	if err != nil {
		log.Fatal(err)
	}
	first, err := w.AppendBatch([][]byte{[]byte("a"), []byte("b")}) // one atomic, durable unit
	if err != nil {
		log.Fatal(err)
	}
	data, _ := w.Read(lsn) // random read by LSN
	fmt.Printf("lsn %d: %s; batch starts at %d\n", lsn, data, first)

	r, _ := w.NewReader(w.FirstLSN()) // replay from any LSN
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d %s\n", rec.LSN, rec.Data) // Data is valid until the next Next: copy to keep
	}
	r.Close()

	_ = w.TruncateBack(2)  // drop records after LSN 2
	_ = w.TruncateFront(2) // drop whole segments below LSN 2
	fmt.Println("last:", w.LastLSN())
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// lsn 1: hello; batch starts at 2
	// 1 hello
	// 2 a
	// 3 b
	// last: 2
}
