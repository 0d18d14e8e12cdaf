package rstotel_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/tally/drive"
	"github.com/rstpool/rstpool/rstotel"
)

// newMetrics returns Metrics on a MeterProvider read by a manual reader.
func newMetrics(t *testing.T, opts rstotel.Options) (*rstotel.Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	opts.MeterProvider = mp
	m, err := rstotel.New(opts)
	require.NoError(t, err)
	return m, reader
}

// A point is one data point as collected, with the kind of its
// aggregation.
type point struct {
	value float64
	kind  string // "counter" (monotonic cumulative sum), "updown" or "gauge"
}

// collect reads every data point by series: `name{key="value",...}`,
// the attributes sorted. It fails t on an aggregation rstotel does not
// make.
func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]point {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := make(map[string]point)
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, rstotel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				kind := sumKind(t, d.IsMonotonic, d.Temporality)
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes.ToSlice())] = point{float64(p.Value), kind}
				}
			case metricdata.Sum[float64]:
				kind := sumKind(t, d.IsMonotonic, d.Temporality)
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes.ToSlice())] = point{p.Value, kind}
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes.ToSlice())] = point{p.Value, "gauge"}
				}
			default:
				t.Fatalf("%s: unexpected %T", m.Name, m.Data)
			}
		}
	}
	return out
}

func sumKind(t *testing.T, monotonic bool, temporality metricdata.Temporality) string {
	require.Equal(t, metricdata.CumulativeTemporality, temporality)
	if monotonic {
		return "counter"
	}
	return "updown"
}

func key(name string, kvs []attribute.KeyValue) string {
	var pairs []string
	for _, kv := range kvs {
		pairs = append(pairs, string(kv.Key), kv.Value.String())
	}
	return series(name, pairs...)
}

