package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The demo's JSON document, every field: decoded with
// DisallowUnknownFields, and checked key for key against the document.
type demoJSON struct {
	Requests     int     `json:"requests"`
	Seed         int64   `json:"seed"`
	Concurrency  int     `json:"concurrency"`
	Chain        string  `json:"chain"`
	LBIdleMs     float64 `json:"lb_idle_ms"`
	ServerIdleMs float64 `json:"server_idle_ms"`
	Faults       struct {
		Reap            bool    `json:"reap"`
		ResetRate       float64 `json:"reset_rate"`
		ResetAfterBytes int64   `json:"reset_after_bytes"`
		RestartEveryMs  float64 `json:"restart_every_ms"`
		RestartDownMs   float64 `json:"restart_down_ms"`
	} `json:"faults"`
	IdleGapsMs float64          `json:"idle_gaps_ms"`
	Clients    []demoClientJSON `json:"clients"`
	Databases  []struct {
		Name    string           `json:"name"`
		Client  string           `json:"client"`
		Addr    string           `json:"addr"`
		Skipped string           `json:"skipped"`
		Clients []demoClientJSON `json:"clients"`
	} `json:"databases"`
	ElapsedMs float64 `json:"elapsed_ms"`
}

type demoClientJSON struct {
	Name                string         `json:"name"`
	About               string         `json:"about"`
	IdleTimeoutMs       float64        `json:"idle_timeout_ms"`
	Audit               string         `json:"audit"`
	AuditOK             bool           `json:"audit_ok"`
	Requests            int            `json:"requests"`
	Sent                int            `json:"sent"`
	OK                  int            `json:"ok"`
	Errors              int            `json:"errors"`
	ErrorsByClass       map[string]int `json:"errors_by_class"`
	ErrorsByKind        map[string]int `json:"errors_by_kind"`
	IdempotentErrors    int            `json:"idempotent_errors"`
	NonIdempotentErrors int            `json:"non_idempotent_errors"`
	Retries             int            `json:"retries"`
	Duplicates          int            `json:"duplicates"`
	Server              struct {
		Arrivals   int `json:"arrivals"`
		Distinct   int `json:"distinct"`
		Duplicates int `json:"duplicates"`
		Replays    int `json:"replays"`
	} `json:"server"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	Proxy struct {
		Accepted          int64 `json:"accepted"`
		ReapedReset       int64 `json:"reaped_reset"`
		MidTransferResets int64 `json:"mid_transfer_resets"`
		Restarts          int64 `json:"restarts"`
		FlowsReset        int64 `json:"flows_reset"`
	} `json:"proxy"`
	ElapsedMs      float64          `json:"elapsed_ms"`
	TransportStats map[string]int64 `json:"transport_stats"`
}

// decodeStrict decodes the document into v, refusing unknown keys, and
// requires every key to be snake_case and every field of v to be present.
func decodeStrict(t *testing.T, doc []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), string(doc))
	require.False(t, dec.More(), "one document")
	var generic any
	require.NoError(t, json.Unmarshal(doc, &generic))
	requireKeys(t, "", generic, reflect.TypeOf(v).Elem())
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// requireKeys walks a decoded document beside the Go type it decodes
// into: every key is snake_case and every struct field is present.
func requireKeys(t *testing.T, path string, doc any, typ reflect.Type) {
	t.Helper()
	switch v := doc.(type) {
	case map[string]any:
		for k := range v {
			require.Regexp(t, snakeCase, k, path)
		}
		switch typ.Kind() {
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				key := strings.Split(f.Tag.Get("json"), ",")[0]
				require.Contains(t, v, key, path)
				requireKeys(t, path+"."+key, v[key], f.Type)
			}
		case reflect.Map:
			for k, e := range v {
				requireKeys(t, path+"."+k, e, typ.Elem())
			}
		}
	case []any:
		for _, e := range v {
			requireKeys(t, path+"[]", e, typ.Elem())
		}
	}
}

func TestDemoJSON(t *testing.T) {
	// Restarts are off: a restart may reset a request on a fresh
	// connection, which no client can retry safely (internal/demo tests
	// restarts). Idle reaping and mid-transfer resets remain.
	out := filepath.Join(t.TempDir(), "demo.json")
	st, stdout, errOut := runCmd("demo", "--requests", "150", "--lb-idle", "300ms", "--restart-every", "0",
		"--seed", "5", "--with", "postgres,mysql,redis", "--json", "--json-out", out)
	require.Equal(t, exitOK, st, errOut)
	require.Contains(t, errOut, "rstpool 150/150")
	saved, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, stdout, string(saved))

	var rep demoJSON
	decodeStrict(t, []byte(stdout), &rep)
	require.Equal(t, 150, rep.Requests)
	require.Equal(t, "lb=300ms → server=1.5s", rep.Chain)
	require.EqualValues(t, 300, rep.LBIdleMs)
	require.EqualValues(t, 1500, rep.ServerIdleMs)
	require.Zero(t, rep.Faults.RestartEveryMs)
	require.Positive(t, rep.IdleGapsMs)
	require.Len(t, rep.Clients, 2)
	requireDemoClients(t, "http", rep.Clients)
	stock, rp := rep.Clients[0], rep.Clients[1]
	require.EqualValues(t, 90_000, stock.IdleTimeoutMs, "net/http's IdleConnTimeout")
	require.False(t, stock.AuditOK)
	require.Contains(t, stock.Audit, "lb 300ms")
	require.True(t, rp.AuditOK)
	require.Positive(t, stock.Proxy.ReapedReset+stock.Proxy.MidTransferResets)
	require.Zero(t, stock.Proxy.Restarts)

	require.Len(t, rep.Databases, 3)
	for _, db := range rep.Databases {
		if db.Skipped != "" {
			require.Empty(t, db.Clients, db.Name)
			require.Contains(t, db.Skipped, "start it", db.Name)
			continue
		}
		requireDemoClients(t, db.Name, db.Clients)
	}
}

// requireDemoClients checks the stock and rstpool columns of one leg.
func requireDemoClients(t *testing.T, leg string, cs []demoClientJSON) {
	t.Helper()
	require.Len(t, cs, 2, leg)
	require.Equal(t, "stock", cs[0].Name, leg)
	require.Equal(t, "rstpool", cs[1].Name, leg)
	for _, c := range cs {
		require.Equal(t, 150, c.Sent, leg, c.Name)
		require.Equal(t, c.Sent, c.OK+c.Errors, leg, c.Name)
		require.Equal(t, c.Errors, c.IdempotentErrors+c.NonIdempotentErrors, leg, c.Name)
		sum := 0
		for _, n := range c.ErrorsByClass {
			sum += n
		}
		require.Equal(t, c.Errors, sum, leg, c.Name)
		require.Positive(t, c.P50Ms, leg, c.Name)
		require.LessOrEqual(t, c.P99Ms, c.MaxMs, leg, c.Name)
		require.Positive(t, c.ElapsedMs, leg, c.Name)
	}
	require.Zero(t, cs[1].Duplicates, leg)
	require.LessOrEqual(t, cs[1].IdempotentErrors, cs[0].IdempotentErrors, leg)
}

func TestDemoTable(t *testing.T) {
	st, out, _ := runCmd("demo", "--requests", "40", "--lb-idle", "100ms", "--faults", "none")
	require.Equal(t, exitOK, st)
	require.Contains(t, out, "faults: none")
	require.Contains(t, out, "timeout chain audit:")
	require.Regexp(t, `errors surfaced +0 +0`, out)
	require.Contains(t, out, "what the rows count:")
	require.True(t, strings.HasSuffix(out, "\nverdict: rstpool surfaced as many idempotent errors as stock (0 vs 0); no POST ran twice.\n"), out)
}

// Every bad command line fails before any work, with exit status 2 and
// one line that names the flag, then the hint.
func TestDemoUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--requests", "-5"}, "--requests -5: must be between 1 and 1000000"},
		{[]string{"--requests", "0"}, "--requests 0: must be between 1 and 1000000"},
		{[]string{"--requests", "x"}, `invalid value "x" for flag -requests`},
		{[]string{"--duration", "0s"}, "--duration 0s: must be positive"},
		{[]string{"--concurrency", "0"}, "--concurrency 0: must be between 1 and 256"},
		{[]string{"--lb-idle", "1ms"}, "--lb-idle 1ms: must be at least 10ms"},
		{[]string{"--server-idle", "0s"}, "--server-idle 0s: must be positive"},
		{[]string{"--long-gaps", "1.5"}, "--long-gaps 1.5: must be between 0 and 1"},
		{[]string{"--long-gaps", "NaN"}, "--long-gaps NaN: must be between 0 and 1"},
		{[]string{"--faults", "some"}, "--faults some: want default or none"},
		{[]string{"--reset-rate", "2"}, "--reset-rate 2: must be between 0 and 1"},
		{[]string{"--reset-after", "0"}, "--reset-after 0: must be at least 1"},
		{[]string{"--restart-every", "-1s"}, "--restart-every -1s: must be 0 (no restarts) or positive"},
		{[]string{"--restart-down", "0s"}, "--restart-down 0s: must be positive"},
		{[]string{"--with", "mysql,oracle"}, `invalid value "mysql,oracle" for flag -with: "oracle": want postgres, mysql, redis`},
		{[]string{"--with", "redis", "--with", "redis"}, `"redis" named twice`},
		{[]string{"--with", ""}, `"": want postgres, mysql, redis`},
		{[]string{"--json-out", filepath.Join(dir, "no", "x.json")}, "--json-out " + filepath.Join(dir, "no", "x.json") + ": cannot create a file in " + filepath.Join(dir, "no") + ": no such file or directory"},
		{[]string{"--json-out", dir}, "--json-out " + dir + ": is a directory"},
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
	} {
		st, out, errOut := runCmd(append([]string{"demo"}, c.args...)...)
		require.Equal(t, exitUsage, st, c.args)
		require.Empty(t, out, c.args)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		require.Len(t, lines, 2, "%v: %s", c.args, errOut)
		require.True(t, strings.HasPrefix(lines[0], "rstpool demo: "), lines[0])
		require.Contains(t, lines[0], c.want, c.args)
		require.Equal(t, `(run "rstpool help demo" for the flags)`, lines[1], c.args)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "no report file left behind")
}

func TestDemoHelpDocumentsJSON(t *testing.T) {
	st, out, _ := runCmd("help", "demo")
	require.Equal(t, exitOK, st)
	for _, s := range []string{"snake_case", "_ms", "idle_timeout_ms (0: none)", "errors_by_class", "RSTPOOL_REQUIRE_SERVICES=1", "--with"} {
		require.Contains(t, out, s)
	}
}
