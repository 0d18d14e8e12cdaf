package demo

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstpgx"
)

// postgresDB is PostgreSQL through pgx's pool: stock pgxpool, and pgxpool
// with rstpgx.Configure and each call in rstpgx.Retry.
var postgresDB = database{
	name: "postgres", addr: "127.0.0.1:5432", client: "pgx/v5 pgxpool",
	start: "user postgres, trust, database test: pg_ctlcluster 15 main start, or " +
		"docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=test postgres",
	open:  openPostgres,
	retry: rstpgx.Retry,
}

// The table of the SQL databases' counted writes, created when missing;
// each run deletes its own rows at the end.
const sqlTable = "rstpool_demo_writes"

type pgStore struct {
	pool  *pgxpool.Pool
	setup string
	limit time.Duration
}

func openPostgres(addr string, d *rstpool.Dialer, size int) (store, error) {
	cfg, err := pgxpool.ParseConfig("postgres://postgres@" + addr + "/test?sslmode=disable&application_name=rstpool-demo&connect_timeout=5")
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(size)
	s := &pgStore{setup: "pgxpool, defaults"}
	if d != nil {
		rstpgx.Configure(cfg, d)
		s.setup = "pgxpool with rstpgx.Configure(cfg, d), calls in rstpgx.Retry"
	}
	s.limit = cfg.MaxConnIdleTime
	if s.pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *pgStore) about() string       { return s.setup }
func (s *pgStore) idle() time.Duration { return s.limit }
func (s *pgStore) close()              { s.pool.Close() }

func (s *pgStore) prepare(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+sqlTable+" (tag text NOT NULL, id integer NOT NULL)")
	if err == nil {
		_, err = s.pool.Exec(ctx, "CREATE INDEX IF NOT EXISTS "+sqlTable+"_tag ON "+sqlTable+" (tag, id)")
	}
	return err
}

func (s *pgStore) read(ctx context.Context, tag string, id int) error {
	var n int
	return s.pool.QueryRow(ctx, "SELECT count(*) FROM "+sqlTable+" WHERE tag = $1 AND id = $2", tag, id).Scan(&n)
}

func (s *pgStore) write(ctx context.Context, tag string, id int) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO "+sqlTable+" (tag, id) VALUES ($1, $2)", tag, id)
	return err
}

func (s *pgStore) applied(ctx context.Context, tag string) (map[int]int, error) {
	rows, err := s.pool.Query(ctx, "SELECT id, count(*) FROM "+sqlTable+" WHERE tag = $1 GROUP BY id", tag)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return countRows(rows)
}

func (s *pgStore) forget(ctx context.Context, tag string) error {
	_, err := s.pool.Exec(ctx, "DELETE FROM "+sqlTable+" WHERE tag = $1", tag)
	return err
}
