package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rstpool/rstpool"
)

// A Database is a server a database leg runs against with its usual Go
// client, once stock and once wired to rstpool as README.md shows. The leg
// sends reads and writes the server counts (an INSERT of the request's id,
// HINCRBY of its field), so a write applied twice shows. The legs live in
// package demodb, which registers them: the demo itself needs no driver.
type Database struct {
	Name   string // as --with names it: one of Known
	Addr   string // where it listens: its default local address
	Client string // the Go client, for the report
	Start  string // how to start one, for the skip message
	Recipe string // where the rstpool wiring is documented, for the report

	// Open returns the client of the server at addr with a pool of size
	// connections: stock when d is nil, else dialing through d. It does
	// not connect.
	Open func(addr string, d *rstpool.Dialer, size int) (Store, error)
	// Retry is how the rstpool client runs one call (rstpool.Retry,
	// rstpgx.Retry, or Once where the driver retries by itself).
	Retry RetryFunc
}

// A RetryFunc runs fn, maybe once more; idempotent says whether running it
// twice is safe.
type RetryFunc func(ctx context.Context, idempotent bool, fn func(context.Context) error) error

// Once runs fn once: a client with no retry but its driver's own.
func Once(ctx context.Context, _ bool, fn func(context.Context) error) error { return fn(ctx) }

// A Store is one client of a database: a driver's pool.
type Store interface {
	About() string                 // how the client is set up
	Idle() time.Duration           // its idle limit; 0: none
	Prepare(context.Context) error // creates what the writes need
	Read(ctx context.Context, tag string, id int) error
	Write(ctx context.Context, tag string, id int) error // not idempotent: the server counts it
	Applied(ctx context.Context, tag string) (map[int]int, error)
	Forget(ctx context.Context, tag string) error // deletes the writes of tag
	Close()
}

// Known are the database legs there are, in the order the report lists
// them; a build has those that are registered (package demodb, which the
// command links in).
var Known = []string{"postgres", "mysql", "redis"}

// databases are the legs registered, in the order of Known.
var databases []Database

// RegisterDatabase adds a leg. Its name must be one of Known, once.
func RegisterDatabase(db Database) {
	i := slices.Index(Known, db.Name)
	if i < 0 || slices.ContainsFunc(databases, func(d Database) bool { return d.Name == db.Name }) {
		panic("demo: database leg " + db.Name + " unknown or registered twice")
	}
	databases = append(databases, db)
	slices.SortFunc(databases, func(a, b Database) int {
		return slices.Index(Known, a.Name) - slices.Index(Known, b.Name)
	})
}

// DatabaseNames returns the names Config.Databases accepts in this build.
func DatabaseNames() []string {
	var names []string
	for _, db := range databases {
		names = append(names, db.Name)
	}
	return names
}

func lookupDatabase(name string) (Database, bool) {
	i := slices.IndexFunc(databases, func(db Database) bool { return db.Name == name })
	if i < 0 {
		return Database{}, false
	}
	return databases[i], true
}

// ErrNotBuiltIn is the error of a known leg this build lacks.
var ErrNotBuiltIn = errors.New("the database legs are not in this build: link package demodb into the command")

// checkDatabases reports the first name that is unknown, not in this
// build, or named twice.
func checkDatabases(names []string) error {
	for i, n := range names {
		if _, ok := lookupDatabase(n); !ok {
			if slices.Contains(Known, n) {
				return fmt.Errorf("demo: database %q: %w", n, ErrNotBuiltIn)
			}
			return fmt.Errorf("demo: database %q: want one of %s", n, strings.Join(Known, ", "))
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
	db      Database
	skipped string
	admin   Store  // a stock client straight to the server
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
		if l.admin, err = db.Reach(ctx); err != nil {
			if cfg.RequireDatabases {
				closeDBLegs(legs)
				return nil, fmt.Errorf("demo: database %s required but not reachable at %s: %w", name, db.Addr, err)
			}
			l.skipped = fmt.Sprintf("not reachable at %s (%v): leg skipped; start it (%s)", db.Addr, err, db.Start)
		}
		legs = append(legs, l)
	}
	return legs, nil
}

// Reach opens a stock client straight to the server, prepares the writes
// and runs a read.
func (db Database) Reach(ctx context.Context) (Store, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := db.Open(db.Addr, nil, 1)
	if err != nil {
		return nil, err
	}
	if err = s.Prepare(ctx); err == nil {
		err = s.Read(ctx, "reach", 0)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func closeDBLegs(legs []*dbLeg) {
	for _, l := range legs {
		if l.admin != nil {
			l.admin.Close()
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
			return nil, fmt.Errorf("demo: %s %s client: %w", l.db.Name, name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func (l *dbLeg) client(cfg Config, sched []Burst, name string) (*client, error) {
	e, err := startEnv(cfg, l.db.Addr)
	if err != nil {
		return nil, err
	}
	var d *rstpool.Dialer
	retry := RetryFunc(Once)
	if name == "rstpool" {
		d, retry = &rstpool.Dialer{Chain: dbChain(cfg)}, l.db.Retry
	}
	s, err := l.db.Open(e.proxy.Addr(), d, cfg.Concurrency)
	if err != nil {
		e.close()
		return nil, err
	}
	tag := l.run + "-" + name
	return &client{
		name: name, about: s.About(), idle: s.Idle(), chain: dbChain(cfg), sched: sched, env: e,
		send:  dbSender(s, tag, retry),
		close: s.Close,
		tally: func(ctx context.Context) (ServerTally, error) {
			applied, err := l.admin.Applied(ctx, tag)
			_ = l.admin.Forget(ctx, tag)
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
func dbSender(s Store, tag string, retry RetryFunc) sender {
	return func(r Request, attempts *int32) error {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		op := s.Read
		if r.Kind == KindWrite {
			op = s.Write
		}
		return retry(ctx, r.Kind.Idempotent(), func(ctx context.Context) error {
			atomic.AddInt32(attempts, 1)
			return op(ctx, tag, r.ID)
		})
	}
}

// CountRows collects the (id, times applied) rows of a Store's Applied
// query, from pgx's rows or database/sql's alike.
func CountRows(rows interface {
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
