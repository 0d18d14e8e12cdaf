package rstotel_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/tally/drive"
	"github.com/rstpool/rstpool/rstotel"
)

// sink keeps the nil Observer from being compiled away.
var sink rstpool.Observer

// The cost of one event: the Observer's call against the nil Observer the
// core skips, for a failure surfaced, a retry (whose class is read from
// its error) and a dial (a histogram), on one goroutine and on all.
func BenchmarkObserver(b *testing.B) {
	reset := &rstpool.ConnError{Op: "read", Class: rstpool.ClassReset, Reused: true, Err: syscall.ECONNRESET}
	events := []struct {
		name string
		e    rstpool.Event
	}{
		{"surfaced", rstpool.Event{Kind: rstpool.EventSurfaced, Source: "transport", Addr: "api.example:443", Class: rstpool.ClassReset, Cause: rstpool.CauseIdleReaped, Err: reset}},
		{"retry", rstpool.Event{Kind: rstpool.EventRetry, Source: "pool", Addr: "db.example:5432", Reason: "idempotent", Err: reset}},
		{"dial", rstpool.Event{Kind: rstpool.EventDial, Source: "dialer", Addr: "db.example:5432", Duration: 3 * time.Millisecond}},
	}
	observers := []struct {
		name string
		o    rstpool.Observer
	}{{"nil", sink}, {"rstotel", otelObserver(b)}}
	for _, ev := range events {
		for _, ob := range observers {
			e, o := ev.e, ob.o
			b.Run("event="+ev.name+"/observer="+ob.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if o != nil {
						o(e)
					}
				}
			})
			b.Run("event="+ev.name+"/parallel/observer="+ob.name, func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if o != nil {
							o(e)
						}
					}
				})
			})
		}
	}
}

// A Pool's Do whose work fails with an error of its own before any I/O:
// the connection stays in the pool, and each call reports one surfaced
// failure. No Observer, one that does nothing (what the core spends
// building the event), and rstotel's.
func BenchmarkPoolDoEvent(b *testing.B) {
	addr := drive.ServeLines(b)
	appErr := errors.New("not found")
	work := func(net.Conn) error { return appErr }
	for _, ob := range []struct {
		name string
		o    rstpool.Observer
	}{{"nil", nil}, {"noop", func(rstpool.Event) {}}, {"rstotel", otelObserver(b)}} {
		b.Run("observer="+ob.name, func(b *testing.B) {
			p, err := rstpool.NewPool(rstpool.PoolConfig{Addr: addr, MaxSize: 1, UpkeepInterval: -1, Observer: ob.o})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Do(ctx, true, work); err != appErr {
					b.Fatal(err)
				}
			}
		})
	}
}

// otelObserver returns the Observer of Metrics on an SDK MeterProvider.
func otelObserver(b *testing.B) rstpool.Observer {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := rstotel.New(rstotel.Options{MeterProvider: mp})
	if err != nil {
		b.Fatal(err)
	}
	return m.Observer()
}
