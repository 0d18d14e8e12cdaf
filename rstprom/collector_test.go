package rstprom_test

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/tally/drive"
	"github.com/rstpool/rstpool/rstprom"
)

// startDrive adds the drive's Transports and Pools to c and drives them.
func startDrive(t *testing.T, c *rstprom.Collector) *drive.Run {
	t.Helper()
	run := drive.Start(t, c.Observer())
	require.NoError(t, c.AddTransport("api", run.Transport))
	require.NoError(t, c.AddTransport("denying", run.Denying))
	require.NoError(t, c.AddPool("lines", run.Pool))
	require.NoError(t, c.AddPool("stingy", run.Stingy))
	run.Drive(t)
	return run
}

// A real Transport and Pool, driven into retries, retries denied, resets
// and a refusal surfaced, a learned idle limit, a retirement and a dead
// connection caught, scraped through promhttp: the event metrics count
// exactly the events the core reported, and the stats metrics are the
// getters' values.
func TestScrapeEndToEnd(t *testing.T) {
	c := rstprom.NewCollector(rstprom.Options{})
	url := serve(t, c)
	run := startDrive(t, c)
	got := scrape(t, url)

	require.Equal(t, expectEvents(run.Events()), only(got, eventNames...))
	stats := expectStats(run)
	require.Equal(t, stats, only(got, statNames(stats)...))

	// What the scenario makes happen, by design.
	http, lines := run.HTTPAddr, run.LineAddr
	for _, s := range []string{
		series("rstpool_errors_surfaced_total", "source", "transport", "destination", run.ClosedAddr, "class", "refused", "cause", "not-listening"),
		series("rstpool_retries_denied_total", "source", "transport", "destination", http, "reason", "idempotent"),
		series("rstpool_idle_limits_learned_total", "source", "transport", "destination", http),
		series("rstpool_conns_caught_dead_total", "source", "pool", "destination", lines, "reason", "peer-closed"),
		series("rstpool_conns_retired_total", "source", "pool", "destination", lines, "reason", "idle-limit"),
		series("rstpool_retries_total", "source", "pool", "destination", lines, "reason", "idempotent", "class", "reset"),
		series("rstpool_transport_retries_denied_total", "transport", "denying"),
		series("rstpool_pool_retries_total", "pool", "lines"),
		series("rstpool_pool_conns_closed_total", "pool", "lines", "reason", "idle-limit"),
	} {
		require.Equal(t, 1.0, got[s], s)
	}
	// The GET reset on every attempt: retried once (drive.Expected).
	require.Equal(t, float64(drive.Expected["transport retry"]),
		got[series("rstpool_retries_total", "source", "transport", "destination", http, "reason", "idempotent", "class", "reset")])
	learned := got[series("rstpool_transport_learned_idle_seconds", "transport", "api", "destination", http)]
	require.InDelta(t, 0.030, learned, 0.015, "¾ of the shortest gap after which the server had reaped a reused connection")
	require.Equal(t, 2.0, got[series("rstpool_errors_surfaced_total", "source", "pool", "destination", lines, "class", "reset", "cause", "peer-died")])

	// Events and stats agree where they count the same thing.
	require.Equal(t, got[series("rstpool_transport_retries_total", "transport", "api", "reason", "idempotent")],
		got[series("rstpool_retries_total", "source", "transport", "destination", http, "reason", "idempotent", "class", "reset")])
	require.Equal(t, got[series("rstpool_pool_conns_closed_total", "pool", "lines", "reason", "peer-closed")],
		got[series("rstpool_conns_caught_dead_total", "source", "pool", "destination", lines, "reason", "peer-closed")])
}

// The exposition itself, help and type lines included, for the metrics
// whose values the scenario fixes.
func TestScrapeAndCompare(t *testing.T) {
	c := rstprom.NewCollector(rstprom.Options{ConstLabels: map[string]string{"service": "checkout"}})
	url := serve(t, c)
	run := startDrive(t, c)
	want := fmt.Sprintf(`
# HELP rstpool_retries_denied_total Retries the retry rule allowed but the retry budget had no token for.
# TYPE rstpool_retries_denied_total counter
rstpool_retries_denied_total{destination=%[1]q,reason="idempotent",service="checkout",source="transport"} 1
rstpool_retries_denied_total{destination=%[2]q,reason="idempotent",service="checkout",source="pool"} 1
# HELP rstpool_transport_requests_total Calls to the Transport's RoundTrip.
# TYPE rstpool_transport_requests_total counter
rstpool_transport_requests_total{service="checkout",transport="api"} 6
rstpool_transport_requests_total{service="checkout",transport="denying"} 2
# HELP rstpool_pool_max_conns The Pool's MaxSize.
# TYPE rstpool_pool_max_conns gauge
rstpool_pool_max_conns{pool="lines",service="checkout"} 1
rstpool_pool_max_conns{pool="stingy",service="checkout"} 1
`, run.HTTPAddr, run.LineAddr)
	require.NoError(t, testutil.ScrapeAndCompare(url, strings.NewReader(want),
		"rstpool_retries_denied_total", "rstpool_transport_requests_total", "rstpool_pool_max_conns"))
}

