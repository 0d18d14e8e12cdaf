// Command pgx queries PostgreSQL through a pgxpool configured by rstpgx:
// connections dial through an rstpool.Dialer, retire before the declared
// hops' idle timeouts, and are checked at every acquire.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstpgx"
)

func main() {
	url := flag.String("url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL URL")
	flag.Parse()
	if err := run(context.Background(), *url); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, url string) error {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	// Declare what sits between the client and the server: here, a
	// PgBouncer-like proxy that drops clients idle for 10 minutes.
	d := &rstpool.Dialer{Chain: rstpool.Chain{{Name: "proxy", IdleTimeout: 10 * time.Minute}}}
	rstpgx.Configure(cfg, d)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	var version string
	if err := pool.QueryRow(ctx, "select version()").Scan(&version); err != nil {
		return fmt.Errorf("query: %w (class %s)", err, rstpool.Classify(err))
	}
	fmt.Printf("%s\nidle limit %s, lifetime %s\n", version, cfg.MaxConnIdleTime, cfg.MaxConnLifetime)
	return nil
}
