package main

import "golang.org/x/sys/unix"

// terminalFd reports whether fd is a terminal: it has terminal attributes.
func terminalFd(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}
