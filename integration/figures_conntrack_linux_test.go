//go:build linux

package integration

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/internal/netns"
	"github.com/stretchr/testify/require"
)

// TestFiguresConntrack: a client namespace reaches a server namespace
// through a middlebox namespace that routes between them with conntrack,
// forgets an established flow idle for a second
// (nf_conntrack_tcp_timeout_established=1), and answers a packet of a flow
// it does not know, other than a SYN, with a reset (nft "reject with tcp
// reset"), as stateful firewalls and NAT gateways do. The clients run in
// the client namespace (this test binary again, under ip netns exec), 60
// workers each with idle gaps of 0.8–1.4 s around the timeout; the server
// has no idle timeout of its own.
func TestFiguresConntrack(t *testing.T) {
	figuresOnly(t)
	netns.SkipUnlessAvailable(t)
	client, mb, server := netns.New(t), netns.New(t), netns.New(t)
	netns.Link(client, "10.77.31.1/24", mb, "10.77.31.2/24")
	netns.Link(mb, "10.77.32.2/24", server, "10.77.32.1/24")
	client.IP("route add 10.77.32.0/24 via 10.77.31.2")
	server.IP("route add 10.77.31.0/24 via 10.77.32.2")
	mb.Sysctl("net.ipv4.ip_forward", "1")
	mb.Nft(`add table inet middlebox
add chain inet middlebox forward { type filter hook forward priority 0 ; policy accept ; }
add rule inet middlebox forward ct state invalid reject with tcp reset
add rule inet middlebox forward ct state new tcp flags & (syn | ack) != syn reject with tcp reset`)
	mb.Sysctl("net.netfilter.nf_conntrack_tcp_timeout_established", "1")
	mb.Sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")

	counts := &proxiedCounts{seen: map[string]int{}}
	var ln net.Listener
	require.NoError(t, server.Do(func() (err error) {
		ln, err = net.Listen("tcp4", "10.77.32.1:0")
		return err
	}))
	srv := &http.Server{Handler: counts, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	out := filepath.Join(t.TempDir(), "runs.json")
	cmd := exec.Command("ip", "netns", "exec", client.Name, os.Args[0], "-test.run", "^TestFiguresConntrackClient$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "RSTPOOL_FIGURES_CLIENT=http://"+ln.Addr().String()+"/", "RSTPOOL_FIGURES_OUT="+out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Run(), "the clients in the client namespace")
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	var runs [2]*figuresRun
	require.NoError(t, json.Unmarshal(b, &runs))
	checkNoDuplicatePOST(t, counts)
	figuresTable(t, "a 1 s conntrack middlebox that resets packets of forgotten flows, idle gaps 0.8–1.4 s, 1,000 requests per method", runs[stockSide], runs[oursSide])
}

// TestFiguresConntrackClient is the client side of TestFiguresConntrack,
// run by it inside the client namespace; alone it skips.
func TestFiguresConntrackClient(t *testing.T) {
	url := os.Getenv("RSTPOOL_FIGURES_CLIENT")
	if url == "" {
		t.Skip("run by TestFiguresConntrack (RSTPOOL_FIGURES=1) inside its client namespace")
	}
	var runs [2]*figuresRun
	var wg sync.WaitGroup
	for side := range 2 {
		var rt http.RoundTripper = soakBaseDefault()
		if side == oursSide {
			rt = &rstpool.Transport{Base: soakBaseDefault()}
		}
		wg.Go(func() {
			runs[side] = figuresLoad(rt, url, sideNames[side], 60, 800*time.Millisecond, 1400*time.Millisecond, uint64(side)+11)
		})
	}
	wg.Wait()
	b, err := json.Marshal(runs)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(os.Getenv("RSTPOOL_FIGURES_OUT"), b, 0o644))
}
