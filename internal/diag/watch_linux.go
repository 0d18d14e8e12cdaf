package diag

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// A Capture receives the TCP segments of one port on every interface of
// the network namespace it was opened in (Linux AF_PACKET with a BPF
// filter). It needs root (CAP_NET_RAW).
type Capture struct {
	fd   int
	port uint16
}

const ethPAll = 0x0300 // htons(ETH_P_ALL)

// OpenCapture opens a capture of TCP port. The filter is attached before
// the socket is bound, so no other traffic slips in.
func OpenCapture(port uint16) (*Capture, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("watch: capturing packets needs root (CAP_NET_RAW): %w", err)
		}
		return nil, fmt.Errorf("watch: packet socket: %w", err)
	}
	c := &Capture{fd: fd, port: port}
	if err := c.setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

func (c *Capture) setup() error {
	raw, err := bpf.Assemble(portFilter(c.port))
	if err != nil {
		return fmt.Errorf("watch: filter: %w", err)
	}
	prog := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(c.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("watch: attach filter: %w", err)
	}
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("watch: receive timeout: %w", err)
	}
	if err := unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: ethPAll}); err != nil {
		return fmt.Errorf("watch: bind: %w", err)
	}
	return nil
}

// Run reads segments until ctx is done, calls onRST (if not nil) for each
// RST received, and returns the summary, including the segments already
// queued when ctx ended. Segments this host sends are not judged (on
// loopback they would be seen twice).
func (c *Capture) Run(ctx context.Context, onRST func(RSTEvent)) (WatchSummary, error) {
	var j TTLJudge
	buf := make([]byte, 512)
	for {
		flags := 0
		if ctx.Err() != nil {
			flags = unix.MSG_DONTWAIT // drain what is queued, then stop
		}
		n, from, err := unix.Recvfrom(c.fd, buf, flags)
		switch {
		case errors.Is(err, unix.EAGAIN) && flags != 0:
			return j.Summary(), nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return j.Summary(), fmt.Errorf("watch: receive: %w", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if seg, ok := ParseSegment(buf[:n]); ok {
			seg.Time = time.Now()
			if e, ok := j.Observe(seg); ok && onRST != nil {
				onRST(e)
			}
		}
	}
}

// Close releases the socket. Call it after Run has returned.
func (c *Capture) Close() error {
	return os.NewSyscallError("close", unix.Close(c.fd))
}
