package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rstpool/rstpool"
)

// A database is a server a database leg runs against with its usual Go
// client, once stock and once wired to rstpool as README.md shows. The leg
// sends reads and writes the server counts (an INSERT of the request's id,
// HINCRBY of its field), so a write applied twice shows.
type database struct {
	name   string // as --with names it
	addr   string // where it listens: its default local address
	client string // the Go client, for the report
	start  string // how to start one, for the skip message

	// open returns the client of the server at addr with a pool of size
	// connections: stock when d is nil, else dialing through d. It does
	// not connect.
	open func(addr string, d *rstpool.Dialer, size int) (store, error)
	// retry is how the rstpool client runs one call (rstpool.Retry, or
	// rstpgx.Retry for pgx).
	retry retryFunc
}

// A retryFunc runs fn, maybe once more; idempotent says whether running it
// twice is safe.
type retryFunc func(ctx context.Context, idempotent bool, fn func(context.Context) error) error

// once runs fn once: a stock client has no retry but its driver's own.
func once(ctx context.Context, _ bool, fn func(context.Context) error) error { return fn(ctx) }

// A store is one client of a database: a driver's pool.
type store interface {
	about() string                 // how the client is set up
	idle() time.Duration           // its idle limit; 0: none
	prepare(context.Context) error // creates what the writes need
	read(ctx context.Context, tag string, id int) error
	write(ctx context.Context, tag string, id int) error // not idempotent: the server counts it
	applied(ctx context.Context, tag string) (map[int]int, error)
	forget(ctx context.Context, tag string) error // deletes the writes of tag
	close()
}

// databases are the servers --with names, in the order the report lists
// them.
var databases = []database{postgresDB, mysqlDB, redisDB}

// DatabaseNames returns the names Config.Databases accepts.
func DatabaseNames() []string {
	var names []string
	for _, db := range databases {
		names = append(names, db.name)
	}
	return names
}

func lookupDatabase(name string) (database, bool) {
	i := slices.IndexFunc(databases, func(db database) bool { return db.name == name })
	if i < 0 {
		return database{}, false
	}
	return databases[i], true
}

// checkDatabases reports the first name that is unknown or named twice.
func checkDatabases(names []string) error {
	for i, n := range names {
		if _, ok := lookupDatabase(n); !ok {
			return fmt.Errorf("demo: database %q: want one of %s", n, strings.Join(DatabaseNames(), ", "))
		}
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("demo: database %q named twice", n)
		}
	}
	return nil
}

// DBResult is the outcome of a database leg: the stock client, then the
// rstpool one, each through its own proxy.
type DBResult struct {
	Name    string         `json:"name"`
	Client  string         `json:"client"` // the Go client
	Addr    string         `json:"addr"`
	Skipped string         `json:"skipped"` // why the leg did not run; empty when it ran
	Clients []ClientResult `json:"clients"`
}

// A dbLeg is a database about to run: reachable, with a direct client for
// the tally, or skipped.
type dbLeg struct {
	db      database
	skipped string
	admin   store  // a stock client straight to the server
	run     string // tags this run's writes
}

// reachDatabases connects to every database of cfg, directly, and prepares
// its writes. With cfg.RequireDatabases, one that cannot be reached is an
// error; else its leg is skipped.
func reachDatabases(ctx context.Context, cfg Config) ([]*dbLeg, error) {
	run, err := runID()
	if err != nil {
		return nil, err
	}
	var legs []*dbLeg
	for _, name := range cfg.Databases {
		db, _ := lookupDatabase(name)
		l := &dbLeg{db: db, run: run}
		if l.admin, err = db.reach(ctx); err != nil {
			if cfg.RequireDatabases {
				closeDBLegs(legs)
				return nil, fmt.Errorf("demo: database %s required but not reachable at %s: %w", name, db.addr, err)
			}
			l.skipped = fmt.Sprintf("not reachable at %s (%v): leg skipped; start it (%s)", db.addr, err, db.start)
		}
		legs = append(legs, l)
	}
	return legs, nil
}

// reach opens a stock client straight to the server, prepares the writes
// and runs a read.
func (db database) reach(ctx context.Context) (store, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := db.open(db.addr, nil, 1)
	if err != nil {
		return nil, err
	}
	if err = s.prepare(ctx); err == nil {
		err = s.read(ctx, "reach", 0)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func closeDBLegs(legs []*dbLeg) {
	for _, l := range legs {
		if l.admin != nil {
			l.admin.close()
		}
	}
}

// runID returns a random tag for this run's writes, so that runs sharing a
// server never count each other's.
func runID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("demo: run id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// dbChain is a database's path: the proxy as a load balancer. The
// databases keep idle sessions for hours by default.
func dbChain(cfg Config) rstpool.Chain {
	return rstpool.Chain{{Name: "lb", IdleTimeout: cfg.LBIdle}}
}

// clients returns the stock and the rstpool client of the leg, each over its
// own proxy in front of the database.
func (l *dbLeg) clients(cfg Config, sched []Burst) ([]*client, error) {
	sched = dbSchedule(sched)
	var out []*client
	for _, name := range []string{"stock", "rstpool"} {
		c, err := l.client(cfg, sched, name)
		if err != nil {
			closeClients(out)
			return nil, fmt.Errorf("demo: %s %s client: %w", l.db.name, name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func (l *dbLeg) client(cfg Config, sched []Burst, name string) (*client, error) {
	e, err := startEnv(cfg, l.db.addr)
	if err != nil {
		return nil, err
	}
	var d *rstpool.Dialer
	retry := retryFunc(once)
	if name == "rstpool" {
		d, retry = &rstpool.Dialer{Chain: dbChain(cfg)}, l.db.retry
	}
	s, err := l.db.open(e.proxy.Addr(), d, cfg.Concurrency)
	if err != nil {
		e.close()
		return nil, err
	}
	tag := l.run + "-" + name
	return &client{
		name: name, about: s.about(), idle: s.idle(), chain: dbChain(cfg), sched: sched, env: e,
		send:  dbSender(s, tag, retry),
		close: s.close,
		tally: func(ctx context.Context) (ServerTally, error) {
			applied, err := l.admin.applied(ctx, tag)
			_ = l.admin.forget(ctx, tag)
			return tallyWrites(applied), err
		},
	}, nil
}

// dbSchedule is sched with database kinds: the same ids and gaps.
func dbSchedule(sched []Burst) []Burst {
	out := make([]Burst, len(sched))
	for i, b := range sched {
		out[i] = Burst{Gap: b.Gap, Requests: slices.Clone(b.Requests)}
		for j := range out[i].Requests {
			out[i].Requests[j].Kind = b.Requests[j].Kind.dbKind()
		}
	}
	return out
}

// dbSender sends reads and writes through s, each call bounded by
// requestTimeout and run through retry.
func dbSender(s store, tag string, retry retryFunc) sender {
	return func(r Request, attempts *int32) error {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		op := s.read
		if r.Kind == KindWrite {
			op = s.write
		}
		return retry(ctx, r.Kind.Idempotent(), func(ctx context.Context) error {
			atomic.AddInt32(attempts, 1)
			return op(ctx, tag, r.ID)
		})
	}
}

// countRows collects the (id, times applied) rows of a store's applied
// query, from pgx's rows or database/sql's alike.
func countRows(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}) (map[int]int, error) {
	out := map[int]int{}
	for rows.Next() {
		var id, n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}
