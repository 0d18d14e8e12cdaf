package diag

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
)

// packet builds an IPv4 or IPv6 packet with a 20-byte TCP header.
func packet(src, dst netip.AddrPort, ttl, flags uint8) []byte {
	var p []byte
	if src.Addr().Is4() {
		p = make([]byte, 40)
		p[0], p[8], p[9] = 0x45, ttl, 6
		copy(p[12:], src.Addr().AsSlice())
		copy(p[16:], dst.Addr().AsSlice())
	} else {
		p = make([]byte, 60)
		p[0], p[6], p[7] = 0x60, 6, ttl
		copy(p[8:], src.Addr().AsSlice())
		copy(p[24:], dst.Addr().AsSlice())
	}
	tcp := p[len(p)-20:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	tcp[12], tcp[13] = 5<<4, flags
	return p
}

var (
	client4 = netip.MustParseAddrPort("10.77.1.2:40000")
	server4 = netip.MustParseAddrPort("10.77.2.2:8080")
	client6 = netip.MustParseAddrPort("[fd77::2]:40000")
	server6 = netip.MustParseAddrPort("[fd77:2::2]:8080")
)

func TestParseSegment(t *testing.T) {
	s, ok := ParseSegment(packet(server4, client4, 63, flagRST))
	require.True(t, ok)
	require.Equal(t, Segment{Src: server4, Dst: client4, TTL: 63, Flags: flagRST}, s)

	s, ok = ParseSegment(packet(server6, client6, 62, flagSYN|0x10))
	require.True(t, ok)
	require.Equal(t, Segment{Src: server6, Dst: client6, TTL: 62, Flags: flagSYN | 0x10}, s)

	frag := packet(server4, client4, 63, 0)
	frag[7] = 10 // a later fragment: no TCP header
	_, ok = ParseSegment(frag)
	require.False(t, ok)
	udp := packet(server4, client4, 63, 0)
	udp[9] = 17
	_, ok = ParseSegment(udp)
	require.False(t, ok)
	_, ok = ParseSegment([]byte{0x45, 0})
	require.False(t, ok)
}

func TestPortFilter(t *testing.T) {
	vm, err := bpf.NewVM(portFilter(8080))
	require.NoError(t, err)
	other := netip.MustParseAddrPort("10.77.2.2:9090")
	frag := packet(server4, client4, 63, 0)
	frag[7] = 10
	withOpts := append([]byte{0x46}, packet(server4, client4, 64, 0)[1:20]...)
	withOpts = append(append(withOpts, 1, 1, 1, 1), packet(server4, client4, 64, 0)[20:]...) // IHL 6
	for _, c := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"v4 from port", packet(server4, client4, 63, 0), true},
		{"v4 to port", packet(client4, server4, 64, 0), true},
		{"v4 options", withOpts, true},
		{"v4 other port", packet(other, client4, 63, 0), false},
		{"v4 fragment", frag, false},
		{"v6 from port", packet(server6, client6, 63, 0), true},
		{"v6 to port", packet(client6, server6, 63, 0), true},
		{"v6 other port", packet(netip.AddrPortFrom(server6.Addr(), 1), client6, 63, 0), false},
	} {
		n, err := vm.Run(c.pkt)
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, n > 0, c.name)
	}
}

func TestTTLJudge(t *testing.T) {
	var j TTLJudge
	_, ok := j.Observe(Segment{Src: server4, Dst: client4, TTL: 63, Flags: flagSYN | 0x10})
	require.False(t, ok)
	e, ok := j.Observe(Segment{Src: server4, Dst: client4, TTL: 63, Flags: flagRST})
	require.True(t, ok)
	require.Equal(t, VerdictPeer, e.Verdict)
	e, _ = j.Observe(Segment{Src: netip.AddrPortFrom(server4.Addr(), 9090), Dst: client4, TTL: 64, Flags: flagRST})
	require.Equal(t, VerdictForged, e.Verdict, "TTL is a property of the address, not the port")
	require.EqualValues(t, 63, e.PeerTTL)
	e, _ = j.Observe(Segment{Src: server6, Dst: client6, TTL: 64, Flags: flagRST})
	require.Equal(t, VerdictUnknown, e.Verdict)
	require.Contains(t, e.String(), "peer ttl   ?  unknown")

	s := j.Summary()
	require.Equal(t, WatchSummary{Segments: 4, RSTs: 3, Peer: 1, Forged: 1, Unknown: 1, Events: s.Events}, s)
	require.Len(t, s.Events, 3)
}
