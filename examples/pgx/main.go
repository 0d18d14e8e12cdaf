// Command pgx queries PostgreSQL through a pgxpool configured by rstpgx:
// connections dial through an rstpool.Dialer, retire before the declared
// hops' idle timeouts, and are checked at every acquire.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstpgx"
)

func main() {
	url := flag.String("url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL URL")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *url); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer, url string) error {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	// Declare what sits between the client and the server: here only
	// PostgreSQL, which ends sessions idle for idle_session_timeout
	// (0 by default: never; 10 minutes here).
	d := &rstpool.Dialer{Chain: rstpool.Chain{{Name: "idle_session_timeout", IdleTimeout: 10 * time.Minute}}}
	rstpgx.Configure(cfg, d)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	// A read is idempotent: Retry runs it once more if its connection
	// failed under it (a restart, a reset).
	var version string
	err = rstpgx.Retry(ctx, true, func(ctx context.Context) error {
		return pool.QueryRow(ctx, "select version()").Scan(&version)
	})
	if err != nil {
		return fmt.Errorf("query: %w (class %s)", err, rstpool.Classify(err))
	}
	fmt.Fprintf(w, "%s\nidle limit %s\n", version, cfg.MaxConnIdleTime)
	return nil
}
