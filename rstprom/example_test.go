package rstprom_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstprom"
)

// A Transport's events and stats, scraped: a request to a port where
// nothing listens is surfaced as refused, with its likely cause.
func Example() {
	c := rstprom.NewCollector(rstprom.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})

	d := &rstpool.Dialer{Observer: c.Observer(), RefusedRetry: -1} // refusals fail at once, for the example
	tr := &rstpool.Transport{Dialer: d}
	if err := c.AddTransport("api", tr); err != nil {
		panic(err)
	}
	client := &http.Client{Transport: tr}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, err := client.Get("http://" + addr + "/")
	fmt.Println(rstpool.Classify(err))

	scrape := httptest.NewRecorder()
	metrics.ServeHTTP(scrape, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(scrape.Body.String(), "\n") {
		if strings.HasPrefix(line, "rstpool_errors_surfaced_total{") || strings.HasPrefix(line, "rstpool_transport_requests_total{") {
			fmt.Println(strings.ReplaceAll(line, addr, "ADDR"))
		}
	}
	// Output:
	// refused
	// rstpool_errors_surfaced_total{cause="not-listening",class="refused",destination="ADDR",source="transport"} 1
	// rstpool_transport_requests_total{transport="api"} 1
}
