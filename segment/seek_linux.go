//go:build linux

package segment

// seekData and seekHole are lseek(2)'s SEEK_DATA and SEEK_HOLE on Linux.
const (
	seekData = 3
	seekHole = 4
)

// seekHoles says whether dataEnd asks the file where its holes are.
const seekHoles = true
