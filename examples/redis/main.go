// Command redis talks to Redis through go-redis with connections dialed
// by an rstpool.Dialer (Options.Dialer) and retired before the declared
// hops' idle timeouts (Options.ConnMaxIdleTime = the Dialer's idle limit,
// from Dialer.Limits).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rstpool/rstpool"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "Redis address")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *addr); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer, addr string) error {
	// Declare the hops from the client to the server: an Azure load
	// balancer (4 minutes; it passes the connection through) and Redis,
	// which closes clients idle longer than its timeout setting (0 by
	// default: never; 300 s here). The idle limit is ¾ of the smallest.
	d := &rstpool.Dialer{Chain: rstpool.Chain{
		rstpool.MustHop("azure-lb"),
		{Name: "redis timeout", IdleTimeout: 300 * time.Second},
	}}
	idle, _, _ := d.Limits() // the Dialer's idle limit, defaults and chain applied
	rdb := redis.NewClient(&redis.Options{Addr: addr, Dialer: d.DialContext, ConnMaxIdleTime: idle,
		DialerRetries: 1}) // the Dialer already retries refused connects
	defer rdb.Close()
	pong, err := rdb.Ping(ctx).Result()
	if err != nil {
		return fmt.Errorf("ping: %w (class %s)", err, rstpool.Classify(err))
	}
	fmt.Fprintf(w, "%s, idle limit %v\n", pong, idle)
	return nil
}
