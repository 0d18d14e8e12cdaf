package rstotel_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstotel"
)

// A Transport's events and stats, collected: a request to a port where
// nothing listens is surfaced as refused, with its likely cause.
func Example() {
	reader := sdkmetric.NewManualReader() // in a service: a periodic reader and an exporter
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	m, err := rstotel.New(rstotel.Options{MeterProvider: mp})
	if err != nil {
		panic(err)
	}

	d := &rstpool.Dialer{Observer: m.Observer(), RefusedRetry: -1} // refusals fail at once, for the example
	tr := &rstpool.Transport{Dialer: d}
	if err := m.AddTransport("api", tr); err != nil {
		panic(err)
	}
	client := &http.Client{Transport: tr}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, err = client.Get("http://" + addr + "/")
	fmt.Println(rstpool.Classify(err))

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	for _, metric := range rm.ScopeMetrics[0].Metrics {
		if metric.Name != "rstpool.errors.surfaced" && metric.Name != "rstpool.transport.requests" {
			continue
		}
		for _, p := range metric.Data.(metricdata.Sum[int64]).DataPoints {
			attrs := strings.ReplaceAll(p.Attributes.Encoded(attribute.DefaultEncoder()), addr, "ADDR")
			fmt.Printf("%s{%s} %d\n", metric.Name, attrs, p.Value)
		}
	}
	// Output:
	// refused
	// rstpool.errors.surfaced{rstpool.cause=not-listening,rstpool.class=refused,rstpool.destination=ADDR,rstpool.source=transport} 1
	// rstpool.transport.requests{rstpool.transport=api} 1
}
