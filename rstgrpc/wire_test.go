package rstgrpc_test

import (
	"bytes"
	"net"
	"sync"

	"golang.org/x/net/http2"
)

// tapListener records what a real gRPC server reads and writes on each
// connection it accepts, so a test can read the HTTP/2 frames off the wire:
// the pings clients sent and the GOAWAYs the server answered with.
type tapListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*tapConn
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &tapConn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, tc)
	l.mu.Unlock()
	return tc, nil
}

// tapConn copies the bytes the server reads (from the client) and writes.
type tapConn struct {
	net.Conn
	mu      sync.Mutex
	in, out bytes.Buffer
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.in.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	c.out.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

// wireStats is what the frames on a server's connections show.
type wireStats struct {
	Conns        int            // connections the server accepted
	Pings        int            // keepalive PINGs clients sent (acks and BDP pings excluded)
	TooManyPings int            // connections closed with GOAWAY ENHANCE_YOUR_CALM "too_many_pings"
	GoAways      map[string]int // connections that got a GOAWAY, by its debug data
}

// stats parses every connection's frames so far. A frame cut at the end of
// a buffer (the connection is still open) ends the parse of that buffer.
func (l *tapListener) stats() wireStats {
	l.mu.Lock()
	conns := append([]*tapConn(nil), l.conns...)
	l.mu.Unlock()
	s := wireStats{Conns: len(conns), GoAways: map[string]int{}}
	for _, c := range conns {
		c.mu.Lock()
		in := bytes.TrimPrefix(bytes.Clone(c.in.Bytes()), []byte(http2.ClientPreface))
		out := bytes.Clone(c.out.Bytes())
		c.mu.Unlock()
		forEachFrame(in, func(f http2.Frame) {
			// grpc-go's keepalive ping carries zeros; its flow-control
			// (BDP) pings follow data from the server and earn no strike.
			if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() && p.Data == [8]byte{} {
				s.Pings++
			}
		})
		seen := map[string]bool{}
		forEachFrame(out, func(f http2.Frame) {
			g, ok := f.(*http2.GoAwayFrame)
			if !ok || seen[string(g.DebugData())] {
				return
			}
			seen[string(g.DebugData())] = true
			s.GoAways[string(g.DebugData())]++
			if g.ErrCode == http2.ErrCodeEnhanceYourCalm && string(g.DebugData()) == "too_many_pings" {
				s.TooManyPings++
			}
		})
	}
	return s
}

func forEachFrame(b []byte, fn func(http2.Frame)) {
	fr := http2.NewFramer(nil, bytes.NewReader(b))
	fr.SetMaxReadFrameSize(1 << 24)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		fn(f)
	}
}
