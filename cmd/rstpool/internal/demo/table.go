package demo

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// WriteTable prints the report as a side-by-side table, one column per
// client, with what each row means under it, then the timeout-chain audit
// of each client, then each database leg the same way, the recipes the
// rstpool columns follow, and last a one-line verdict.
func WriteTable(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "hostile path: %s; %d requests per client, seed %d, concurrency %d, idle gaps %s in all\n",
		r.Chain, r.Requests, r.Seed, r.Concurrency, r.IdleGaps)
	fmt.Fprintf(w, "faults: %s\n\n", r.Faults)
	rows := tableRows(r.Clients, httpLabels)
	writeRows(w, rows)
	writeMeanings(w, httpLabels, rows)
	fmt.Fprintln(w, "\ntimeout chain audit:")
	writeAudit(w, r.Clients)
	explained := false // the database rows are explained once
	for _, db := range r.Databases {
		writeDatabase(w, db, !explained)
		explained = explained || db.Skipped == ""
	}
	writeRecipes(w, r)
	fmt.Fprintf(w, "\n%s\n", Verdict(r))
	return nil
}

// writeAudit prints the idle limit of each client and its audit.
func writeAudit(w io.Writer, cs []ClientResult) {
	for _, c := range cs {
		idle := c.IdleTimeout.String()
		if c.IdleTimeout == 0 {
			idle = "none"
		}
		fmt.Fprintf(w, "  %-8s idle %-6s %s\n", c.Name, idle, c.Audit)
	}
}

// writeDatabase prints the table of a database leg, with what its rows
// mean when explain is set, or why it was skipped.
func writeDatabase(w io.Writer, db DBResult, explain bool) {
	if db.Skipped != "" {
		fmt.Fprintf(w, "\ndatabase %s: %s\n", db.Name, db.Skipped)
		return
	}
	fmt.Fprintf(w, "\ndatabase %s at %s (%s), each client through its own copy of the path; reads and counted writes:\n", db.Name, db.Addr, db.Client)
	for _, c := range db.Clients {
		fmt.Fprintf(w, "  %-8s %s\n", c.Name, c.About)
	}
	fmt.Fprintln(w)
	rows := tableRows(db.Clients, dbLabels)
	writeRows(w, rows)
	if explain {
		writeMeanings(w, dbLabels, rows)
	}
	fmt.Fprintln(w, "\ntimeout chain audit:")
	writeAudit(w, db.Clients)
}

// labels name the rows that differ between the HTTP and the database
// tables.
type labels struct{ idempotent, nonIdempotent, duplicates string }

var (
	httpLabels = labels{"  idempotent (GET, PUT, POST+key)", "  non-idempotent (POST)", "POSTs the server saw twice"}
	dbLabels   = labels{"  reads (idempotent)", "  writes (non-idempotent)", "writes the server applied twice"}
)

// meanings say what each row of a table counts, by row label; "  class"
// stands for every class row. The database tables explain only the rows
// that differ from the HTTP table's.
var meanings = map[labels][][2]string{
	httpLabels: {
		{"requests sent", "requests sent before the run ended, of those in the schedule"},
		{"ok", "requests answered by the server"},
		{"errors surfaced", "requests that failed and whose error reached the caller"},
		{httpLabels.idempotent, "of those, requests safe to send twice: each one an error a retry could have saved"},
		{httpLabels.nonIdempotent, "of those, POSTs without a key that may have reached the server: no client may resend them"},
		{"  class", "the error's class (rstpool.Classify)"},
		{"retries taken", "requests sent again on a new connection after the first failed (stock: net/http's own rule)"},
		{httpLabels.duplicates, "POSTs without a key the server ran twice: the harm a blind retry does; 0 is right"},
		{"p50 latency", "half the requests took at most this, retries included (p99: 99 in 100)"},
		{"proxy: idle flows reaped", "idle connections the load balancer forgot, reset when next used (or closed)"},
		{"proxy: mid-transfer resets", "connections the path reset halfway through a request"},
		{"proxy: restarts (flows reset)", "restarts of the load balancer, and the open connections each reset"},
	},
	dbLabels: {
		{dbLabels.idempotent, "of those, reads: safe to run twice"},
		{dbLabels.nonIdempotent, "of those, writes that may have been applied: rstpool never runs one twice"},
		{"retries taken", "calls that took a second attempt in rstpool.Retry or rstpgx.Retry (a driver's own retries are not seen)"},
		{dbLabels.duplicates, "writes the server applied twice: the harm a blind retry does; 0 is right"},
		{"(other rows)", "as in the HTTP table"},
	},
}

