package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

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

// findingsStatus is the exit status for findings: 1 when any is a warning
// or worse.
func findingsStatus(fs []diag.Finding) int {
	if diag.Worst(fs) >= diag.Warn {
		return exitFindings
	}
	return exitOK
}

// fail prints an error of a subcommand and returns exitFindings.
func fail(stderr io.Writer, name string, err error) int {
	if strings.HasPrefix(err.Error(), name+":") {
		fmt.Fprintf(stderr, "rstpool %v\n", err)
		return exitFindings
	}
	fmt.Fprintf(stderr, "rstpool %s: %v\n", name, err)
	return exitFindings
}
