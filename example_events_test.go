package rstpool_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/rstpool/rstpool"
)

// LogEvents writes what rstpool does and sees to a *slog.Logger: here, a
// request to a port where nothing listens fails: the failed connect is
// logged at Info, and the failure the Transport returns at Warn. The time, the address and the error
// text are dropped only to keep the example's output stable.
func ExampleLogEvents() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	url := "http://" + ln.Addr().String() + "/"
	ln.Close() // nothing listens there now

	stable := func(_ []string, a slog.Attr) slog.Attr {
		switch a.Key {
		case slog.TimeKey, "addr", "err", "duration":
			return slog.Attr{}
		}
		return a
	}
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: stable}))
	d := &rstpool.Dialer{RefusedRetry: -1, Observer: rstpool.LogEvents(logger)}
	client := &http.Client{Transport: &rstpool.Transport{Dialer: d}}
	if _, err := client.Get(url); err != nil {
		fmt.Println(rstpool.Classify(err))
	}
	// Output:
	// level=INFO msg="rstpool dial" source=dialer class=refused cause="nothing listening (restart or wrong port)"
	// level=WARN msg="rstpool surfaced" source=transport class=refused cause="nothing listening (restart or wrong port)"
	// refused
}

// An Observer is a function that gets each event as it happens, and may be
// called from several goroutines at once: it must be quick and must not
// block. This one counts, by reason, the connections a Pool retired before
// handing them out: its idle limit (50 ms here) is below the server's.
func ExampleObserver() {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a server that keeps connections open
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	var mu sync.Mutex
	retired := map[string]int{}
	count := func(e rstpool.Event) {
		if e.Kind == rstpool.EventRetired {
			mu.Lock()
			retired[e.Reason]++
			mu.Unlock()
		}
	}
	pool, err := rstpool.NewPool(rstpool.PoolConfig{Addr: ln.Addr().String(), IdleTimeout: 50 * time.Millisecond, Observer: count})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close(context.Background())
	nop := func(net.Conn) error { return nil }
	_ = pool.Do(context.Background(), true, nop)
	time.Sleep(100 * time.Millisecond) // idle beyond the limit
	_ = pool.Do(context.Background(), true, nop)

	mu.Lock()
	defer mu.Unlock()
	fmt.Println(retired, pool.Stats().Dials)
	// Output: map[idle-limit:1] 2
}
