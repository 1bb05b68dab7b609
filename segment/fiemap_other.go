//go:build !linux

package segment

import "io"

// extentDataEnd is Linux's FS_IOC_FIEMAP; elsewhere the caller reads.
func extentDataEnd(io.ReaderAt, int64, int64) (int64, bool) { return 0, false }
