//go:build !linux

package main

// terminalFd reports false off Linux: walctl draws no progress bar there.
func terminalFd(fd int) bool { return false }
