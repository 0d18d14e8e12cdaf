package rstpgx

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/rstpool/rstpool"
)

// BenchmarkSelect1 compares SELECT 1 through a stock pgxpool and one
// configured by Configure: compare with benchstat -col /pool.
func BenchmarkSelect1(b *testing.B) {
	for _, mode := range []string{"stock", "rstpool"} {
		b.Run("pool="+mode, func(b *testing.B) {
			var d *rstpool.Dialer
			if mode == "rstpool" {
				d = &rstpool.Dialer{}
			}
			pool := newPool(b, fmt.Sprintf("rstpgx_bench_%d", os.Getpid()), d, 1)
			ctx := context.Background()
			var one int
			b.ReportAllocs()
			for b.Loop() {
				if err := pool.QueryRow(ctx, "select 1").Scan(&one); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckout measures the two checks a checkout may run: the peek
// (rstpool.Conn.Check) and pgx's Ping, one round trip.
func BenchmarkCheckout(b *testing.B) {
	pool := newPool(b, fmt.Sprintf("rstpgx_bench_%d", os.Getpid()), &rstpool.Dialer{}, 1)
	c, err := pool.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Release()
	rc := Tracked(c.Conn())
	b.Run("check=peek", func(b *testing.B) {
		for b.Loop() {
			if h, _ := rc.Check(); h != rstpool.HealthAlive {
				b.Fatal(h)
			}
		}
	})
	b.Run("check=ping", func(b *testing.B) {
		for b.Loop() {
			if err := c.Ping(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
