package rstprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/tally"
)

// An eventMetric is one metric made of the series of an event kind.
type eventMetric struct {
	desc      *prometheus.Desc
	labels    []string // the desc's variable labels, in order
	histogram bool     // the dial duration histogram; else a counter of value
	value     func(*tally.Series) float64
}

// eventDescs are the metrics of each event kind.
type eventDescs map[rstpool.EventKind][]eventMetric

func count(s *tally.Series) float64   { return float64(s.Count) }
func seconds(s *tally.Series) float64 { return s.Sum.Seconds() }

// counter describes a counter of the series of a kind.
func (b builder) counter(name, help string, value func(*tally.Series) float64, labels ...string) eventMetric {
	m := eventMetric{desc: b.desc(name, help, labels...), value: value}
	for _, l := range labels {
		if l != "destination" || b.destinations {
			m.labels = append(m.labels, l)
		}
	}
	return m
}

var (
	byDestination = []string{"source", "destination"}
	byReason      = []string{"source", "destination", "reason"}
)

func (b builder) eventDescs() eventDescs {
	dial := b.counter("rstpool_dial_duration_seconds",
		"Time connects took, refused retries included, by class (none: connected); its count is the number of connects.",
		nil, "source", "destination", "class")
	dial.histogram = true
	return eventDescs{
		rstpool.EventDial:      {dial},
		rstpool.EventDialRetry: {b.counter("rstpool_dial_retries_total", "Refused connects tried again.", count, byDestination...)},
		rstpool.EventDown: {b.counter("rstpool_destination_down_total",
			"Times a destination refused connects for a whole RefusedRetry budget and was marked down.", count, byDestination...)},
		rstpool.EventUp: {
			b.counter("rstpool_destination_up_total", "Times a destination marked down accepted a connect again.", count, byDestination...),
			b.counter("rstpool_destination_down_seconds_total", "Time destinations were marked down, counted when they came back.", seconds, byDestination...),
		},
		rstpool.EventRetired: {b.counter("rstpool_conns_retired_total",
			"Connections a consumer closed instead of handing them out, by reason (idle-limit, lifetime).", count, byReason...)},
		rstpool.EventCaughtDead: {b.counter("rstpool_conns_caught_dead_total",
			"Connections whose peer was gone, found before a byte of work left, by reason (peer-closed, unsolicited-data, ping-failed).", count, byReason...)},
		rstpool.EventRetry: {b.counter("rstpool_retries_total",
			"Work run a second time on another connection, by reason (nothing-written, idempotent) and class of the first failure.",
			count, "source", "destination", "reason", "class")},
		rstpool.EventRetryDenied: {b.counter("rstpool_retries_denied_total",
			"Retries the retry rule allowed but the retry budget had no token for.", count, byReason...)},
		rstpool.EventSurfaced: {b.counter("rstpool_errors_surfaced_total",
			"Failures returned to the caller, by class and likely cause.", count, "source", "destination", "class", "cause")},
		rstpool.EventLearned: {b.counter("rstpool_idle_limits_learned_total",
			"Times a Transport set, lowered or raised the idle limit it learned for a destination.", count, byDestination...)},
		rstpool.EventUntracked: {b.counter("rstpool_untracked_total",
			"Consumers that got a connection no rstpool Dialer dialed (reported once per consumer).", count, "source")},
	}
}

func (d eventDescs) describe(ch chan<- *prometheus.Desc) {
	for _, ms := range d {
		for _, m := range ms {
			ch <- m.desc
		}
	}
}

func (c *Collector) collectEvents(ch chan<- prometheus.Metric) {
	c.tally.Each(func(s *tally.Series) {
		for _, m := range c.events[s.Kind] {
			ch <- m.metric(s)
		}
	})
}

func (m eventMetric) metric(s *tally.Series) prometheus.Metric {
	values := make([]string, len(m.labels))
	for i, l := range m.labels {
		values[i] = labelValue(s, l)
	}
	if m.histogram {
		buckets := make(map[float64]uint64, len(s.Buckets))
		for i, n := range s.Buckets {
			buckets[tally.DialBuckets[i].Seconds()] = n
		}
		return prometheus.MustNewConstHistogram(m.desc, uint64(s.Count), s.Sum.Seconds(), buckets, values...)
	}
	return prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, m.value(s), values...)
}

func labelValue(s *tally.Series, label string) string {
	switch label {
	case "source":
		return s.Source
	case "destination":
		return s.Destination
	case "reason":
		return s.Reason
	case "class":
		return s.Class
	}
	return s.Cause
}