// Every metric follows Prometheus's naming conventions.
func TestLint(t *testing.T) {
	c := rstprom.NewCollector(rstprom.Options{})
	run := startDrive(t, c)
	// The dial metrics too, whether or not the core reports dials yet.
	c.Observer()(rstpool.Event{Kind: rstpool.EventDial, Source: "dialer", Addr: run.HTTPAddr, Duration: time.Millisecond})
	c.Observer()(rstpool.Event{Kind: rstpool.EventUp, Source: "dialer", Addr: run.HTTPAddr, Duration: time.Second})
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	require.Empty(t, problems)
	require.Greater(t, testutil.CollectAndCount(c), 60)
}

// Past the cap, destinations are "other"; with the label off, no metric
// has it.
func TestDestinationLabelIsBounded(t *testing.T) {
	capped := rstprom.NewCollector(rstprom.Options{Destinations: 1})
	run := startDrive(t, capped)
	seen := map[string]bool{}
	for k := range scrape(t, serve(t, capped)) {
		if _, v, ok := strings.Cut(k, `destination="`); ok {
			v, _, _ = strings.Cut(v, `"`)
			seen[v] = true
		}
	}
	require.Equal(t, map[string]bool{run.HTTPAddr: true, "other": true}, seen)

	off := rstprom.NewCollector(rstprom.Options{Destinations: -1})
	startDrive(t, off)
	got := scrape(t, serve(t, off))
	require.NotEmpty(t, only(got, eventNames...))
	for k := range got {
		require.NotContains(t, k, "destination=", k)
	}
	require.Contains(t, got, series("rstpool_transport_learned_idle_seconds", "transport", "api"))
}

// Dials through an observed Dialer show in the dial histogram: one that
// connected (class none), one refused.
func TestDialHistogram(t *testing.T) {
	c := rstprom.NewCollector(rstprom.Options{})
	url := serve(t, c)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := closed.Addr().String()
	closed.Close()

	d := &rstpool.Dialer{RefusedRetry: -1, Observer: c.Observer()}
	conn, err := d.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	conn.Close()
	_, err = d.Dial("tcp", refused)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)

	got := scrape(t, url)
	if len(only(got, "rstpool_dial_duration_seconds_count")) == 0 {
		t.Skip("this rstpool does not report dials yet (EventDial)")
	}
	ok := series("rstpool_dial_duration_seconds_count", "source", "dialer", "destination", ln.Addr().String(), "class", "none")
	require.Equal(t, 1.0, got[ok])
	require.Equal(t, 1.0, got[series("rstpool_dial_duration_seconds_count", "source", "dialer", "destination", refused, "class", "refused")])
	require.Equal(t, 1.0, got[series("rstpool_dial_duration_seconds_bucket", "source", "dialer", "destination", ln.Addr().String(), "class", "none", "le", "30")])
}

