package faultproxy

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkForward measures echo throughput on one connection, directly and
// through the proxy; compare the two in the same run.
func BenchmarkForward(b *testing.B) {
	up := startEcho(b)
	p := startProxy(b, Config{}, up.addr())
	for _, bc := range []struct{ name, addr string }{{"direct", up.addr()}, {"proxy", p.Addr()}} {
		b.Run(bc.name, func(b *testing.B) { benchEcho(b, bc.addr) })
	}
}

func benchEcho(b *testing.B, addr string) {
	const chunk = 64 << 10
	c := dial(b, addr)
	require.NoError(b, c.SetDeadline(time.Now().Add(time.Minute)))
	out, in := make([]byte, chunk), make([]byte, chunk)
	werr := make(chan error, 1)
	b.SetBytes(chunk)
	b.ResetTimer()
	go func() { werr <- writeN(c, out, b.N) }()
	for range b.N {
		if _, err := io.ReadFull(c, in); err != nil {
			b.Fatal(err)
		}
	}
	require.NoError(b, <-werr)
}

func writeN(c net.Conn, buf []byte, n int) error {
	for range n {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
