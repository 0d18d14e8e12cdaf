// Package rstprom exports what rstpool does as Prometheus metrics: the
// events of any number of Dialers, Transports, Pools and wrapped database
// connectors, and the stats of the Transports and Pools you add.
//
//	c := rstprom.NewCollector(rstprom.Options{})
//	prometheus.MustRegister(c)
//
//	d := &rstpool.Dialer{Observer: c.Observer()} // every consumer built on d reports to c
//	tr := &rstpool.Transport{Dialer: d}
//	_ = c.AddTransport("api", tr)                // its stats, labelled transport="api"
//	pool, _ := rstpool.NewPool(rstpool.PoolConfig{Addr: addr, Dialer: d})
//	_ = c.AddPool("cache", pool)                 // RemovePool("cache") when you close it
//
// The Observer is called on the I/O path. It counts with atomic adds into
// series it looks up without a lock, and allocates nothing once a series
// exists; the metrics are built when Prometheus scrapes. To log events as
// well, call both: func(e rstpool.Event) { count(e); logged(e) } with
// count := c.Observer() and logged := rstpool.LogEvents(logger).
//
// # Metrics from events
//
// Labels: source ("dialer", "transport", "pool", "sql", "pgx"; any other
// is "other"), destination (host:port, see below), and per metric:
//
//	rstpool_dial_duration_seconds          histogram  source, destination, class ("none": connected)
//	rstpool_dial_retries_total             counter    source, destination
//	rstpool_destination_down_total         counter    source, destination
//	rstpool_destination_up_total           counter    source, destination
//	rstpool_destination_down_seconds_total counter    source, destination (counted at the up)
//	rstpool_conns_retired_total            counter    source, destination, reason (idle-limit, lifetime)
//	rstpool_conns_caught_dead_total        counter    source, destination, reason (peer-closed, unsolicited-data, ping-failed)
//	rstpool_retries_total                  counter    source, destination, reason (nothing-written, idempotent), class
//	rstpool_retries_denied_total           counter    source, destination, reason
//	rstpool_errors_surfaced_total          counter    source, destination, class, cause
//	rstpool_idle_limits_learned_total      counter    source, destination
//	rstpool_untracked_total                counter    source
//
// class is rstpool.Class's name ("reset", "refused", "broken-pipe",
// "peer-closed", "timeout", …); for a retry it is the first attempt's. cause
// is a short name of rstpool.Cause: "unknown", "idle-reaped", "peer-died",
// "unread-data", "not-listening", "black-hole". A series appears once its
// first event is counted.
//
// # Bounded cardinality
//
// Every label takes its values from a fixed set but destination, which is
// capped: the first Options.Destinations host:port pairs seen
// (DefaultDestinations, 32) get their own value, every later one is
// "other", and an event that names no destination is "unknown". A
// negative Options.Destinations drops the label. So the number of series
// stays bounded however many hosts a client talks to.
//
// # Metrics from stats
//
// For each Transport added (label transport) and Pool added (label pool),
// read when scraped:
//
//	rstpool_transport_requests_total, rstpool_transport_retries_total (reason),
//	rstpool_transport_retries_denied_total, rstpool_transport_errors_total (class),
//	rstpool_transport_idle_limit_changes_total,
//	rstpool_transport_learned_idle_seconds (gauge; destination, the shortest for "other")
//
//	rstpool_pool_conns (gauge; state: idle, acquired, constructing), rstpool_pool_max_conns (gauge),
//	rstpool_pool_conns_closed_total (reason), rstpool_pool_acquires_total,
//	rstpool_pool_acquire_duration_seconds_total, rstpool_pool_empty_acquires_total,
//	rstpool_pool_empty_acquire_wait_seconds_total, rstpool_pool_canceled_acquires_total,
//	rstpool_pool_dials_total, rstpool_pool_dial_errors_total, rstpool_pool_retries_total,
//	rstpool_pool_retries_denied_total, rstpool_pool_resets_surfaced_total,
//	rstpool_pool_untracked_total, rstpool_pool_revoked_total, rstpool_pool_upkeep_rounds_total
//
// The stats count what the events count, per instance rather than per
// destination: both may be exported side by side without double counting,
// as their names differ.
package rstprom
