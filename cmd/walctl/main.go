// Command walctl inspects, checks, repairs and benchmarks ringwal logs.
//
//	walctl ls DIR            one row per segment, and totals
//	walctl stat DIR          totals, LSN range, bytes, and whether io_uring is usable
//	walctl dump PATH         one line per record (text or JSON lines)
//	walctl verify PATH       every check; problems as segment:offset: reason
//	walctl repair DIR        cut a torn tail, set damage aside; keeps a copy of all it removes
//	walctl bench [flags]     run concurrent durable appends, then reopen and replay
//	walctl help [command]    show usage with examples
//
// Inspection (ls, stat, dump, verify, repair --dry-run) is read-only and takes
// no lock, so it is safe on a live log. Exit status: 0 success, 1 damage
// found, 2 bad usage or an error that stopped the command.
//
// Every subcommand lives in its own file and writes to the writers it is
// given, so tests run the real commands; the work is done by the
// github.com/ringwal/ringwal/inspect package.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	// usage is shown by -h after "usage: walctl ": a synopsis line, a
	// description and examples.
	usage string
	run   func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// usageError marks errors that are the caller's: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// errDamage is returned by commands that found damage and already said so:
// exit 1, nothing more printed.
var errDamage = errors.New("damage found")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes walctl with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "walctl: missing command, one of: %s (walctl help shows usage)\n", strings.Join(commandNames(), ", "))
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			c, ok := commands[args[1]]
			if !ok {
				fmt.Fprintf(stderr, "walctl help: unknown command %q (try walctl help)\n", args[1])
				return 2
			}
			_ = c.run([]string{"-h"}, stdout, stdout)
			return 0
		}
		printUsage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "walctl: unknown command %q (try walctl help)\n", args[0])
		return 2
	}
	if wantsHelp(args[1:]) {
		// Asked for: to stdout, like walctl help CMD.
		_ = c.run([]string{"-h"}, stdout, stdout)
		return 0
	}
	err := c.run(args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errDamage):
		return 1
	default:
		// One line, whatever the error: usage, a bad path, I/O.
		msg := strings.ReplaceAll(err.Error(), "\n", "; ")
		fmt.Fprintf(stderr, "walctl %s: %s\n", c.name, msg)
		return 2
	}
}

// wantsHelp reports whether args ask for help (-h, -help, with one or two
// dashes) before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "--h", "-help", "--help":
			return true
		}
	}
	return false
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "walctl: inspect, check, repair and benchmark ringwal logs")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: walctl <command> [flags] [args]")
	fmt.Fprintln(w)
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Inspection (ls, stat, dump, verify, repair --dry-run) only reads and takes no")
	fmt.Fprintln(w, "lock: it is safe on a live log. Exit status: 0 success, 1 damage found,")
	fmt.Fprintln(w, "2 bad usage or an error that stopped the command.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "walctl help <command> (or walctl <command> -h) shows its flags and examples.")
}

// commandNames returns the names of the commands, sorted.
func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// newFlagSet makes a flag set for c. -h prints the command's usage, its
// examples and its flags to w. A parse error prints nothing: the command
// returns it and run reports it on one line.
func newFlagSet(c *command, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	failed := &countWriter{}
	fs.SetOutput(failed)
	fs.Usage = func() {
		if failed.n > 0 {
			return // flag already wrote the error: a parse error, not -h
		}
		fmt.Fprintf(w, "usage: walctl %s\n\nflags:\n", c.usage)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(failed)
	}
	return fs
}

// countWriter discards what is written and counts it.
type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }
