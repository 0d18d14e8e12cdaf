package diag

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strconv"
	"strings"
)

// readInt reads a file holding one integer, such as a sysctl under
// proc/sys. It returns fs.ErrNotExist (wrapped) when the file is absent.
func readInt(fsys fs.FS, name string) (int64, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0, fmt.Errorf("%s: empty", name)
	}
	v, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// Counters maps a prefix ("TcpExt", "Tcp") to its named counters.
type Counters map[string]map[string]int64

// Get returns a counter and whether the kernel reports it.
func (c Counters) Get(prefix, name string) (int64, bool) {
	v, ok := c[prefix][name]
	return v, ok
}

// parseCounters parses /proc/net/netstat and /proc/net/snmp: for each
// prefix a header line of names followed by a line of values.
func parseCounters(text string, into Counters) error {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines)%2 != 0 {
		return errors.New("odd number of lines: header without values")
	}
	for i := 0; i < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || len(names) != len(values) || names[0] != values[0] {
			return fmt.Errorf("line %d: header and values do not match", i+1)
		}
		prefix := strings.TrimSuffix(names[0], ":")
		if into[prefix] == nil {
			into[prefix] = map[string]int64{}
		}
		for j := 1; j < len(names); j++ {
			v, err := strconv.ParseInt(values[j], 10, 64)
			if err != nil {
				return fmt.Errorf("%s %s: %w", prefix, names[j], err)
			}
			into[prefix][names[j]] = v
		}
	}
	return nil
}

// parseSockstat parses /proc/net/sockstat: "TCP: inuse 11 orphan 0 tw 3 …".
func parseSockstat(text string, into Counters) error {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		prefix, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f)%2 != 0 {
			return fmt.Errorf("sockstat %s: odd number of fields", prefix)
		}
		if into[prefix] == nil {
			into[prefix] = map[string]int64{}
		}
		for j := 0; j < len(f); j += 2 {
			v, err := strconv.ParseInt(f[j+1], 10, 64)
			if err != nil {
				return fmt.Errorf("sockstat %s %s: %w", prefix, f[j], err)
			}
			into[prefix][f[j]] = v
		}
	}
	return sc.Err()
}

// A Listener is a listening TCP socket as /proc/net/tcp{,6} shows it.
type Listener struct {
	Addr        netip.AddrPort `json:"addr"`
	AcceptQueue int64          `json:"accept_queue"` // connections waiting for accept()
	Backlog     int64          `json:"backlog"`      // accept queue limit; 0 when unknown
}

const tcpListen = 0x0A

// parseListeners returns the LISTEN sockets of a /proc/net/tcp or tcp6
// table on port (every port when port is 0). For a listener the kernel
// prints the accept queue length as rx_queue; the backlog is not in the
// table (tx_queue is the unsent byte count, zero for a listener).
func parseListeners(text string, port uint16) ([]Listener, error) {
	var out []Listener
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for n, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 5 {
			return nil, fmt.Errorf("line %d: %d fields", n+2, len(f))
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("line %d: state: %w", n+2, err)
		}
		if st != tcpListen {
			continue
		}
		addr, err := parseHexAddrPort(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+2, err)
		}
		if port != 0 && addr.Port() != port {
			continue
		}
		_, rx, _ := strings.Cut(f[4], ":")
		q, err := strconv.ParseInt(rx, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: rx_queue: %w", n+2, err)
		}
		out = append(out, Listener{Addr: addr, AcceptQueue: q})
	}
	return out, nil
}

// parseHexAddrPort decodes "0100007F:6448": the address as the kernel's
// 32-bit words in host (little-endian) order, the port in big-endian hex.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("address %q: no port", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q: bad hex", s)
	}
	for i := 0; i < len(raw); i += 4 { // each 32-bit word is little-endian
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: port: %w", s, err)
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}
