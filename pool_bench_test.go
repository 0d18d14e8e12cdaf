package rstpool

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/puddle/v2"
	"github.com/stretchr/testify/require"
)

// benchListen starts a loopback server that accepts connections and holds
// them open, reading and discarding.
func benchListen(b *testing.B) string {
	ln := listen(b, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
	return ln.Addr().String()
}

// BenchmarkPoolAcquireRelease compares Acquire+Release on a warm pool with
// raw puddle holding the same tracked connections, and with database/sql's
// pool (DB.Conn and Conn.Close) over a trivial driver on plain loopback
// connections:
//
//	go test -run '^$' -bench PoolAcquireRelease -count 10 > pool.txt
//	benchstat -col /pool pool.txt
func BenchmarkPoolAcquireRelease(b *testing.B) {
	addr := benchListen(b)
	size := int32(max(4, runtime.GOMAXPROCS(0)))
	dial := func(ctx context.Context) (net.Conn, error) { return noRetry().DialContext(ctx, "tcp", addr) }
	for _, mode := range []string{"serial", "parallel"} {
		b.Run("mode="+mode+"/pool=puddle", func(b *testing.B) {
			pp, err := puddle.NewPool(&puddle.Config[net.Conn]{Constructor: dial,
				Destructor: func(c net.Conn) { c.Close() }, MaxSize: size})
			require.NoError(b, err)
			defer pp.Close()
			benchWarmPuddle(b, pp, size)
			benchLoop(b, mode, func() {
				res, err := pp.Acquire(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				res.Release()
			})
		})
		b.Run("mode="+mode+"/pool=rstpool", func(b *testing.B) {
			p, err := NewPool(PoolConfig{Dial: dial, MaxSize: size, UpkeepInterval: -1})
			require.NoError(b, err)
			defer p.Close(context.Background())
			benchWarmPool(b, p, size)
			benchLoop(b, mode, func() {
				h, err := p.Acquire(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				h.Release()
			})
		})
		b.Run("mode="+mode+"/pool=sql", func(b *testing.B) {
			srv := sqltListen(b)
			db := sql.OpenDB(&sqltConnector{addr: srv.addr(), shape: "basic"})
			defer db.Close()
			db.SetMaxOpenConns(int(size))
			db.SetMaxIdleConns(int(size))
			benchWarmSQL(b, db, int(size))
			benchLoop(b, mode, func() {
				c, err := db.Conn(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				_ = c.Close()
			})
		})
	}
}

// benchWarmSQL opens n connections in db and returns them to its pool.
func benchWarmSQL(b *testing.B, db *sql.DB, n int) {
	cs := make([]*sql.Conn, n)
	for i := range cs {
		c, err := db.Conn(context.Background())
		require.NoError(b, err)
		cs[i] = c
	}
	for _, c := range cs {
		require.NoError(b, c.Close())
	}
}

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

func benchWarmPuddle(b *testing.B, pp *puddle.Pool[net.Conn], n int32) {
	for range n {
		require.NoError(b, pp.CreateResource(context.Background()))
	}
}

func benchWarmPool(b *testing.B, p *Pool, n int32) {
	hs := make([]PooledConn, n)
	for i := range hs {
		h, err := p.Acquire(context.Background())
		require.NoError(b, err)
		hs[i] = h
	}
	for _, h := range hs {
		h.Release()
	}
}

// BenchmarkPoolUpkeepRound measures one visit of upkeep to a pool of n
// idle connections, each due its peek (no ping due): its cost grows with
// the idle connections; the process's one upkeep makes it once per
// UpkeepInterval per pool, and no goroutine waits between visits.
func BenchmarkPoolUpkeepRound(b *testing.B) {
	addr := benchListen(b)
	for _, n := range []int32{10, 100, 1000} {
		b.Run(fmt.Sprint("idle=", n), func(b *testing.B) {
			p, err := NewPool(PoolConfig{Addr: addr, Dialer: noRetry(), MaxSize: n, UpkeepInterval: -1})
			require.NoError(b, err)
			defer p.Close(context.Background())
			benchWarmPool(b, p, n)
			p.s.upkeepInterval = time.Nanosecond // every connection is due its peek at every visit
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p.visit(mono())
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/conn")
			require.Equal(b, n, p.Stats().IdleConns)
		})
	}
}
