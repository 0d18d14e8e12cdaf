// Command redis talks to Redis through go-redis with connections dialed
// by an rstpool.Dialer (Options.Dialer) and retired before the declared
// hops' idle timeouts (Options.ConnMaxIdleTime).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rstpool/rstpool"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "Redis address")
	flag.Parse()
	if err := run(context.Background(), *addr); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr string) error {
	// Redis's own timeout setting (0 by default: never) and a load
	// balancer in between.
	d := &rstpool.Dialer{Chain: rstpool.Chain{{Name: "lb", IdleTimeout: 60 * time.Second, Middlebox: true}}}
	c := redis.NewClient(&redis.Options{
		Addr:            addr,
		Dialer:          d.DialContext,
		ConnMaxIdleTime: d.Chain.ClientIdleTimeout(),
	})
	defer c.Close()
	pong, err := c.Ping(ctx).Result()
	if err != nil {
		return fmt.Errorf("ping: %w (class %s)", err, rstpool.Classify(err))
	}
	fmt.Println(pong)
	return nil
}
