package demo

import (
	"bytes"
	"regexp"
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
