package rstpool

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rstpool/rstpool/internal/faultproxy"
)

// A middlebox that silently forgets an idle HTTP/2 connection: the stock
// client, without health pings, sends the next request into the void and
// waits for its own timeout; rstpool's Transport pings the idle connection,
// finds it silent within the ping timeout, drops it, and the next request
// goes out on a new connection.
func TestHTTP2PingFindsSilentConnection(t *testing.T) {
	c := &tsCase{name: "h2c silent", h2c: true}
	for _, useRstpool := range []bool{false, true} {
		_, srv := c.startServer(t)
		p, err := faultproxy.Start(faultproxy.Config{
			Upstream:    srv.Listener.Addr().String(),
			IdleTimeout: 300 * time.Millisecond,
			IdleAction:  faultproxy.ActionDrop,
		})
		require.NoError(t, err)
		t.Cleanup(func() { p.Close() })

		var rt http.RoundTripper = c.base(srv)
		if useRstpool {
			base := c.base(srv)
			base.HTTP2 = &http.HTTP2Config{SendPingTimeout: 500 * time.Millisecond, PingTimeout: 200 * time.Millisecond}
			rt = &Transport{Base: base, Dialer: noRetry()}
		}
		client := &http.Client{Transport: rt, Timeout: 2 * time.Second}
		t.Cleanup(client.CloseIdleConnections)
		get := func() error {
			resp, err := client.Get("http://" + p.Addr() + "/")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			require.Equal(t, 2, resp.ProtoMajor, "the case is about HTTP/2")
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		}
		require.NoError(t, get())
		time.Sleep(time.Second) // forgotten at 300 ms; rstpool pings at 500 ms, gives up at 700 ms
		err = get()
		if useRstpool {
			require.NoError(t, err, "the ping found the silent connection before reuse")
			require.Equal(t, int64(2), p.Stats().Accepted, "the second request went out on a new connection")
		} else {
			require.Error(t, err, "stock reuses the forgotten connection")
			require.Equal(t, ClassTimeout, Classify(err))
		}
		require.Positive(t, p.Stats().ReapedDrop)
	}
}
