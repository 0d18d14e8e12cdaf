package rstpool

import (
	"io"
	"net"
	"os"
	"testing"
)

// BenchmarkCheck measures the liveness check on an idle loopback
// connection: one non-blocking MSG_PEEK through RawConn.Control.
func BenchmarkCheck(b *testing.B) {
	ln := listen(b, echo)
	c, err := noRetry().Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	tc := c.(*Conn)
	b.ReportAllocs()
	for b.Loop() {
		if h, err := tc.Check(); h != HealthAlive || err != nil {
			b.Fatal(h, err)
		}
	}
}

// BenchmarkRoundTrip compares a 64-byte write and read back through an
// echo server on the raw *net.TCPConn and on the tracked Conn:
// benchstat -col /conn.
func BenchmarkRoundTrip(b *testing.B) {
	ln := listen(b, echo)
	for _, kind := range benchKinds {
		b.Run("conn="+kind, func(b *testing.B) {
			c := benchDial(b, kind, ln.Addr().String())
			roundTrips(b, c)
		})
	}
}

func roundTrips(b *testing.B, c net.Conn) {
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrite compares 64-byte writes to a server that discards them,
// which isolates the tracked Conn's bookkeeping from the echo's
// scheduling: benchstat -col /conn.
func BenchmarkWrite(b *testing.B) {
	ln := listen(b, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	for _, kind := range benchKinds {
		b.Run("conn="+kind, func(b *testing.B) {
			c := benchDial(b, kind, ln.Addr().String())
			msg := make([]byte, 64)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchDial dials addr with net.Dial ("raw") or a Dialer ("tracked").
func benchDial(b *testing.B, kind, addr string) net.Conn {
	dial := net.Dial
	if kind == "tracked" {
		dial = noRetry().Dial
	}
	c, err := dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// benchKinds is the order the sub-benchmarks run in; BENCH_ORDER=reverse
// runs the tracked conn first, to tell an order effect from a cost.
var benchKinds = func() []string {
	if os.Getenv("BENCH_ORDER") == "reverse" {
		return []string{"tracked", "raw"}
	}
	return []string{"raw", "tracked"}
}()