// series names a series: name and attribute pairs, sorted by key.
func series(name string, pairs ...string) string {
	var kv []string
	for i := 0; i+1 < len(pairs); i += 2 {
		kv = append(kv, fmt.Sprintf("%s=%q", pairs[i], pairs[i+1]))
	}
	slices.Sort(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

// values keeps the series of got whose names are among names, by value.
func values(got map[string]point, names ...string) map[string]float64 {
	out := make(map[string]float64)
	for k, p := range got {
		name, _, _ := strings.Cut(k, "{")
		if len(names) == 0 || slices.Contains(names, name) {
			out[k] = p.value
		}
	}
	return out
}

// causes are the attribute values of the causes, written out
// independently of the code under test.
var causes = map[rstpool.Cause]string{
	rstpool.CauseUnknown: "unknown", rstpool.CauseIdleReaped: "idle-reaped", rstpool.CausePeerDied: "peer-died",
	rstpool.CauseUnreadData: "unread-data", rstpool.CauseNotListening: "not-listening", rstpool.CauseBlackHole: "black-hole",
	rstpool.CauseDown: "down", rstpool.CauseConnectReset: "connect-reset",
}

// eventNames are the event metrics the drive's events make.
var eventNames = []string{"rstpool.retries", "rstpool.retries_denied", "rstpool.errors.surfaced",
	"rstpool.connection.retired", "rstpool.connection.caught_dead", "rstpool.idle_limits.learned"}

// expectEvents counts events as Metrics should, but for the Dialer's own.
func expectEvents(events []rstpool.Event) map[string]float64 {
	out := make(map[string]float64)
	for _, e := range events {
		dest := e.Addr
		if dest == "" {
			dest = "unknown"
		}
		at := []string{"rstpool.source", e.Source, "rstpool.destination", dest}
		switch e.Kind {
		case rstpool.EventRetry:
			out[series("rstpool.retries", append(at, "rstpool.reason", e.Reason, "rstpool.class", rstpool.Classify(e.Err).String())...)]++
		case rstpool.EventRetryDenied:
			out[series("rstpool.retries_denied", append(at, "rstpool.reason", e.Reason)...)]++
		case rstpool.EventSurfaced:
			out[series("rstpool.errors.surfaced", append(at, "rstpool.class", e.Class.String(), "rstpool.cause", causes[e.Cause])...)]++
		case rstpool.EventRetired:
			out[series("rstpool.connection.retired", append(at, "rstpool.reason", e.Reason)...)]++
		case rstpool.EventCaughtDead:
			out[series("rstpool.connection.caught_dead", append(at, "rstpool.reason", e.Reason)...)]++
		case rstpool.EventLearned:
			out[series("rstpool.idle_limits.learned", at...)]++
		}
	}
	return out
}

// expectStats reads the stats of the drive's Transports and Pools as
// Metrics should report them.
func expectStats(r *drive.Run) map[string]float64 {
	out := make(map[string]float64)
	for name, tr := range map[string]*rstpool.Transport{"api": r.Transport, "denying": r.Denying} {
		s := tr.Stats()
		at := func(metric string, pairs ...string) string {
			return series(metric, append([]string{"rstpool.transport", name}, pairs...)...)
		}
		out[at("rstpool.transport.requests")] = float64(s.Requests)
		out[at("rstpool.transport.retries_denied")] = float64(s.Denied)
		out[at("rstpool.transport.idle_limit_changes")] = float64(s.LearnedChanges)
		for reason, n := range map[rstpool.RetryReason]int64{rstpool.RetryNothingWritten: s.RetriedNothingWritten, rstpool.RetryIdempotent: s.RetriedIdempotent} {
			out[at("rstpool.transport.retries", "rstpool.reason", reason.String())] = float64(n)
		}
		for c := rstpool.ClassReset; c <= rstpool.ClassOther; c++ {
			out[at("rstpool.transport.errors", "rstpool.class", c.String())] = float64(s.SurfacedBy[c])
		}
		for dest, limit := range s.LearnedIdle {
			out[at("rstpool.transport.learned_idle", "rstpool.destination", dest)] = limit.Seconds()
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
		return series("rstpool.pool."+metric, append([]string{"rstpool.pool", name}, pairs...)...)
	}
	out := map[string]float64{
		at("connection.count", "rstpool.state", "idle"):         float64(s.IdleConns),
		at("connection.count", "rstpool.state", "acquired"):     float64(s.AcquiredConns),
		at("connection.count", "rstpool.state", "constructing"): float64(s.ConstructingConns),
		at("connection.max"):     float64(s.MaxConns),
		at("acquires"):           float64(s.AcquireCount),
		at("acquire_duration"):   s.AcquireDuration.Seconds(),
		at("empty_acquires"):     float64(s.EmptyAcquireCount),
		at("empty_acquire_wait"): s.EmptyAcquireWaitTime.Seconds(),
		at("canceled_acquires"):  float64(s.CanceledAcquireCount),
		at("dials"):              float64(s.Dials),
		at("dial_errors"):        float64(s.DialErrors),
		at("retries"):            float64(s.Retried),
		at("retries_denied"):     float64(s.Denied),
		at("resets_surfaced"):    float64(s.Surfaced),
		at("untracked"):          float64(s.Untracked),
		at("revoked"):            float64(s.Revoked),
		at("upkeep_rounds"):      float64(s.UpkeepRounds),
	}
	for reason, v := range map[string]int64{"idle-limit": s.Retired.IdleLimit, "lifetime": s.Retired.Lifetime,
		"peer-closed": s.Retired.PeerClosed, "unsolicited-data": s.Retired.UnsolicitedData, "ping-failed": s.Retired.PingFailed} {
		out[at("connection.closed", "rstpool.reason", reason)] = float64(v)
	}
	return out
}

// names are the metric names of the series of want.
func names(want map[string]float64) []string {
	var out []string
	for k := range want {
		name, _, _ := strings.Cut(k, "{")
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}
