package rstpgx

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rstpool/rstpool"
)

// The benchmarks compare a stock pgxpool with one configured by Configure
// (a zero Dialer) in one run: benchstat -col /client.

// BenchmarkSelect1 is SELECT 1 through the pool (its acquire included):
// serially on a pool of one, in parallel on a pool of GOMAXPROCS (at
// least 4).
func BenchmarkSelect1(b *testing.B) {
	for _, mode := range []string{"serial", "parallel"} {
		for _, client := range []string{"stock", "rstpool"} {
			b.Run("mode="+mode+"/client="+client, func(b *testing.B) {
				pool := benchPool(b, client, mode, nil)
				ctx := context.Background()
				benchLoop(b, mode, func() {
					var one int
					if err := pool.QueryRow(ctx, "select 1").Scan(&one); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
	}
}

// BenchmarkCheckout is Acquire and Release on a warm pool. state=hot: the
// connection was released a moment ago, so stock pgxpool hands it out as
// it is and rstpgx peeks at it. state=idle: a connection idle over a
// second, which stock pgxpool pings (a round trip) before handing it out;
// the benchmark cannot wait a second per checkout, so stock's ShouldPing
// is made to answer true, which is what it answers for such a connection.
// rstpgx pings such a connection too, after its peek: pingAfter is made
// to answer so.
func BenchmarkCheckout(b *testing.B) {
	pingAlways := func(cfg *pgxpool.Config) {
		cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return true }
	}
	for _, state := range []string{"hot", "idle"} {
		for _, mode := range []string{"serial", "parallel"} {
			for _, client := range []string{"stock", "rstpool"} {
				b.Run("state="+state+"/mode="+mode+"/client="+client, func(b *testing.B) {
					var tweak func(*pgxpool.Config)
					if state == "idle" && client == "stock" {
						tweak = pingAlways
					}
					if state == "idle" && client == "rstpool" {
						defer func(d time.Duration) { pingAfter = d }(pingAfter)
						pingAfter = time.Nanosecond
					}
					pool := benchPool(b, client, mode, tweak)
					ctx := context.Background()
					benchLoop(b, mode, func() {
						c, err := pool.Acquire(ctx)
						if err != nil {
							b.Fatal(err)
						}
						c.Release()
					})
				})
			}
		}
	}
}

// BenchmarkCheck measures the two checks a checkout may run on one
// connection: the peek (rstpool.Conn.Check) and pgx's Ping, one round
// trip: benchstat -col /check.
func BenchmarkCheck(b *testing.B) {
	pool := newPool(b, benchApp(), &rstpool.Dialer{}, 1)
	c, err := pool.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Release()
	rc := Tracked(c.Conn())
	b.Run("check=peek", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if h, _ := rc.Check(); h != rstpool.HealthAlive {
				b.Fatal(h)
			}
		}
	})
	b.Run("check=ping", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Ping(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchApp() string { return fmt.Sprintf("rstpgx_bench_%d", os.Getpid()) }

// benchPool opens a warm pool, stock or configured by Configure: one
// connection for serial runs, GOMAXPROCS (at least 4) for parallel ones.
func benchPool(b *testing.B, client, mode string, tweak func(*pgxpool.Config)) *pgxpool.Pool {
	size := int32(1)
	if mode == "parallel" {
		size = int32(max(4, runtime.GOMAXPROCS(0)))
	}
	var d *rstpool.Dialer
	if client == "rstpool" {
		d = &rstpool.Dialer{}
	}
	pool := newPoolWith(b, benchApp(), d, size, tweak)
	ctx := context.Background()
	cs := make([]*pgxpool.Conn, size)
	for i := range cs {
		c, err := pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		cs[i] = c
	}
	for _, c := range cs {
		c.Release()
	}
	return pool
}

// benchLoop runs op b.N times, serially or from GOMAXPROCS goroutines.
func benchLoop(b *testing.B, mode string, op func()) {
	b.ReportAllocs()
	b.ResetTimer()
	if mode == "serial" {
		for b.Loop() {
			op()
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			op()
		}
	})
}
