package main

import (
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every port out of range gets the same message, a usage error.
func TestPortOutOfRange(t *testing.T) {
	for _, cmd := range []string{"doctor", "watch"} {
		for _, p := range []string{"-1", "0", "70000", "99999999999999999999"} {
			st, out, errOut := runCmd(cmd, "--port", p)
			require.Equal(t, exitUsage, st, "%s --port %s: %s", cmd, p, errOut)
			require.Empty(t, out)
			require.Equal(t, "rstpool "+cmd+": --port "+p+": must be between 1 and 65535\n(run \"rstpool help "+cmd+"\" for the flags)\n", errOut)
		}
	}
}

// flagLine is a flag in a usage's list: its name and the kind of value it
// takes (none for a bool).
var flagLine = regexp.MustCompile(`(?m)^  -(\S+)(?: (\S+))?$`)

// Every numeric, duration, port or bool flag of every subcommand refuses a
// value that does not parse: exit status 2, one line naming the flag and
// the hint, nothing on stdout. (Values out of range are each command's
// own tests.)
func TestEveryFlagRefusesAValueThatDoesNotParse(t *testing.T) {
	tried := 0
	for name := range commands {
		_, _, usage := runCmd(name, "-h")
		for _, m := range flagLine.FindAllStringSubmatch(usage, -1) {
			flag, kind := m[1], m[2]
			var arg string
			switch kind {
			case "", "int", "uint", "float", "duration", "port":
				arg = "--" + flag + "=x" // "=" so that a bool takes it
			default:
				continue // strings, files, hops: their values are checked by meaning
			}
			tried++
			st, out, errOut := runCmd(name, arg)
			require.Equal(t, exitUsage, st, "%s %s: %s", name, arg, errOut)
			require.Empty(t, out, "%s %s", name, arg)
			require.Regexp(t, `^rstpool `+name+`: invalid (boolean )?value "x" for (flag )?-`+flag+`: `, errOut, arg)
			require.Len(t, strings.Split(strings.TrimSuffix(errOut, "\n"), "\n"), 2, "%s %s: %s", name, arg, errOut)
		}
	}
	require.Greater(t, tried, 25, "the flags were found in the usages")
}

// The process exits with the status run returns: 2 for a usage error.
// ("go run" turns every non-zero status into 1, and prints the real one.)
func TestExitStatusOfTheProcess(t *testing.T) {
	bin := builtCommand(t)
	for _, args := range [][]string{
		{"demo", "--requests", "-5"},
		{"doctor", "--port", "-1"},
		{"version", "extra"},
		{"nope"},
	} {
		err := exec.Command(bin, args...).Run()
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "%v: %v", args, err)
		require.Equal(t, exitUsage, ee.ExitCode(), args)
	}
}
