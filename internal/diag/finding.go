// Package diag holds the logic behind the rstpool command's diagnostics:
// the timeout-chain audit, the idle-timeout probe, the host doctor and the
// RST watcher. The command only parses flags and prints what diag returns.
package diag

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rstpool/rstpool/internal/pathrule"
)

// Severity ranks a finding: the path rule's own, so that the audit shows
// exactly what the library judges. The zero value is OK.
type Severity = pathrule.Severity

// Severities from harmless to broken.
const (
	OK   = pathrule.OK
	Info = pathrule.Info
	Warn = pathrule.Warn
	Crit = pathrule.Crit
)

// A Finding is one result of a diagnostic: what was checked, how bad it is,
// what was seen, and one line of advice.
type Finding struct {
	Severity Severity `json:"severity"`
	Check    string   `json:"check"`            // short identifier, e.g. "client-idle"
	Message  string   `json:"message"`          // what was found
	Advice   string   `json:"advice,omitempty"` // what to do about it; empty when nothing
}

func (f Finding) String() string {
	s := fmt.Sprintf("%-4s %-18s %s", f.Severity, f.Check, f.Message)
	if f.Advice != "" {
		s += "\n     " + strings.Repeat(" ", 18) + " → " + f.Advice
	}
	return s
}

// Worst returns the highest severity among findings, OK when there are none.
func Worst(findings []Finding) Severity {
	w := OK
	for _, f := range findings {
		w = max(w, f.Severity)
	}
	return w
}

// FormatFindings renders findings one per line (two with advice), in order.
func FormatFindings(findings []Finding) string {
	var b strings.Builder
	for _, f := range findings {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// MarshalFindings renders findings as indented JSON.
func MarshalFindings(findings []Finding) ([]byte, error) {
	if findings == nil {
		findings = []Finding{}
	}
	return json.MarshalIndent(findings, "", "  ")
}
