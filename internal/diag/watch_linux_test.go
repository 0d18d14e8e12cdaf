package diag

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rstpool/rstpool/internal/netns"
	"github.com/stretchr/testify/require"
)

// topology builds client ns — router ns — server ns on 10.77.x.y/24
// addresses that exist only inside the test's namespaces.
func topology(t *testing.T) (client, router, server *netns.NS) {
	client, router, server = netns.New(t), netns.New(t), netns.New(t)
	netns.Link(client, "10.77.1.2/24", router, "10.77.1.1/24")
	netns.Link(router, "10.77.2.1/24", server, "10.77.2.2/24")
	router.Sysctl("net.ipv4.ip_forward", "1")
	client.IP("route add default via 10.77.1.1")
	server.IP("route add default via 10.77.2.1")
	return client, router, server
}

// resettingServer accepts on ln and resets every connection itself once
// the client's first bytes arrived.
func resettingServer(t *testing.T, ln net.Listener) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			c.Read(make([]byte, 16))
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// startCapture runs a capture of port opened inside ns until stop is called.
func startCapture(t *testing.T, ns *netns.NS, port int) (stop func() WatchSummary) {
	var c *Capture
	require.NoError(t, ns.Do(func() (err error) { c, err = OpenCapture(uint16(port)); return err }))
	ctx, cancel := context.WithCancel(context.Background())
	var sum WatchSummary
	var runErr error
	done := make(chan struct{})
	go func() { defer close(done); sum, runErr = c.Run(ctx, nil) }()
	return func() WatchSummary {
		cancel()
		<-done
		require.NoError(t, runErr)
		require.NoError(t, c.Close())
		return sum
	}
}

// resetFrom dials addr from ns and reads until the connection is reset. A
// reset right after the handshake may already fail the dial.
func resetFrom(t *testing.T, ns *netns.NS, addr string) {
	var c net.Conn
	err := ns.Do(func() (err error) { c, err = net.DialTimeout("tcp4", addr, 2*time.Second); return err })
	if err != nil {
		require.ErrorIs(t, err, syscall.ECONNRESET)
		return
	}
	defer c.Close()
	c.Write([]byte("hello"))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(3*time.Second)))
	_, err = c.Read(make([]byte, 16))
	require.ErrorIs(t, err, syscall.ECONNRESET)
}

func TestWatchTellsForgedFromPeerResets(t *testing.T) {
	netns.SkipUnlessAvailable(t)
	client, router, server := topology(t)
	var self, forged net.Listener
	require.NoError(t, server.Do(func() (err error) {
		if self, err = net.Listen("tcp4", "10.77.2.2:0"); err != nil {
			return err
		}
		forged, err = net.Listen("tcp4", "10.77.2.2:0")
		return err
	}))
	resettingServer(t, self)
	t.Cleanup(func() { forged.Close() })
	forgedPort := forged.Addr().(*net.TCPAddr).Port
	// The router lets the handshake through, then resets the flow itself.
	router.Nft(fmt.Sprintf("add table inet rstpool_test\n"+
		"add chain inet rstpool_test forward { type filter hook forward priority 0 ; }\n"+
		"add rule inet rstpool_test forward tcp dport %d tcp flags & (syn | rst) == 0 reject with tcp reset", forgedPort))

	stopSelf := startCapture(t, client, self.Addr().(*net.TCPAddr).Port)
	stopForged := startCapture(t, client, forgedPort)
	resetFrom(t, client, self.Addr().String())
	resetFrom(t, client, forged.Addr().String())

	own, fake := stopSelf(), stopForged()
	t.Logf("server's own: %s %v", own, own.Events)
	t.Logf("router's: %s %v", fake, fake.Events)
	require.NotZero(t, own.Peer)
	require.Zero(t, own.Forged)
	require.NotZero(t, fake.Forged)
	require.Zero(t, fake.Peer)
	e := fake.Events[0]
	require.EqualValues(t, 64, e.TTL, "the router's own RST, not forwarded")
	require.EqualValues(t, 63, e.PeerTTL, "the server is one forwarding hop away")
	require.Equal(t, forged.Addr().String(), e.From.String(), "the router forges the server's address")
}
