package rstpgx_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstpgx"
)

// Configure a pgxpool so that it dials through rstpool, retires
// connections below PostgreSQL's idle_session_timeout and the proxy's idle
// timeout, and checks each connection at acquire with a peek.
func ExampleConfigure() {
	cfg, err := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:5432/postgres")
	if err != nil {
		panic(err)
	}
	d := &rstpool.Dialer{Chain: rstpool.Chain{
		rstpool.MustHop("pgbouncer"),
		{Name: "idle_session_timeout", IdleTimeout: 5 * time.Minute},
	}}
	rstpgx.Configure(cfg, d)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	ctx := context.Background()
	var one int
	err = rstpgx.Retry(ctx, true, func(ctx context.Context) error {
		return pool.QueryRow(ctx, "select 1").Scan(&one)
	})
	fmt.Println(one, err, cfg.MaxConnIdleTime)
}
