package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func startTestServer(t *testing.T) *Server {
	t.Helper()
	s, err := StartServer(time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func sendTestRequest(t *testing.T, s *Server, r Request) {
	t.Helper()
	req, err := newHTTPRequest(context.Background(), "http://"+s.Addr(), r)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestServerCountsRepeats(t *testing.T) {
	s := startTestServer(t)
	for _, r := range []Request{
		{ID: 1, Kind: KindGet}, {ID: 1, Kind: KindGet},
		{ID: 2, Kind: KindPost, Body: 10}, {ID: 2, Kind: KindPost, Body: 10},
		{ID: 3, Kind: KindPostKeyed, Body: 10}, {ID: 3, Kind: KindPostKeyed, Body: 10},
		{ID: 4, Kind: KindPut, Body: 10}, {ID: 5, Kind: KindPost, Body: 10},
	} {
		sendTestRequest(t, s, r)
	}
	require.Equal(t, ServerTally{Arrivals: 8, Distinct: 5, Duplicates: 1, Replays: 1}, s.Tally())
}

// A request cut by a reset before its body arrived in full is not counted:
// the server never acted on it.
func TestServerIgnoresCutRequests(t *testing.T) {
	s := startTestServer(t)
	c, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err)
	_, err = fmt.Fprintf(c, "POST /orders HTTP/1.1\r\nHost: x\r\n%s: 9\r\nContent-Length: 100\r\n\r\nshort", headerRequestID)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).SetLinger(0))
	require.NoError(t, c.Close())
	sendTestRequest(t, s, Request{ID: 10, Kind: KindPost, Body: 5})
	require.Equal(t, ServerTally{Arrivals: 1, Distinct: 1}, s.Tally())
}
