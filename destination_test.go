package rstpool

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A crashingListener is the listener of a server process that crashes and
// comes back on the same port. Its server sees one listener throughout;
// underneath, crash resets every connection, resets the connects that
// arrive as the process dies (accepted and reset: a connect answered by a
// reset), closes the port (connects are refused), and listens again.
type crashingListener struct {
	t     *testing.T
	addr  string // the port, the same after a crash
	conns chan net.Conn
	done  chan struct{}

	mu    sync.Mutex
	ln    net.Listener
	live  []net.Conn
	dying bool
}

func newCrashingListener(t *testing.T) *crashingListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &crashingListener{t: t, addr: ln.Addr().String(), conns: make(chan net.Conn, 64), done: make(chan struct{}), ln: ln}
	go l.acceptFrom(ln)
	forgetDestination(t, l.addr)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// listen listens again on the same port after a crash.
func (l *crashingListener) listen() {
	ln, err := net.Listen("tcp", l.addr)
	require.NoError(l.t, err, "the port was taken meanwhile")
	l.mu.Lock()
	l.ln, l.dying = ln, false
	l.mu.Unlock()
	go l.acceptFrom(ln)
}

func (l *crashingListener) acceptFrom(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		dying := l.dying
		if !dying {
			l.live = append(l.live, c)
		}
		l.mu.Unlock()
		if dying {
			resetConn(c)
			continue
		}
		select {
		case l.conns <- c:
		case <-l.done:
			c.Close()
			return
		}
	}
}

// crash resets every connection, resets the connects of resetFor, and
// refuses connects from then on, until listen.
func (l *crashingListener) crash(resetFor time.Duration) {
	l.mu.Lock()
	l.dying = true
	for _, c := range l.live {
		resetConn(c)
	}
	l.live = nil
	l.mu.Unlock()
	time.Sleep(resetFor)
	l.mu.Lock()
	_ = l.ln.Close()
	l.mu.Unlock()
}

func resetConn(c net.Conn) {
	_ = c.(*net.TCPConn).SetLinger(0)
	_ = c.Close()
}

func (l *crashingListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *crashingListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return nil
	default:
	}
	close(l.done)
	for _, c := range l.live {
		_ = c.Close()
	}
	return l.ln.Close()
}

func (l *crashingListener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ln.Addr()
}

// serveLines answers every line "ECHO x" with "x", after holding it for
// hold, until the connection ends.
func serveLines(l net.Listener, hold time.Duration) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				_, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
				time.Sleep(hold)
				if _, err := c.Write([]byte(arg + "\n")); err != nil {
					return
				}
			}
		}()
	}
}

// backAfterCrash drives work on two sides, stock and rstpool, every 20 to
// 50 ms, beside a health checker that dials the server every 10 ms through
// a Dialer with a RefusedRetry of 10 ms and closes what it dialed unread,
// while the server crashes for down. Once the server listens again the
// work waits for the checker to connect first, as it most often does (it
// dials the most often), then goes on. It returns how long after the
// server listened again each side's work first succeeded, and how much of
// each side's work begun after the checker connected failed.
func backAfterCrash(t *testing.T, l *crashingListener, down time.Duration, do [2]func(context.Context) error) (first [2]time.Duration, failed [2]int) {
	for side := range 2 {
		require.NoError(t, do[side](context.Background()), "side %d before the crash", side)
	}
	var mu sync.Mutex
	var back, checked time.Time // the server listens again; the checker connected after that
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	checker := &Dialer{RefusedRetry: 10 * time.Millisecond}
	wg.Go(func() {
		for ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			begun := !back.IsZero()
			mu.Unlock()
			c, err := checker.DialContext(ctx, "tcp", l.addr)
			if err != nil {
				continue
			}
			c.Close()
			mu.Lock()
			if begun && checked.IsZero() {
				checked = time.Now()
			}
			mu.Unlock()
		}
	})
	crashed := make(chan struct{})
	var resets bool
	wg.Go(func() {
		defer close(crashed)
		l.crash(100 * time.Millisecond)
		time.Sleep(down)
		if d := destinations.lookup(destKey{"tcp", l.addr}); d != nil {
			d.mu.Lock()
			resets = d.resets
			d.mu.Unlock()
		}
		l.listen()
		mu.Lock()
		back = time.Now()
		mu.Unlock()
	})
	// Work goes on until 1.2 s after the checker connected: past runGap.
	state := func() (waiting, over bool) {
		mu.Lock()
		defer mu.Unlock()
		return !back.IsZero() && checked.IsZero(), !checked.IsZero() && time.Since(checked) > 1200*time.Millisecond
	}
	var firstAt [2]time.Time
	start := time.Now()
	for i := 0; i < 1000 && time.Since(start) < down+3*time.Second; i++ {
		waiting, over := state()
		for j := 0; j < 100 && waiting; j++ {
			time.Sleep(5 * time.Millisecond)
			waiting, _ = state()
		}
		if over {
			break
		}
		for side := range 2 {
			wg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				begun := time.Now()
				err := do[side](rctx)
				end := time.Now()
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && !back.IsZero() && (firstAt[side].IsZero() || end.Before(firstAt[side])):
					firstAt[side] = end
				case err != nil && !checked.IsZero() && !begun.Before(checked):
					failed[side]++
				}
			})
		}
		time.Sleep(time.Duration(20+i*17%31) * time.Millisecond)
	}
	<-crashed
	stop()
	wg.Wait()
	require.True(t, resets, "the crash's run of failed connects holds connects answered by a reset")
	require.False(t, checked.IsZero(), "the checker never connected again")
	t.Logf("the checker connected %v after the server listened again", checked.Sub(back).Round(time.Millisecond))
	for side := range 2 {
		require.False(t, firstAt[side].IsZero(), "side %d never succeeded after the crash", side)
		first[side] = firstAt[side].Sub(back)
	}
	return first, failed
}

