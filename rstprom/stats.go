package rstprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/tally"
)

// statDescs describe the stats of Transports and Pools.
type statDescs struct {
	requests, retries, denied, errors, changes, learned *prometheus.Desc
	conns, maxConns, closed                             *prometheus.Desc
	pool                                                []*prometheus.Desc // by tally.PoolCounters
	destinations                                        bool
}

func (b builder) statDescs() statDescs {
	d := statDescs{
		requests: b.desc("rstpool_transport_requests_total", "Calls to the Transport's RoundTrip.", "transport"),
		retries:  b.desc("rstpool_transport_retries_total", "Requests the Transport sent a second time, by reason.", "transport", "reason"),
		denied: b.desc("rstpool_transport_retries_denied_total",
			"Retries the Transport's retry rule allowed but its retry budget had no token for.", "transport"),
		errors: b.desc("rstpool_transport_errors_total", "Requests that failed, by class.", "transport", "class"),
		changes: b.desc("rstpool_transport_idle_limit_changes_total",
			"Times the Transport set, lowered or raised a learned idle limit.", "transport"),
		learned: b.desc("rstpool_transport_learned_idle_seconds",
			"The idle limit the Transport learned for a destination (the shortest, for \"other\").", "transport", "destination"),
		conns:        b.desc("rstpool_pool_conns", "The Pool's connections by state (idle, acquired, constructing).", "pool", "state"),
		maxConns:     b.desc("rstpool_pool_max_conns", "The Pool's MaxSize.", "pool"),
		closed:       b.desc("rstpool_pool_conns_closed_total", "Connections the Pool closed, by reason.", "pool", "reason"),
		destinations: b.destinations,
	}
	for _, pc := range tally.PoolCounters {
		name := "rstpool_pool_" + pc.Name
		if pc.Unit == "s" {
			name += "_seconds"
		}
		d.pool = append(d.pool, b.desc(name+"_total", pc.Help, "pool"))
	}
	return d
}

func (d statDescs) describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{d.requests, d.retries, d.denied, d.errors, d.changes, d.learned, d.conns, d.maxConns, d.closed} {
		ch <- desc
	}
	for _, desc := range d.pool {
		ch <- desc
	}
}

func counter(desc *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
}

func gauge(desc *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
}

func (c *Collector) collectTransport(ch chan<- prometheus.Metric, name string, t *rstpool.Transport) {
	d, s := &c.stats, t.Stats()
	ch <- counter(d.requests, float64(s.Requests), name)
	for _, r := range tally.RetryReasons {
		ch <- counter(d.retries, float64(r.Value(s)), name, r.Reason.String())
	}
	ch <- counter(d.denied, float64(s.Denied), name)
	for _, class := range tally.Classes {
		ch <- counter(d.errors, float64(s.SurfacedBy[class]), name, class.String())
	}
	ch <- counter(d.changes, float64(s.LearnedChanges), name)
	for dest, limit := range c.tally.Learned(s.LearnedIdle) {
		if d.destinations {
			ch <- gauge(d.learned, limit.Seconds(), name, dest)
		} else {
			ch <- gauge(d.learned, limit.Seconds(), name)
		}
	}
}

func (c *Collector) collectPool(ch chan<- prometheus.Metric, name string, p *rstpool.Pool) {
	d, s := &c.stats, p.Stats()
	for _, pc := range tally.PoolConns {
		ch <- gauge(d.conns, float64(pc.Value(s)), name, pc.State)
	}
	ch <- gauge(d.maxConns, float64(s.MaxConns), name)
	for _, pc := range tally.PoolClosed {
		ch <- counter(d.closed, float64(pc.Value(s)), name, pc.Reason)
	}
	for i, pc := range tally.PoolCounters {
		ch <- counter(d.pool[i], pc.Value(s), name)
	}
}
