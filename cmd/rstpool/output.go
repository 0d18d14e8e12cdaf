package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rstpool/rstpool/internal/diag"
)

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFindings
	}
	return exitOK
}

// ms is a duration as whole milliseconds, the unit of every duration in
// the JSON output; zero or negative (none, off) is 0.
func ms(d time.Duration) int64 { return max(d.Milliseconds(), 0) }

// findingsStatus is the exit status for findings: 1 when any is a warning
// or worse.
func findingsStatus(fs []diag.Finding) int {
	if diag.Worst(fs) >= diag.Warn {
		return exitFindings
	}
	return exitOK
}

// fail prints an error of a subcommand on one line, with one "rstpool"
// prefix, and returns exitFindings.
func fail(stderr io.Writer, name string, err error) int {
	msg := strings.TrimPrefix(err.Error(), "rstpool: ")
	msg = strings.TrimPrefix(msg, name+": ")
	fmt.Fprintf(stderr, "rstpool %s: %s\n", name, msg)
	return exitFindings
}
