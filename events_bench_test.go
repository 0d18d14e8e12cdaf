package rstpool

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
)

// BenchmarkObserver measures what an event costs: a dial that succeeds
// (EventDial at debug level) and one that is refused (EventDial with the
// failure, at info level), with no observer, a counting one and the slog
// adapter writing to io.Discard at info level. Compare with benchstat
// -col /observer.
func BenchmarkObserver(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go acceptLoop(ln, func(c net.Conn) { c.Close() })
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()
	var n atomic.Int64
	observers := []struct {
		name string
		o    Observer
	}{
		{"none", nil},
		{"count", func(Event) { n.Add(1) }},
		{"slog", LogEvents(slog.New(slog.NewTextHandler(io.Discard, nil)))},
	}
	for _, dial := range []struct{ name, addr string }{{"ok", ln.Addr().String()}, {"refused", refused}} {
		for _, o := range observers {
			b.Run("dial="+dial.name+"/observer="+o.name, func(b *testing.B) {
				d := &Dialer{RefusedRetry: -1, Observer: o.o}
				b.ReportAllocs()
				for b.Loop() {
					c, err := d.DialContext(context.Background(), "tcp", dial.addr)
					if err == nil {
						c.Close()
					}
				}
			})
		}
	}
}
