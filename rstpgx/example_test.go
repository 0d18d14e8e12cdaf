package rstpgx_test

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstpgx"
)

// Configure a pgxpool so that it dials through rstpool, retires
// connections below PgBouncer's client_idle_timeout, and checks each
// connection at acquire with a peek. PgBouncer in transaction mode ends the
// client's connection (the pgbouncer-tx preset); its client_idle_timeout
// here is 10 minutes. The pool connects on first use: nothing is dialed
// here.
func ExampleConfigure() {
	cfg, err := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:6432/test")
	if err != nil {
		panic(err)
	}
	d := &rstpool.Dialer{Chain: rstpool.Chain{rstpool.MustHop("pgbouncer-tx").WithIdle(10 * time.Minute)}}
	rstpgx.Configure(cfg, d)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	fmt.Println("dials through rstpool:", cfg.ConnConfig.DialFunc != nil)
	fmt.Println("idle limit:", cfg.MaxConnIdleTime)
	fmt.Println("health check every:", cfg.HealthCheckPeriod)
	fmt.Println("checked at acquire:", cfg.PrepareConn != nil)
	fmt.Println("connections:", pool.Stat().TotalConns())
	// Output:
	// dials through rstpool: true
	// idle limit: 7m30s
	// health check every: 1m0s
	// checked at acquire: true
	// connections: 0
}

// Retry runs work once more when its connection failed under it and a
// repeat cannot run a write twice: a read (idempotent) is repeated; a write
// is repeated only when Retry saw every connection the work used and none
// of them wrote a byte, which it cannot here, where no pool set up by
// Configure or OpenDB handed out a connection.
func ExampleRetry() {
	reset := fmt.Errorf("query: %w", syscall.ECONNRESET) // the server went away under it
	for _, idempotent := range []bool{true, false} {
		runs := 0
		err := rstpgx.Retry(context.Background(), idempotent, func(ctx context.Context) error {
			runs++
			if runs == 1 {
				return reset
			}
			return nil
		})
		fmt.Printf("idempotent %v: %d run(s), %v\n", idempotent, runs, err)
	}
	// Output:
	// idempotent true: 2 run(s), <nil>
	// idempotent false: 1 run(s), query: connection reset by peer
}
