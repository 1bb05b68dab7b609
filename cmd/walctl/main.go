// Command walctl inspects and benchmarks ringwal logs.
//
//	walctl bench [flags]     run concurrent durable appends, then reopen and replay
//	walctl help [command]    show usage
//
// Every subcommand lives in its own file and writes to the writers it is
// given, so tests can run the real commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // shown by -h after the flags line
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// errUsage marks errors that are the caller's: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// errDamage is returned by inspection commands that found damage: exit 1.
var errDamage = errors.New("damage found")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes walctl with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				_ = c.run([]string{"-h"}, stdout, stdout)
				return 0
			}
		}
		printUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "walctl: unknown command %q (try walctl help)\n", args[0])
		return 2
	}
	err := c.run(args[1:], stdout, stderr)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errDamage):
		return 1
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "walctl %s: %v\n", c.name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "walctl %s: %v\n", c.name, err)
		return 2
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "walctl: inspect and benchmark ringwal logs")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: walctl <command> [flags] [args]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "walctl help <command> shows a command's flags and examples.")
}

// newFlagSet makes a flag set whose errors and help go to stderr.
func newFlagSet(c *command, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: walctl %s\n\n%s\n\nflags:\n", c.name, c.usage)
		fs.PrintDefaults()
	}
	return fs
}
