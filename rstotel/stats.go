package rstotel

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/tally"
)

// statInstruments report the stats of Transports and Pools.
type statInstruments struct {
	requests, retries, denied, errors, changes metric.Int64ObservableCounter
	learned                                    metric.Float64ObservableGauge
	conns, maxConns                            metric.Int64ObservableUpDownCounter
	closed                                     metric.Int64ObservableCounter
	pool                                       []poolInstrument // by tally.PoolCounters
	destinations                               bool
}

// A poolInstrument reports one of tally.PoolCounters: a count, or a
// duration in seconds.
type poolInstrument struct {
	count metric.Int64ObservableCounter
	time  metric.Float64ObservableCounter
}

func (b *builder) upDown(name, unit, desc string) metric.Int64ObservableUpDownCounter {
	c, err := b.meter.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	b.keep(c, err)
	return c
}

func (b *builder) gauge(name, desc string) metric.Float64ObservableGauge {
	g, err := b.meter.Float64ObservableGauge(name, metric.WithUnit("s"), metric.WithDescription(desc))
	b.keep(g, err)
	return g
}

func (b *builder) statInstruments() statInstruments {
	s := statInstruments{
		requests: b.counter("rstpool.transport.requests", "{request}", "Calls to the Transport's RoundTrip."),
		retries:  b.counter("rstpool.transport.retries", "{retry}", "Requests the Transport sent a second time, by reason."),
		denied: b.counter("rstpool.transport.retries_denied", "{retry}",
			"Retries the Transport's retry rule allowed but its retry budget had no token for."),
		errors: b.counter("rstpool.transport.errors", "{error}", "Requests that failed, by class."),
		changes: b.counter("rstpool.transport.idle_limit_changes", "{change}",
			"Times the Transport set, lowered or raised a learned idle limit."),
		learned: b.gauge("rstpool.transport.learned_idle",
			"The idle limit the Transport learned for a destination (the shortest, for \"other\")."),
		conns:        b.upDown("rstpool.pool.connection.count", "{connection}", "The Pool's connections by state (idle, acquired, constructing)."),
		maxConns:     b.upDown("rstpool.pool.connection.max", "{connection}", "The Pool's MaxSize."),
		closed:       b.counter("rstpool.pool.connection.closed", "{connection}", "Connections the Pool closed, by reason."),
		destinations: b.destinations,
	}
	for _, pc := range tally.PoolCounters {
		var in poolInstrument
		if pc.Unit == "s" {
			in.time = b.seconds("rstpool.pool."+pc.Name, pc.Help)
		} else {
			in.count = b.counter("rstpool.pool."+pc.Name, pc.Unit, pc.Help)
		}
		s.pool = append(s.pool, in)
	}
	return s
}

func attrs(kv ...attribute.KeyValue) metric.MeasurementOption { return metric.WithAttributes(kv...) }

func (s *statInstruments) reportTransport(o metric.Observer, tl *tally.Tally, name string, t *rstpool.Transport) {
	st, tr := t.Stats(), keyTransport.String(name)
	o.ObserveInt64(s.requests, st.Requests, attrs(tr))
	for _, r := range tally.RetryReasons {
		o.ObserveInt64(s.retries, r.Value(st), attrs(tr, keyReason.String(r.Reason.String())))
	}
	o.ObserveInt64(s.denied, st.Denied, attrs(tr))
	for _, c := range tally.Classes {
		o.ObserveInt64(s.errors, st.SurfacedBy[c], attrs(tr, keyClass.String(c.String())))
	}
	o.ObserveInt64(s.changes, st.LearnedChanges, attrs(tr))
	for dest, limit := range tl.Learned(st.LearnedIdle) {
		if s.destinations {
			o.ObserveFloat64(s.learned, limit.Seconds(), attrs(tr, keyDestination.String(dest)))
		} else {
			o.ObserveFloat64(s.learned, limit.Seconds(), attrs(tr))
		}
	}
}

func (s *statInstruments) reportPool(o metric.Observer, name string, p *rstpool.Pool) {
	st, pool := p.Stats(), keyPool.String(name)
	for _, pc := range tally.PoolConns {
		o.ObserveInt64(s.conns, int64(pc.Value(st)), attrs(pool, keyState.String(pc.State)))
	}
	o.ObserveInt64(s.maxConns, int64(st.MaxConns), attrs(pool))
	for _, pc := range tally.PoolClosed {
		o.ObserveInt64(s.closed, pc.Value(st), attrs(pool, keyReason.String(pc.Reason)))
	}
	for i, pc := range tally.PoolCounters {
		if in := s.pool[i]; in.time != nil {
			o.ObserveFloat64(in.time, pc.Value(st), attrs(pool))
		} else {
			o.ObserveInt64(in.count, int64(pc.Value(st)), attrs(pool))
		}
	}
}
