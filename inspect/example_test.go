package inspect_test

import (
	"context"
	"fmt"

	"github.com/ringwal/ringwal/inspect"
)

// Check a log directory and print each problem as "segment:offset: reason".
func ExampleScan() {
	l, err := inspect.Scan(context.Background(), "../testdata/bitflip-payload", inspect.Options{})
	if err != nil {
		fmt.Println(err) // the path cannot be inspected, or an I/O error
		return
	}
	for _, p := range l.Problems {
		fmt.Println(p)
	}
	fmt.Printf("intact: %v, %d segments, %d records\n", l.Intact(), len(l.Segments), l.Records())
	// Output:
	// 00000000000000000071.seg:26349: checksum mismatch: stored 0x95efdd9a, computed 0xa84c7f52; acknowledged data follows: lsn 113 at offset 26834 was written after lsn 112 was durable; the atomic batch from lsn 110 at offset 25335 is incomplete
	// intact: false, 3 segments, 196 records
}

// Plan a repair without changing anything.
func ExampleRepair() {
	res, err := inspect.Repair(context.Background(), "../testdata/missing-middle-segment", inspect.RepairOptions{DryRun: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range res.Actions {
		fmt.Printf("%s %s -> %s\n", a.Kind, a.Segment, a.Backup)
	}
	fmt.Printf("keeps lsn %d-%d\n", res.FirstLSN, res.LastLSN)
	// Output:
	// set aside 00000000000000000151.seg -> 00000000000000000151.seg.broken
	// keeps lsn 1-70
}
