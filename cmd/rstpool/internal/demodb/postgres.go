package demodb

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/cmd/rstpool/internal/demo"
	"github.com/rstpool/rstpool/rstpgx"
)

// postgresDB is PostgreSQL through pgx's pool: stock pgxpool, and pgxpool
// with rstpgx.Configure and each call in rstpgx.Retry.
var postgresDB = demo.Database{
	Name: "postgres", Addr: "127.0.0.1:5432", Client: "pgx/v5 pgxpool",
	Start: "user postgres, trust, database test: pg_ctlcluster 15 main start, or " +
		"docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=test postgres",
	Recipe: `CLIENTS.md "pgx and pgxpool"`,
	Open:   openPostgres,
	Retry:  rstpgx.Retry,
}

// The table of the SQL databases' counted writes, created when missing;
// each run deletes its own rows at the end.
const sqlTable = "rstpool_demo_writes"

type pgStore struct {
	pool  *pgxpool.Pool
	setup string
	limit time.Duration
}

func openPostgres(addr string, d *rstpool.Dialer, size int) (demo.Store, error) {
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

func (s *pgStore) About() string       { return s.setup }
func (s *pgStore) Idle() time.Duration { return s.limit }
func (s *pgStore) Close()              { s.pool.Close() }

func (s *pgStore) Prepare(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+sqlTable+" (tag text NOT NULL, id integer NOT NULL)")
	if err == nil {
		_, err = s.pool.Exec(ctx, "CREATE INDEX IF NOT EXISTS "+sqlTable+"_tag ON "+sqlTable+" (tag, id)")
	}
	return err
}

func (s *pgStore) Read(ctx context.Context, tag string, id int) error {
	var n int
	return s.pool.QueryRow(ctx, "SELECT count(*) FROM "+sqlTable+" WHERE tag = $1 AND id = $2", tag, id).Scan(&n)
}

func (s *pgStore) Write(ctx context.Context, tag string, id int) error {
	_, err := s.pool.Exec(ctx, "INSERT INTO "+sqlTable+" (tag, id) VALUES ($1, $2)", tag, id)
	return err
}

func (s *pgStore) Applied(ctx context.Context, tag string) (map[int]int, error) {
	rows, err := s.pool.Query(ctx, "SELECT id, count(*) FROM "+sqlTable+" WHERE tag = $1 GROUP BY id", tag)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return demo.CountRows(rows)
}

func (s *pgStore) Forget(ctx context.Context, tag string) error {
	_, err := s.pool.Exec(ctx, "DELETE FROM "+sqlTable+" WHERE tag = $1", tag)
	return err
}