// writeMeanings prints what each row of the table means, aligned with the
// table's first column.
func writeMeanings(w io.Writer, l labels, rows [][]string) {
	width := 0
	for _, row := range rows {
		width = max(width, utf8.RuneCountInString(row[0]))
	}
	fmt.Fprintln(w, "\nwhat the rows count:")
	for _, m := range meanings[l] {
		label := m[0]
		if label == "  class" {
			label = "  class …"
		}
		fmt.Fprintf(w, "%-*s  %s\n", width, label, m[1])
	}
}

// HTTPRecipe is where the wiring of the HTTP leg's rstpool client is
// documented.
const HTTPRecipe = `rstpool.Transport with a declared Chain: README.md "Adopting it"; what it retries: README.md "What is retried"`

// writeRecipes prints where the wiring of each rstpool column is
// documented.
func writeRecipes(w io.Writer, r *Report) {
	fmt.Fprintln(w, "\nto do the same (the rstpool columns):")
	fmt.Fprintf(w, "  %-8s %s\n", "http", HTTPRecipe)
	for _, db := range r.Databases {
		if d, ok := lookupDatabase(db.Name); ok && db.Skipped == "" {
			fmt.Fprintf(w, "  %-8s %s\n", db.Name, d.Recipe)
		}
	}
}

// writeRows prints rows with the first column aligned left and the others
// right.
func writeRows(w io.Writer, rows [][]string) {
	widths := map[int]int{}
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		fmt.Fprintf(w, "%-*s", widths[0], row[0])
		for i, cell := range row[1:] {
			fmt.Fprintf(w, "  %*s", max(widths[i+1], 10), cell)
		}
		fmt.Fprintln(w)
	}
}

// String describes the fault mix in one line.
func (f FaultsReport) String() string {
	var parts []string
	if f.Reap {
		parts = append(parts, "lb reaps idle flows with RST")
	}
	if f.ResetRate > 0 {
		parts = append(parts, fmt.Sprintf("%g%% of flows reset after %d B", 100*f.ResetRate, f.ResetAfterBytes))
	}
	if f.RestartEvery > 0 {
		parts = append(parts, fmt.Sprintf("restart every ~%s (down %s)", f.RestartEvery, f.RestartDown))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// tableRows lays out the clients' results as rows of cells, with a header.
func tableRows(cs []ClientResult, l labels) [][]string {
	rows := [][]string{{""}}
	for _, c := range cs {
		rows[0] = append(rows[0], c.Name)
	}
	add := func(label string, cell func(ClientResult) string) {
		row := []string{label}
		for _, c := range cs {
			row = append(row, cell(c))
		}
		rows = append(rows, row)
	}
	add("requests sent", func(c ClientResult) string { return itoa(c.Sent) + "/" + itoa(c.Requests) })
	add("ok", func(c ClientResult) string { return itoa(c.OK) })
	add("errors surfaced", func(c ClientResult) string { return itoa(c.Errors) })
	add(l.idempotent, func(c ClientResult) string { return itoa(c.IdempotentErrors) })
	add(l.nonIdempotent, func(c ClientResult) string { return itoa(c.NonIdempotentErrors) })
	for _, class := range errorClasses(cs) {
		name := strings.ReplaceAll(class, "_", "-") // the class's own name, as every other surface prints it
		add("  class "+name, func(c ClientResult) string { return itoa(c.ErrorsByClass[class]) })
	}
	add("retries taken", func(c ClientResult) string { return itoa(c.Retries) })
	add(l.duplicates, func(c ClientResult) string { return itoa(c.Duplicates) })
	add("p50 latency", func(c ClientResult) string { return fmtMs(c.P50) })
	add("p99 latency", func(c ClientResult) string { return fmtMs(c.P99) })
	add("proxy: idle flows reaped", func(c ClientResult) string { return i64(c.Proxy.ReapedReset) })
	add("proxy: mid-transfer resets", func(c ClientResult) string { return i64(c.Proxy.MidTransferResets) })
	add("proxy: restarts (flows reset)", func(c ClientResult) string {
		return i64(c.Proxy.Restarts) + " (" + i64(c.Proxy.FlowsReset) + ")"
	})
	return rows
}

// errorClasses returns the classes of error any client surfaced, sorted.
func errorClasses(cs []ClientResult) []string {
	var out []string
	for _, c := range cs {
		for class := range c.ErrorsByClass {
			if !slices.Contains(out, class) {
				out = append(out, class)
			}
		}
	}
	slices.Sort(out)
	return out
}

func itoa(n int) string  { return strconv.Itoa(n) }
func i64(n int64) string { return strconv.FormatInt(n, 10) }
func fmtMs(d Ms) string  { return strconv.FormatFloat(ms(time.Duration(d)), 'f', 2, 64) + " ms" }
