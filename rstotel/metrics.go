package rstotel

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/tally"
)

// ScopeName is the instrumentation scope of the Meter rstotel uses.
const ScopeName = "github.com/rstpool/rstpool/rstotel"

// DefaultDestinations is how many distinct destinations get a
// rstpool.destination value of their own when Options.Destinations is
// zero; every destination seen after them is "other".
const DefaultDestinations = tally.DefaultDestinations

// Options configure New. The zero value is usable.
type Options struct {
	// MeterProvider provides the Meter of the instruments. Nil: the global
	// one, otel.GetMeterProvider().
	MeterProvider metric.MeterProvider

	// Destinations caps the distinct values of the rstpool.destination
	// attribute: the first Destinations host:port pairs seen get their
	// own, every later one is "other", and an event that names none is
	// "unknown". Zero: DefaultDestinations. Negative: no destination
	// attribute at all.
	Destinations int
}

// Metrics reports the events it observes and the stats of the Transports
// and Pools added to it as OpenTelemetry metrics. Its methods are safe for
// concurrent use.
type Metrics struct {
	tally      *tally.Tally
	observe    rstpool.Observer
	transports tally.Named[*rstpool.Transport]
	pools      tally.Named[*rstpool.Pool]
	events     eventInstruments
	stats      statInstruments
	reg        metric.Registration
}

// New creates the instruments on the Meter ScopeName of opts's provider and
// registers the callback that reports them when a reader collects.
func New(opts Options) (*Metrics, error) {
	mp := opts.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	t := tally.New(opts.Destinations)
	b := &builder{meter: mp.Meter(ScopeName), destinations: t.Destinations()}
	m := &Metrics{tally: t, observe: t.Observe, events: b.eventInstruments(), stats: b.statInstruments()}
	if b.err != nil {
		return nil, fmt.Errorf("rstotel: creating the instruments: %w", b.err)
	}
	reg, err := b.meter.RegisterCallback(m.report, b.all...)
	if err != nil {
		return nil, fmt.Errorf("rstotel: registering the callback: %w", err)
	}
	m.reg = reg
	return m, nil
}

// Observer returns the Observer that counts events into m: set it on a
// Dialer (the default of every Transport, Pool and WrapConnector built on
// it) or on each of them. It takes no lock and, once an event's attributes
// have been seen, allocates nothing.
func (m *Metrics) Observer() rstpool.Observer { return m.observe }

// AddTransport reports t's stats with the attribute
// rstpool.transport=name. It fails for an empty name, a name already
// added, or a nil t.
func (m *Metrics) AddTransport(name string, t *rstpool.Transport) error {
	return m.transports.Add("rstotel: AddTransport", name, t)
}

// RemoveTransport stops reporting the stats of the Transport added as
// name, and reports whether there was one.
func (m *Metrics) RemoveTransport(name string) bool { return m.transports.Remove(name) }

// AddPool reports p's stats with the attribute rstpool.pool=name. It fails
// for an empty name, a name already added, or a nil p.
func (m *Metrics) AddPool(name string, p *rstpool.Pool) error {
	return m.pools.Add("rstotel: AddPool", name, p)
}

// RemovePool stops reporting the stats of the Pool added as name (do it
// when you close the Pool), and reports whether there was one.
func (m *Metrics) RemovePool(name string) bool { return m.pools.Remove(name) }

// Close unregisters the callback: the instruments report nothing more.
func (m *Metrics) Close() error { return m.reg.Unregister() }

// report is the callback: the counts of the events observed so far, then
// the stats of each Transport and Pool added.
func (m *Metrics) report(_ context.Context, o metric.Observer) error {
	m.tally.Each(func(s *tally.Series) { m.events.report(o, s) })
	m.transports.Each(func(name string, t *rstpool.Transport) { m.stats.reportTransport(o, m.tally, name, t) })
	m.pools.Each(func(name string, p *rstpool.Pool) { m.stats.reportPool(o, name, p) })
	return nil
}
