package demo

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func pair(stockIdem, rpIdem, stockTwice, rpTwice int) []ClientResult {
	return []ClientResult{
		{Name: "stock", IdempotentErrors: stockIdem, Duplicates: stockTwice},
		{Name: "rstpool", IdempotentErrors: rpIdem, Duplicates: rpTwice},
	}
}

func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		rep  Report
		want string
	}{
		{Report{Clients: pair(9, 0, 0, 0)},
			"verdict: rstpool surfaced fewer idempotent errors than stock (0 vs 9); no POST ran twice."},
		{Report{Clients: pair(0, 0, 0, 0)},
			"verdict: rstpool surfaced as many idempotent errors as stock (0 vs 0); no POST ran twice."},
		{Report{Clients: pair(1, 2, 0, 1)},
			"verdict: rstpool surfaced more idempotent errors than stock (2 vs 1); POSTs that ran twice: rstpool http 1."},
		{Report{Clients: pair(9, 0, 0, 0), Databases: []DBResult{
			{Name: "postgres", Clients: pair(12, 0, 0, 0)},
			{Name: "mysql", Skipped: "not reachable"},
			{Name: "redis", Clients: pair(0, 0, 2, 0)},
		}}, "verdict: idempotent errors surfaced, rstpool vs stock: http 0 vs 9, postgres 0 vs 12, redis 0 vs 0 " +
			"(rstpool fewer in 2, as many in 1, more in 0); POSTs or writes that ran twice: stock redis 2."},
	} {
		require.Equal(t, c.want, Verdict(&c.rep))
	}
}

// The table says what its rows count, names classes as rstpool.Class does,
// points at the recipes and ends with the verdict.
func TestTableExplainsItself(t *testing.T) {
	rep := &Report{Requests: 10, Chain: "lb=600ms", Clients: []ClientResult{
		{Name: "stock", Requests: 10, Sent: 10, OK: 8, Errors: 2, IdempotentErrors: 2,
			ErrorsByClass: map[string]int{"peer_closed": 1, "broken_pipe": 1}, IdleTimeout: Ms(90 * time.Second)},
		{Name: "rstpool", Requests: 10, Sent: 10, OK: 10, ErrorsByClass: map[string]int{}},
	}, Databases: []DBResult{{Name: "redis", Skipped: "not reachable"}}}
	var b bytes.Buffer
	require.NoError(t, WriteTable(&b, rep))
	out := b.String()
	require.Regexp(t, `(?m)^  class peer-closed +1 +0$`, out)
	require.Regexp(t, `(?m)^  class broken-pipe +1 +0$`, out)
	require.NotContains(t, out, "peer_closed")
	for _, m := range meanings[httpLabels] {
		label := strings.Replace(m[0], "  class", "  class …", 1)
		require.Regexp(t, `(?m)^`+regexp.QuoteMeta(label)+` +`+regexp.QuoteMeta(m[1])+`$`, out, "a line per row")
	}
	require.Contains(t, out, "  http     "+HTTPRecipe+"\n")
	require.Contains(t, out, "database redis: not reachable")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Equal(t, Verdict(rep), lines[len(lines)-1], "the verdict is the last line")
}

// The README's sample output is what WriteTable prints today: the same
// rows, their meanings, the recipe, and a verdict that agrees with the
// sample's own counts.
func TestREADMESample(t *testing.T) {
	readme, err := os.ReadFile("../../../../README.md")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(readme), "go run ./cmd/rstpool demo\n```\n\n```\n")
	require.True(t, ok, "the README's demo sample")
	sample, _, _ := strings.Cut(after, "```")
	require.NotContains(t, sample, "peer_closed")

	// The table: from its header to the first blank line; a row's label
	// ends at the first run of two spaces after it began.
	_, table, _ := strings.Cut(sample, "stock     rstpool\n")
	table, _, _ = strings.Cut(table, "\n\n")
	label := regexp.MustCompile(`^( *\S.*?) {2,}\S`)
	var labels []string
	for _, line := range strings.Split(table, "\n") {
		m := label.FindStringSubmatch(line)
		require.NotNil(t, m, line)
		labels = append(labels, m[1])
	}
	rows := tableRows([]ClientResult{{ErrorsByClass: map[string]int{"reset": 1}}, {}}, httpLabels)
	var want []string
	for _, row := range rows[1:] {
		want = append(want, row[0])
	}
	require.Equal(t, want, labels, "the sample's rows")

	var b bytes.Buffer
	writeMeanings(&b, httpLabels, rows)
	require.Contains(t, sample, b.String(), "the rows' meanings")
	require.Contains(t, sample, "  http     "+HTTPRecipe+"\n")

	idem := regexp.MustCompile(`(?m)^  idempotent \(GET, PUT, POST\+key\) +(\d+) +(\d+)$`).FindStringSubmatch(sample)
	require.NotNil(t, idem)
	twice := regexp.MustCompile(`(?m)^POSTs the server saw twice +(\d+) +(\d+)$`).FindStringSubmatch(sample)
	require.NotNil(t, twice)
	n := func(s string) int { v, err := strconv.Atoi(s); require.NoError(t, err); return v }
	rep := &Report{Clients: pair(n(idem[1]), n(idem[2]), n(twice[1]), n(twice[2]))}
	require.True(t, strings.HasSuffix(sample, "\n"+Verdict(rep)+"\n"), "the sample ends with its verdict:\n%s", sample)
}
