// Package rstotel reports what rstpool does as OpenTelemetry metrics: the
// events of any number of Dialers, Transports, Pools and wrapped database
// connectors, and the stats of the Transports and Pools you add.
//
//	m, err := rstotel.New(rstotel.Options{MeterProvider: mp}) // nil: otel.GetMeterProvider()
//	if err != nil { ... }
//	defer m.Close()
//
//	d := &rstpool.Dialer{Observer: m.Observer()} // every consumer built on d reports to m
//	tr := &rstpool.Transport{Dialer: d}
//	_ = m.AddTransport("api", tr)                // its stats, with rstpool.transport="api"
//	pool, _ := rstpool.NewPool(rstpool.PoolConfig{Addr: addr, Dialer: d})
//	_ = m.AddPool("cache", pool)                 // RemovePool("cache") when you close it
//
// Every instrument is asynchronous: the Observer, called on the I/O path,
// counts with atomic adds into series it looks up without a lock and
// allocates nothing once a series exists; one callback reports the counts
// and reads the stats when a reader collects. Counters are cumulative
// (the SDK turns them into deltas for an exporter that wants them). To log
// events as well, call both: func(e rstpool.Event) { count(e); logged(e) }
// with count := m.Observer() and logged := rstpool.LogEvents(logger).
//
// # Instruments from events
//
// Attributes: rstpool.source ("dialer", "transport", "pool", "sql", "pgx";
// any other is "other"), rstpool.destination (host:port, see below), and
// per instrument:
//
//	rstpool.dials                   counter {dial}        source, destination, class ("none": connected)
//	rstpool.dial.time               counter s             source, destination, class: time connects took
//	rstpool.dial.retries            counter {retry}       source, destination
//	rstpool.destination.downs       counter {down}        source, destination
//	rstpool.destination.ups         counter {up}          source, destination
//	rstpool.destination.down_time   counter s             source, destination (counted at the up)
//	rstpool.connection.retired      counter {connection}  source, destination, reason (idle-limit, lifetime)
//	rstpool.connection.caught_dead  counter {connection}  source, destination, reason (peer-closed, unsolicited-data, ping-failed)
//	rstpool.retries                 counter {retry}       source, destination, reason (nothing-written, idempotent), class
//	rstpool.retries_denied          counter {retry}       source, destination, reason
//	rstpool.errors.surfaced         counter {error}       source, destination, class, cause
//	rstpool.idle_limits.learned     counter {change}      source, destination
//	rstpool.untracked               counter {consumer}    source
//
// (every attribute key is prefixed "rstpool.".) OpenTelemetry has no
// asynchronous histogram, so a connect's duration is reported as a count
// and a total time: their ratio is the mean. rstpool.class is
// rstpool.Class's name ("reset", "refused", "broken-pipe", "peer-closed",
// "timeout", …); for a retry it is the first attempt's. rstpool.cause is a
// short name of rstpool.Cause: "unknown", "idle-reaped", "peer-died",
// "unread-data", "not-listening", "black-hole".
//
// # Bounded cardinality
//
// Every attribute takes its values from a fixed set but
// rstpool.destination, which is capped: the first Options.Destinations
// host:port pairs seen (DefaultDestinations, 32) get their own value, every
// later one is "other", and an event that names no destination is
// "unknown". A negative Options.Destinations drops the attribute.
//
// # Instruments from stats
//
// For each Transport added (rstpool.transport) and Pool added
// (rstpool.pool), read at each collection:
//
//	rstpool.transport.requests, rstpool.transport.retries (reason),
//	rstpool.transport.retries_denied, rstpool.transport.errors (class),
//	rstpool.transport.idle_limit_changes,
//	rstpool.transport.learned_idle (gauge, s; destination, the shortest for "other")
//
//	rstpool.pool.connection.count (up-down counter; state: idle, acquired, constructing),
//	rstpool.pool.connection.max (up-down counter), rstpool.pool.connection.closed (reason),
//	rstpool.pool.acquires, rstpool.pool.acquire_duration (s), rstpool.pool.empty_acquires,
//	rstpool.pool.empty_acquire_wait (s), rstpool.pool.canceled_acquires, rstpool.pool.dials,
//	rstpool.pool.dial_errors, rstpool.pool.retries, rstpool.pool.retries_denied,
//	rstpool.pool.resets_surfaced, rstpool.pool.untracked, rstpool.pool.revoked,
//	rstpool.pool.upkeep_rounds
//
// The stats count what the events count, per instance rather than per
// destination, under other names: both may be reported side by side.
package rstotel
