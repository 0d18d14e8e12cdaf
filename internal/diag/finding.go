// Package diag holds the logic behind the rstpool command's diagnostics:
// the timeout-chain audit, the idle-timeout probe, the host doctor and the
// RST watcher. The command only parses flags and prints what diag returns.
package diag

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Severity ranks a finding. The zero value is OK.
type Severity uint8

// Severities from harmless to broken.
const (
	OK   Severity = iota // nothing to do
	Info                 // worth knowing, no action needed
	Warn                 // likely to cause resets under some load or timing
	Crit                 // resets will happen
)

var severityNames = [...]string{"ok", "info", "warn", "crit"}

func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", uint8(s))
}

// MarshalText encodes the severity by name, so JSON output reads "warn".
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if n == string(b) {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("diag: unknown severity %q", b)
}

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
