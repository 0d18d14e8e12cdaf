package diag

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Layout of the kernel's struct inet_diag_req_v2 and inet_diag_msg
// (linux/inet_diag.h); x/sys/unix does not define them.
const (
	sizeofNlMsghdr     = 16
	sizeofInetDiagReq  = 56
	sizeofInetDiagMsg  = 72
	inetDiagMsgWqueue  = 60 // offset of idiag_wqueue
	inetDiagSockIDAddr = 8  // offset of id.idiag_src in inet_diag_msg
)

// ListenBacklogs asks the kernel (sock_diag netlink) for the listening
// TCP sockets on port and returns each one's backlog, the accept queue
// limit that /proc/net/tcp does not show, keyed by "addr:port".
func ListenBacklogs(port uint16) (map[string]int64, error) {
	out := map[string]int64{}
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := dumpListeners(family, port, out); err != nil {
			return nil, fmt.Errorf("sock_diag: %w", err)
		}
	}
	return out, nil
}

func dumpListeners(family uint8, port uint16, out map[string]int64) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	req := make([]byte, sizeofNlMsghdr+sizeofInetDiagReq)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	req[16], req[17] = family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[20:], 1<<tcpListen) // states
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				return fmt.Errorf("netlink error reply")
			}
			addListener(family, port, m.Data, out)
		}
	}
}

func addListener(family uint8, port uint16, d []byte, out map[string]int64) {
	if len(d) < sizeofInetDiagMsg {
		return
	}
	sport := binary.BigEndian.Uint16(d[4:6])
	if port != 0 && sport != port {
		return
	}
	var ip netip.Addr
	if family == unix.AF_INET {
		ip = netip.AddrFrom4([4]byte(d[inetDiagSockIDAddr : inetDiagSockIDAddr+4]))
	} else {
		ip = netip.AddrFrom16([16]byte(d[inetDiagSockIDAddr : inetDiagSockIDAddr+16])).Unmap()
	}
	key := netip.AddrPortFrom(ip, sport).String()
	out[key] = int64(binary.NativeEndian.Uint32(d[inetDiagMsgWqueue:]))
}
