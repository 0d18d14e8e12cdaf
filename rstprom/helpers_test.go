package rstprom_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/tally/drive"
	"github.com/rstpool/rstpool/rstprom"
)

// serve registers c on a pedantic registry (which checks every metric
// against its descriptor) and serves it through promhttp.
func serve(t *testing.T, c *rstprom.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// scrape returns every sample of the text exposition at url by
// series: `name{label="value",...}` with the labels sorted; a histogram
// by its _count, _sum and _bucket series.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	out := make(map[string]float64)
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName(), l.GetValue())
			}
			switch {
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				out[series(name+"_count", labels...)] = float64(h.GetSampleCount())
				out[series(name+"_sum", labels...)] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[series(name+"_bucket", append(labels, "le", fmt.Sprint(b.GetUpperBound()))...)] = float64(b.GetCumulativeCount())
				}
			case m.GetCounter() != nil:
				out[series(name, labels...)] = m.GetCounter().GetValue()
			default:
				out[series(name, labels...)] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// series names a series: name and label pairs, sorted by label.
func series(name string, pairs ...string) string {
	var kv []string
	for i := 0; i+1 < len(pairs); i += 2 {
		kv = append(kv, fmt.Sprintf("%s=%q", pairs[i], pairs[i+1]))
	}
	slices.Sort(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

// only keeps the series of got whose names are among names.
func only(got map[string]float64, names ...string) map[string]float64 {
	out := make(map[string]float64)
	for k, v := range got {
		name, _, _ := strings.Cut(k, "{")
		if slices.Contains(names, name) {
			out[k] = v
		}
	}
	return out
}

// causes are the label values of the causes, written out independently
// of the code under test.
var causes = map[rstpool.Cause]string{
	rstpool.CauseUnknown: "unknown", rstpool.CauseIdleReaped: "idle-reaped", rstpool.CausePeerDied: "peer-died",
	rstpool.CauseUnreadData: "unread-data", rstpool.CauseNotListening: "not-listening", rstpool.CauseBlackHole: "black-hole",
	rstpool.CauseDown: "down", rstpool.CauseConnectReset: "connect-reset",
}

// eventNames are the event metrics the drive's events make.
var eventNames = []string{"rstpool_retries_total", "rstpool_retries_denied_total", "rstpool_errors_surfaced_total",
	"rstpool_conns_retired_total", "rstpool_conns_caught_dead_total", "rstpool_idle_limits_learned_total"}

// expectEvents counts events as the collector should, but for the
// Dialer's own.
func expectEvents(events []rstpool.Event) map[string]float64 {
	out := make(map[string]float64)
	for _, e := range events {
		dest := e.Addr
		if dest == "" {
			dest = "unknown"
		}
		at := []string{"source", e.Source, "destination", dest}
		switch e.Kind {
		case rstpool.EventRetry:
			out[series("rstpool_retries_total", append(at, "reason", e.Reason, "class", rstpool.Classify(e.Err).String())...)]++
		case rstpool.EventRetryDenied:
			out[series("rstpool_retries_denied_total", append(at, "reason", e.Reason)...)]++
		case rstpool.EventSurfaced:
			out[series("rstpool_errors_surfaced_total", append(at, "class", e.Class.String(), "cause", causes[e.Cause])...)]++
		case rstpool.EventRetired:
			out[series("rstpool_conns_retired_total", append(at, "reason", e.Reason)...)]++
		case rstpool.EventCaughtDead:
			out[series("rstpool_conns_caught_dead_total", append(at, "reason", e.Reason)...)]++
		case rstpool.EventLearned:
			out[series("rstpool_idle_limits_learned_total", at...)]++
		}
	}
	return out
}

// expectStats reads the stats of the drive's Transports and Pools as the
// collector should export them.
func expectStats(r *drive.Run) map[string]float64 {
	out := make(map[string]float64)
	for name, tr := range map[string]*rstpool.Transport{"api": r.Transport, "denying": r.Denying} {
		s := tr.Stats()
		out[series("rstpool_transport_requests_total", "transport", name)] = float64(s.Requests)
		out[series("rstpool_transport_retries_denied_total", "transport", name)] = float64(s.Denied)
		out[series("rstpool_transport_idle_limit_changes_total", "transport", name)] = float64(s.LearnedChanges)
		for reason, n := range map[rstpool.RetryReason]int64{rstpool.RetryNothingWritten: s.RetriedNothingWritten, rstpool.RetryIdempotent: s.RetriedIdempotent} {
			out[series("rstpool_transport_retries_total", "transport", name, "reason", reason.String())] = float64(n)
		}
		for c := rstpool.ClassReset; c <= rstpool.ClassOther; c++ {
			out[series("rstpool_transport_errors_total", "transport", name, "class", c.String())] = float64(s.SurfacedBy[c])
		}
		for dest, limit := range s.LearnedIdle {
			out[series("rstpool_transport_learned_idle_seconds", "transport", name, "destination", dest)] = limit.Seconds()
		}
	}
	for name, p := range map[string]*rstpool.Pool{"lines": r.Pool, "stingy": r.Stingy} {
		for k, v := range poolStats(name, p.Stats()) {
			out[k] = v
		}
	}
	return out
}

func poolStats(name string, s rstpool.PoolStats) map[string]float64 {
	at := func(metric string, pairs ...string) string {
		return series(metric, append([]string{"pool", name}, pairs...)...)
	}
	return map[string]float64{
		at("rstpool_pool_conns", "state", "idle"):                           float64(s.IdleConns),
		at("rstpool_pool_conns", "state", "acquired"):                       float64(s.AcquiredConns),
		at("rstpool_pool_conns", "state", "constructing"):                   float64(s.ConstructingConns),
		at("rstpool_pool_max_conns"):                                        float64(s.MaxConns),
		at("rstpool_pool_conns_closed_total", "reason", "idle-limit"):       float64(s.Retired.IdleLimit),
		at("rstpool_pool_conns_closed_total", "reason", "lifetime"):         float64(s.Retired.Lifetime),
		at("rstpool_pool_conns_closed_total", "reason", "peer-closed"):      float64(s.Retired.PeerClosed),
		at("rstpool_pool_conns_closed_total", "reason", "unsolicited-data"): float64(s.Retired.UnsolicitedData),
		at("rstpool_pool_conns_closed_total", "reason", "ping-failed"):      float64(s.Retired.PingFailed),
		at("rstpool_pool_acquires_total"):                                   float64(s.AcquireCount),
		at("rstpool_pool_acquire_duration_seconds_total"):                   s.AcquireDuration.Seconds(),
		at("rstpool_pool_empty_acquires_total"):                             float64(s.EmptyAcquireCount),
		at("rstpool_pool_empty_acquire_wait_seconds_total"):                 s.EmptyAcquireWaitTime.Seconds(),
		at("rstpool_pool_canceled_acquires_total"):                          float64(s.CanceledAcquireCount),
		at("rstpool_pool_dials_total"):                                      float64(s.Dials),
		at("rstpool_pool_dial_errors_total"):                                float64(s.DialErrors),
		at("rstpool_pool_retries_total"):                                    float64(s.Retried),
		at("rstpool_pool_retries_denied_total"):                             float64(s.Denied),
		at("rstpool_pool_resets_surfaced_total"):                            float64(s.Surfaced),
		at("rstpool_pool_untracked_total"):                                  float64(s.Untracked),
		at("rstpool_pool_revoked_total"):                                    float64(s.Revoked),
		at("rstpool_pool_upkeep_rounds_total"):                              float64(s.UpkeepRounds),
	}
}

// statNames are the names of the stats metrics.
func statNames(want map[string]float64) []string {
	var names []string
	for k := range want {
		name, _, _ := strings.Cut(k, "{")
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}
