package rstprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/tally"
)

// DefaultDestinations is how many distinct destinations get a destination
// label value of their own when Options.Destinations is zero; every
// destination seen after them is labelled "other".
const DefaultDestinations = tally.DefaultDestinations

// Options configure a Collector. The zero value is usable.
type Options struct {
	// Destinations caps the distinct values of the destination label: the
	// first Destinations host:port pairs seen get their own, every later
	// one is "other", and an event that names none is "unknown". Zero:
	// DefaultDestinations. Negative: no destination label at all.
	Destinations int

	// ConstLabels are added to every metric, such as the service's name.
	ConstLabels prometheus.Labels
}

// A Collector is a prometheus.Collector of the events it observes and of
// the stats of the Transports and Pools added to it. Its methods are safe
// for concurrent use; register it once per registry.
type Collector struct {
	tally      *tally.Tally
	observe    rstpool.Observer
	transports tally.Named[*rstpool.Transport]
	pools      tally.Named[*rstpool.Pool]
	events     eventDescs
	stats      statDescs
}

// NewCollector returns a Collector with no Transport or Pool added.
func NewCollector(opts Options) *Collector {
	t := tally.New(opts.Destinations)
	b := builder{constLabels: opts.ConstLabels, destinations: t.Destinations()}
	return &Collector{tally: t, observe: t.Observe, events: b.eventDescs(), stats: b.statDescs()}
}

// Observer returns the Observer that counts events into c: set it on a
// Dialer (the default of every Transport, Pool and WrapConnector built on
// it) or on each of them. It takes no lock and, once an event's labels
// have been seen, allocates nothing.
func (c *Collector) Observer() rstpool.Observer { return c.observe }

// AddTransport exports t's stats with the label transport=name. It fails
// for an empty name, a name already added, or a nil t.
func (c *Collector) AddTransport(name string, t *rstpool.Transport) error {
	return c.transports.Add("rstprom: AddTransport", name, t)
}

// RemoveTransport stops exporting the stats of the Transport added as
// name, and reports whether there was one.
func (c *Collector) RemoveTransport(name string) bool { return c.transports.Remove(name) }

// AddPool exports p's stats with the label pool=name. It fails for an
// empty name, a name already added, or a nil p.
func (c *Collector) AddPool(name string, p *rstpool.Pool) error {
	return c.pools.Add("rstprom: AddPool", name, p)
}

// RemovePool stops exporting the stats of the Pool added as name (do it
// when you close the Pool), and reports whether there was one.
func (c *Collector) RemovePool(name string) bool { return c.pools.Remove(name) }

// Describe sends the descriptors of every metric c may collect.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.events.describe(ch)
	c.stats.describe(ch)
}

// Collect sends the counts of the events observed so far, then the stats
// of each Transport and Pool added.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.collectEvents(ch)
	c.transports.Each(func(name string, t *rstpool.Transport) { c.collectTransport(ch, name, t) })
	c.pools.Each(func(name string, p *rstpool.Pool) { c.collectPool(ch, name, p) })
}

// builder makes the descriptors, with the labels the options call for.
type builder struct {
	constLabels  prometheus.Labels
	destinations bool
}

// desc builds a descriptor; "destination" among labels is dropped when
// the destination label is off.
func (b builder) desc(name, help string, labels ...string) *prometheus.Desc {
	var keep []string
	for _, l := range labels {
		if l != "destination" || b.destinations {
			keep = append(keep, l)
		}
	}
	return prometheus.NewDesc(name, help, keep, b.constLabels)
}
