package rstotel

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/tally"
)

// The attribute keys.
const (
	keySource      = attribute.Key("rstpool.source")
	keyDestination = attribute.Key("rstpool.destination")
	keyReason      = attribute.Key("rstpool.reason")
	keyClass       = attribute.Key("rstpool.class")
	keyCause       = attribute.Key("rstpool.cause")
	keyTransport   = attribute.Key("rstpool.transport")
	keyPool        = attribute.Key("rstpool.pool")
	keyState       = attribute.Key("rstpool.state")
)

// builder creates asynchronous instruments on one Meter, keeping the first
// error and every instrument for the callback's registration.
type builder struct {
	meter        metric.Meter
	destinations bool
	all          []metric.Observable
	err          error
}

func (b *builder) keep(o metric.Observable, err error) {
	if err != nil && b.err == nil {
		b.err = err
	}
	b.all = append(b.all, o)
}

func (b *builder) counter(name, unit, desc string) metric.Int64ObservableCounter {
	c, err := b.meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	b.keep(c, err)
	return c
}

func (b *builder) seconds(name, desc string) metric.Float64ObservableCounter {
	c, err := b.meter.Float64ObservableCounter(name, metric.WithUnit("s"), metric.WithDescription(desc))
	b.keep(c, err)
	return c
}

// An eventInstrument reports the series of an event kind: their count on
// an Int64 counter, or their summed durations on a Float64 one.
type eventInstrument struct {
	count metric.Int64ObservableCounter
	time  metric.Float64ObservableCounter
	keys  []attribute.Key
}

type eventInstruments map[rstpool.EventKind][]eventInstrument

// keys keeps the destination key only when the attribute is on.
func (b *builder) keys(keys ...attribute.Key) []attribute.Key {
	var out []attribute.Key
	for _, k := range keys {
		if k != keyDestination || b.destinations {
			out = append(out, k)
		}
	}
	return out
}

func (b *builder) count(name, unit, desc string, keys ...attribute.Key) eventInstrument {
	return eventInstrument{count: b.counter(name, unit, desc), keys: b.keys(keys...)}
}

func (b *builder) time(name, desc string, keys ...attribute.Key) eventInstrument {
	return eventInstrument{time: b.seconds(name, desc), keys: b.keys(keys...)}
}

var (
	byDestination = []attribute.Key{keySource, keyDestination}
	byReason      = []attribute.Key{keySource, keyDestination, keyReason}
	byClass       = []attribute.Key{keySource, keyDestination, keyClass}
)

func (b *builder) eventInstruments() eventInstruments {
	return eventInstruments{
		rstpool.EventDial: {
			b.count("rstpool.dials", "{dial}", "Connects, by class (none: connected).", byClass...),
			b.time("rstpool.dial.time", "Time connects took, refused retries included.", byClass...),
		},
		rstpool.EventDialRetry: {b.count("rstpool.dial.retries", "{retry}", "Refused connects tried again.", byDestination...)},
		rstpool.EventDown: {b.count("rstpool.destination.downs", "{down}",
			"Times a destination refused connects for a whole RefusedRetry budget and was marked down.", byDestination...)},
		rstpool.EventUp: {
			b.count("rstpool.destination.ups", "{up}", "Times a destination marked down accepted a connect again.", byDestination...),
			b.time("rstpool.destination.down_time", "Time destinations were marked down, counted when they came back.", byDestination...),
		},
		rstpool.EventRetired: {b.count("rstpool.connection.retired", "{connection}",
			"Connections a consumer closed instead of handing them out, by reason (idle-limit, lifetime).", byReason...)},
		rstpool.EventCaughtDead: {b.count("rstpool.connection.caught_dead", "{connection}",
			"Connections whose peer was gone, found before a byte of work left, by reason (peer-closed, unsolicited-data, ping-failed).", byReason...)},
		rstpool.EventRetry: {b.count("rstpool.retries", "{retry}",
			"Work run a second time on another connection, by reason (nothing-written, idempotent) and class of the first failure.",
			keySource, keyDestination, keyReason, keyClass)},
		rstpool.EventRetryDenied: {b.count("rstpool.retries_denied", "{retry}",
			"Retries the retry rule allowed but the retry budget had no token for.", byReason...)},
		rstpool.EventSurfaced: {b.count("rstpool.errors.surfaced", "{error}",
			"Failures returned to the caller, by class and likely cause.", keySource, keyDestination, keyClass, keyCause)},
		rstpool.EventLearned: {b.count("rstpool.idle_limits.learned", "{change}",
			"Times a Transport set, lowered or raised the idle limit it learned for a destination.", byDestination...)},
		rstpool.EventUntracked: {b.count("rstpool.untracked", "{consumer}",
			"Consumers that got a connection no rstpool Dialer dialed (reported once per consumer).", keySource)},
	}
}

func (is eventInstruments) report(o metric.Observer, s *tally.Series) {
	for _, in := range is[s.Kind] {
		attrs := make([]attribute.KeyValue, len(in.keys))
		for i, k := range in.keys {
			attrs[i] = k.String(value(s, k))
		}
		if in.count != nil {
			o.ObserveInt64(in.count, s.Count, metric.WithAttributes(attrs...))
		} else {
			o.ObserveFloat64(in.time, s.Sum.Seconds(), metric.WithAttributes(attrs...))
		}
	}
}

func value(s *tally.Series, k attribute.Key) string {
	switch k {
	case keySource:
		return s.Source
	case keyDestination:
		return s.Destination
	case keyReason:
		return s.Reason
	case keyClass:
		return s.Class
	}
	return s.Cause
}
