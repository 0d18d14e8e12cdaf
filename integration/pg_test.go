package integration

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstpgx"
	"github.com/stretchr/testify/require"
)

// pgAddr is the PostgreSQL server: RSTPOOL_PG_ADDR, else the local one.
func pgAddr() string { return envOr("RSTPOOL_PG_ADDR", "127.0.0.1:5432") }

func pgURL(addr, user, app string) string {
	return fmt.Sprintf("postgres://%s@%s/test?sslmode=disable&application_name=%s", user, addr, app)
}

// pgAdmin opens a superuser connection, skipping when the server is down.
func pgAdmin(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgURL(pgAddr(), "postgres", "rstpool_admin"))
	if err != nil {
		unreachable(t, "PostgreSQL at "+pgAddr(), err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func pgExec(t testing.TB, c *pgx.Conn, q string, args ...any) {
	t.Helper()
	_, err := c.Exec(context.Background(), q, args...)
	require.NoError(t, err, q)
}

// pgScenario is a scenario's own role, application name and table, removed
// at the end.
type pgScenario struct {
	admin *pgx.Conn
	role  string
	app   string
	table string
}

// newPGScenario creates a login role (with the given role settings, such
// as idle_session_timeout) and a table it may write.
func newPGScenario(t *testing.T, name string, roleSettings ...string) *pgScenario {
	t.Helper()
	s := &pgScenario{admin: pgAdmin(t), role: fmt.Sprintf("rstpool_%s_%d", name, os.Getpid())}
	s.app, s.table = s.role, s.role
	pgExec(t, s.admin, "create role "+s.role+" login")
	t.Cleanup(func() {
		s.admin = pgAdmin(t) // afresh: a restart test may have ended the first
		pgExec(t, s.admin, "select pg_terminate_backend(pid) from pg_stat_activity where usename = $1", s.role)
		pgExec(t, s.admin, "drop table if exists "+s.table)
		time.Sleep(50 * time.Millisecond)
		pgExec(t, s.admin, "drop role if exists "+s.role)
	})
	for _, set := range roleSettings {
		pgExec(t, s.admin, "alter role "+s.role+" set "+set)
	}
	pgExec(t, s.admin, "create table "+s.table+" (id bigint primary key)")
	pgExec(t, s.admin, "grant select, insert on "+s.table+" to "+s.role)
	return s
}

// reset empties the table between the stock and the rstpool run.
func (s *pgScenario) reset(t *testing.T) { pgExec(t, s.admin, "truncate "+s.table) }

// ids lists the ids in the scenario's table.
func (s *pgScenario) ids(t *testing.T) []int64 {
	rows, err := s.admin.Query(context.Background(), "select id from "+s.table)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return ids
}

// killAll terminates every backend of the scenario's role.
func (s *pgScenario) killAll(t *testing.T) {
	pgExec(t, s.admin, "select pg_terminate_backend(pid) from pg_stat_activity where usename = $1", s.role)
}

// pgxpoolTarget opens a pgxpool, stock (d nil) or configured by rstpgx.
func (s *pgScenario) pgxpoolTarget(t *testing.T, addr string, d *rstpool.Dialer, size int32) target {
	cfg, err := pgxpool.ParseConfig(pgURL(addr, s.role, s.app))
	require.NoError(t, err)
	cfg.MaxConns = size
	if d != nil {
		rstpgx.Configure(cfg, d)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return target{
		read: func(ctx context.Context) error {
			var one int
			return pool.QueryRow(ctx, "select 1").Scan(&one)
		},
		write: func(ctx context.Context, id int64) error {
			_, err := pool.Exec(ctx, "insert into "+s.table+" values ($1)", id)
			return err
		},
		rows: func(ctx context.Context) (n int64, err error) {
			return n, s.admin.QueryRow(ctx, "select count(*) from "+s.table).Scan(&n)
		},
	}
}

// stdlibTarget opens database/sql through pgx's stdlib, stock or wrapped.
func (s *pgScenario) stdlibTarget(t *testing.T, addr string, d *rstpool.Dialer, size int) target {
	cc, err := pgx.ParseConfig(pgURL(addr, s.role, s.app))
	require.NoError(t, err)
	var db *sql.DB
	if d != nil {
		db = rstpgx.OpenDB(*cc, d)
	} else {
		db = stdlib.OpenDB(*cc)
	}
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(size)
	t.Cleanup(func() { db.Close() })
	return sqlTarget(db, s.table, "$1", func(ctx context.Context) (n int64, err error) {
		return n, s.admin.QueryRow(ctx, "select count(*) from "+s.table).Scan(&n)
	})
}

// sqlTarget runs the workload through database/sql.
func sqlTarget(db *sql.DB, table, param string, rows func(context.Context) (int64, error)) target {
	return target{
		read: func(ctx context.Context) error {
			var one int
			return db.QueryRowContext(ctx, "select 1").Scan(&one)
		},
		write: func(ctx context.Context, id int64) error {
			_, err := db.ExecContext(ctx, "insert into "+table+" values ("+param+")", id)
			return err
		},
		rows: rows,
	}
}

// pgOpen opens the kind of client a scenario names.
func (s *pgScenario) open(t *testing.T, kind, addr string, d *rstpool.Dialer) target {
	if kind == "stdlib" {
		return s.stdlibTarget(t, addr, d, 8)
	}
	return s.pgxpoolTarget(t, addr, d, 8)
}

func dialerIf(ours bool, d *rstpool.Dialer) *rstpool.Dialer {
	if ours {
		return d
	}
	return nil
}

func TestPGIdleSessionTimeout(t *testing.T) {
	for _, kind := range []string{"pgxpool", "stdlib"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel() // the two legs share nothing but the server: half the time
			s := newPGScenario(t, "idle_"+kind, "idle_session_timeout = '500ms'")
			// The chain declares the server's idle timeout: rstpool retires
			// connections at 3/4 of it.
			d := &rstpool.Dialer{Chain: rstpool.Chain{{Name: "postgres idle_session_timeout", IdleTimeout: 500 * time.Millisecond}}}
			sideBySide(t, "PostgreSQL idle_session_timeout 500ms, "+kind, kind == "pgxpool", func(t *testing.T, ours bool) *result {
				s.reset(t)
				tg := s.open(t, kind, pgAddr(), dialerIf(ours, d))
				r := burst(tg, 8) // fills the pool
				r.add(gaps(tg, 8, 6, 550*time.Millisecond, 950*time.Millisecond))
				finish(t, tg, r)
				return r
			})
		})
	}
}

func TestPGBackendsKilledWhileIdle(t *testing.T) {
	for _, kind := range []string{"pgxpool", "stdlib"} {
		t.Run(kind, func(t *testing.T) {
			s := newPGScenario(t, "kill_"+kind)
			sideBySide(t, "PostgreSQL pg_terminate_backend all idle, "+kind, true, func(t *testing.T, ours bool) *result {
				s.reset(t)
				tg := s.open(t, kind, pgAddr(), dialerIf(ours, &rstpool.Dialer{}))
				total := &result{}
				for range 3 {
					total.add(burst(tg, 8)) // fills the pool
					s.killAll(t)
					time.Sleep(100 * time.Millisecond)
					total.add(burst(tg, 8))
				}
				finish(t, tg, total)
				return total
			})
		})
	}
}

func (r *result) add(o *result) {
	r.reads += o.reads
	r.readErrs += o.readErrs
	r.writes += o.writes
	r.writeErrs += o.writeErrs
	if e := o.firstErr.Load(); e != nil {
		r.firstErr.CompareAndSwap(nil, e)
	}
}