// The dial, down and up events map to their metrics as documented. The
// core does not report them in every version this module builds with, so
// they are fed in here.
func TestDialerEventMetrics(t *testing.T) {
	c := rstprom.NewCollector(rstprom.Options{})
	o := c.Observer()
	const db = "db.example:5432"
	o(rstpool.Event{Kind: rstpool.EventDialRetry, Source: "dialer", Addr: db, Duration: 25 * time.Millisecond})
	o(rstpool.Event{Kind: rstpool.EventDial, Source: "dialer", Addr: db, Duration: 3 * time.Second, Class: rstpool.ClassRefused})
	o(rstpool.Event{Kind: rstpool.EventDown, Source: "dialer", Addr: db, Class: rstpool.ClassRefused})
	o(rstpool.Event{Kind: rstpool.EventUp, Source: "dialer", Addr: db, Duration: 1500 * time.Millisecond})
	o(rstpool.Event{Kind: rstpool.EventDial, Source: "dialer", Addr: db, Duration: 2 * time.Millisecond})
	o(rstpool.Event{Kind: rstpool.EventUntracked, Source: "sql", Addr: db})
	want := `
# HELP rstpool_dial_duration_seconds Time connects took, refused retries included, by class (none: connected); its count is the number of connects.
# TYPE rstpool_dial_duration_seconds histogram
rstpool_dial_duration_seconds_bucket{class="none",destination="db.example:5432",source="dialer",le="0.001"} 0
rstpool_dial_duration_seconds_bucket{class="none",destination="db.example:5432",source="dialer",le="0.005"} 1
rstpool_dial_duration_seconds_bucket{class="none",destination="db.example:5432",source="dialer",le="0.01"} 1
rstpool_dial_duration_seconds_bucket{class="none",destination="db.example:5432",source="dialer",le="0.05"} 1
rstpool_dial_duration_seconds_bucket{class="none",destination="db.example:5432",source="dialer",le="0.1"} 1
rstpool_dial_duration_seconds_bucket{class="none",destination="db.example:5432",source="dialer",le="0.5"} 1
rstpool_dial_duration_seconds_bucket{class="none",destination="db.example:5432",source="dialer",le="1"} 1
rstpool_dial_duration_seconds_bucket{class="none",destination="db.example:5432",source="dialer",le="3"} 1
rstpool_dial_duration_seconds_bucket{class="none",destination="db.example:5432",source="dialer",le="10"} 1
rstpool_dial_duration_seconds_bucket{class="none",destination="db.example:5432",source="dialer",le="30"} 1
rstpool_dial_duration_seconds_bucket{class="none",destination="db.example:5432",source="dialer",le="+Inf"} 1
rstpool_dial_duration_seconds_sum{class="none",destination="db.example:5432",source="dialer"} 0.002
rstpool_dial_duration_seconds_count{class="none",destination="db.example:5432",source="dialer"} 1
rstpool_dial_duration_seconds_bucket{class="refused",destination="db.example:5432",source="dialer",le="0.001"} 0
rstpool_dial_duration_seconds_bucket{class="refused",destination="db.example:5432",source="dialer",le="0.005"} 0
rstpool_dial_duration_seconds_bucket{class="refused",destination="db.example:5432",source="dialer",le="0.01"} 0
rstpool_dial_duration_seconds_bucket{class="refused",destination="db.example:5432",source="dialer",le="0.05"} 0
rstpool_dial_duration_seconds_bucket{class="refused",destination="db.example:5432",source="dialer",le="0.1"} 0
rstpool_dial_duration_seconds_bucket{class="refused",destination="db.example:5432",source="dialer",le="0.5"} 0
rstpool_dial_duration_seconds_bucket{class="refused",destination="db.example:5432",source="dialer",le="1"} 0
rstpool_dial_duration_seconds_bucket{class="refused",destination="db.example:5432",source="dialer",le="3"} 1
rstpool_dial_duration_seconds_bucket{class="refused",destination="db.example:5432",source="dialer",le="10"} 1
rstpool_dial_duration_seconds_bucket{class="refused",destination="db.example:5432",source="dialer",le="30"} 1
rstpool_dial_duration_seconds_bucket{class="refused",destination="db.example:5432",source="dialer",le="+Inf"} 1
rstpool_dial_duration_seconds_sum{class="refused",destination="db.example:5432",source="dialer"} 3
rstpool_dial_duration_seconds_count{class="refused",destination="db.example:5432",source="dialer"} 1
# HELP rstpool_dial_retries_total Refused connects tried again.
# TYPE rstpool_dial_retries_total counter
rstpool_dial_retries_total{destination="db.example:5432",source="dialer"} 1
# HELP rstpool_destination_down_total Times a destination refused connects for a whole RefusedRetry budget and was marked down.
# TYPE rstpool_destination_down_total counter
rstpool_destination_down_total{destination="db.example:5432",source="dialer"} 1
# HELP rstpool_destination_up_total Times a destination marked down accepted a connect again.
# TYPE rstpool_destination_up_total counter
rstpool_destination_up_total{destination="db.example:5432",source="dialer"} 1
# HELP rstpool_destination_down_seconds_total Time destinations were marked down, counted when they came back.
# TYPE rstpool_destination_down_seconds_total counter
rstpool_destination_down_seconds_total{destination="db.example:5432",source="dialer"} 1.5
# HELP rstpool_untracked_total Consumers that got a connection no rstpool Dialer dialed (reported once per consumer).
# TYPE rstpool_untracked_total counter
rstpool_untracked_total{source="sql"} 1
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
		"rstpool_dial_duration_seconds", "rstpool_dial_retries_total", "rstpool_destination_down_total",
		"rstpool_destination_up_total", "rstpool_destination_down_seconds_total", "rstpool_untracked_total"))
}

func TestBadInput(t *testing.T) {
	c := rstprom.NewCollector(rstprom.Options{})
	tr := &rstpool.Transport{}
	require.NoError(t, c.AddTransport("api", tr))
	require.EqualError(t, c.AddTransport("api", tr), `rstprom: AddTransport "api": the name is already in use`)
	require.EqualError(t, c.AddTransport("", tr), `rstprom: AddTransport: the name is empty`)
	require.EqualError(t, c.AddPool("db", nil), `rstprom: AddPool "db": nil`)
	require.True(t, c.RemoveTransport("api"))
	require.False(t, c.RemovePool("db"))
	require.Zero(t, testutil.CollectAndCount(c, "rstpool_transport_requests_total"))
}
