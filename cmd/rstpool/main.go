// Command rstpool diagnoses why connections get reset: it audits a
// client's timeouts against the path, probes a path's idle timeout,
// inspects this host's TCP state and watches resets on the wire.
//
// Run "rstpool help" for the list of subcommands and "rstpool CMD -h" for
// the usage of one.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// Exit statuses shared by the subcommands.
const (
	exitOK       = 0 // ran, nothing wrong
	exitFindings = 1 // ran, found something wrong (or failed)
	exitUsage    = 2 // bad command line
)

// A command is one subcommand. Each subcommand's file registers itself in
// init, so adding one does not touch this file.
type command struct {
	Summary string // one line for "rstpool help"
	// Run executes the subcommand with the arguments after its name and
	// returns the exit status.
	Run func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

// register adds a subcommand; registering a name twice is a programming
// error.
func register(name string, c command) {
	if _, dup := commands[name]; dup {
		panic("rstpool: subcommand registered twice: " + name)
	}
	commands[name] = c
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return helpFor(args[1], stdout, stderr)
		}
		usage(stdout)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "rstpool: unknown command %q (run \"rstpool help\" for the list)\n", args[0])
		return exitUsage
	}
	return c.Run(args[1:], stdout, stderr)
}

func helpFor(name string, stdout, stderr io.Writer) int {
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "rstpool: unknown command %q (run \"rstpool help\" for the list)\n", name)
		return exitUsage
	}
	c.Run([]string{"-h"}, stdout, stdout)
	return exitOK
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "rstpool: find and explain connection resets.\n\nUsage: rstpool COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].Summary)
	}
	fmt.Fprintln(w, "  help     show this list, or \"help COMMAND\" for one command's flags")
}

// newFlags returns a flag set that writes its usage to stderr, headed by
// the subcommand's usage line and description.
func newFlags(name, synopsis, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: rstpool %s %s\n\n%s\n\nFlags:\n", name, synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// usageError prints a one-line usage error of a subcommand, naming the
// flag or argument at fault, and returns exitUsage. Every subcommand
// validates its whole command line with it before doing any work:
//
//	rstpool demo: --requests -5: must be at least 1
//	(run "rstpool help demo" for the flags)
func usageError(stderr io.Writer, name, format string, args ...any) int {
	fmt.Fprintf(stderr, "rstpool %s: %s\n(run \"rstpool help %s\" for the flags)\n", name, fmt.Sprintf(format, args...), name)
	return exitUsage
}

// parseFlags parses args and returns the exit status to use when parsing
// ended the command: exitOK for -h (which prints the usage), exitUsage for
// an error (one line naming the flag, no usage dump), -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string) int {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return exitOK
	case err != nil:
		return usageError(out, fs.Name(), "%v", err)
	}
	return -1
}
