//go:build !linux

package segment

// Off Linux the reader does not ask for holes: the whence values differ
// (macOS swaps SEEK_DATA and SEEK_HOLE) or do not exist, and a wrong answer
// would hide written bytes. It reads the whole tail instead, which costs
// time only where a file has holes (the log zero-fills its segments there).
const (
	seekData  = -1
	seekHole  = -1
	seekHoles = false
)