// Issue 16, row 4: a server crashes for longer than the client's
// RefusedRetry (its connections reset, connects answered by a reset as it
// dies, then refused) while a health checker beside the service dials it
// every 10 ms and closes what it dialed. The health checker's connects,
// which no byte answers, are the probes that find it back: the service
// uses the server again within a probe interval of its return, as stock
// net/http does, not a second later.
func TestCrashedDestinationIsUsedSoonAfterItReturns(t *testing.T) {
	t.Run("h2c Transport", func(t *testing.T) {
		l := newCrashingListener(t)
		srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), Protocols: new(http.Protocols)}
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
		go srv.Serve(l)
		defer srv.Close()
		base := &http.Transport{Protocols: new(http.Protocols)}
		base.Protocols.SetUnencryptedHTTP2(true)
		stock := base.Clone()
		defer stock.CloseIdleConnections()
		ours := &Transport{Base: base.Clone(), Dialer: &Dialer{RefusedRetry: time.Second}}
		defer ours.CloseIdleConnections()
		get := func(rt http.RoundTripper) func(context.Context) error {
			return func(ctx context.Context) error {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.addr+"/", nil)
				if err != nil {
					return err
				}
				resp, err := rt.RoundTrip(req)
				if err == nil {
					err = resp.Body.Close()
				}
				return err
			}
		}
		first, failed := backAfterCrash(t, l, 1400*time.Millisecond, [2]func(context.Context) error{get(stock), get(ours)})
		requireBackSoon(t, first, failed)
	})
	t.Run("Pool", func(t *testing.T) {
		l := newCrashingListener(t)
		go serveLines(l, 0)
		pool, err := NewPool(PoolConfig{Addr: l.addr, Dialer: &Dialer{RefusedRetry: 500 * time.Millisecond}})
		require.NoError(t, err)
		defer pool.Close(context.Background())
		stock := func(ctx context.Context) error {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", l.addr)
			if err != nil {
				return err
			}
			defer c.Close()
			return lsExpect("ECHO x", "x")(c)
		}
		ours := func(ctx context.Context) error { return pool.Do(ctx, true, lsExpect("ECHO x", "x")) }
		first, failed := backAfterCrash(t, l, 900*time.Millisecond, [2]func(context.Context) error{stock, ours})
		requireBackSoon(t, first, failed)
	})
}

// requireBackSoon: once the checker connected, rstpool's work failed no
// more than stock's, and its first success came within the spacing of the
// work (50 ms) of stock's, with room for a busy machine.
func requireBackSoon(t *testing.T, first [2]time.Duration, failed [2]int) {
	t.Helper()
	t.Logf("first success after the server listened again: stock %v, rstpool %v; work begun after the checker connected that failed: stock %d, rstpool %d",
		first[0].Round(time.Millisecond), first[1].Round(time.Millisecond), failed[0], failed[1])
	require.LessOrEqual(t, failed[1], failed[0], "rstpool failed work to a destination a connect had found back")
	require.Less(t, first[1], first[0]+100*time.Millisecond, "rstpool used the destination again long after stock")
}
