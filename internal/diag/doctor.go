package diag

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// DoctorOptions selects what Doctor inspects.
type DoctorOptions struct {
	// Root is the directory holding proc/; empty means "/". Tests point it
	// at a fixture tree.
	Root string
	// Port, when non-zero, adds the accept queue of listeners on that port.
	Port uint16
	// Backlogs, when set, returns the accept queue limit of the listeners
	// on a port (the kernel shows it through sock_diag, not /proc). Nil or
	// an error leaves the backlog unknown.
	Backlogs func(port uint16) (map[string]int64, error)
}

// HostState is what Doctor read from the host. Absent files leave their
// part empty and are named in Missing. Report is its JSON form.
type HostState struct {
	Sysctl    map[string]int64 // path under proc/sys/net → value
	Counters  Counters         // netstat and snmp, by prefix
	Sockstat  Counters
	Listeners []Listener
	Missing   []string
}

var doctorSysctls = []string{
	"ipv4/tcp_keepalive_time", "ipv4/tcp_keepalive_intvl", "ipv4/tcp_keepalive_probes",
	"ipv4/tcp_fin_timeout", "ipv4/tcp_abort_on_overflow", "ipv4/tcp_max_orphans",
	"ipv4/tcp_max_tw_buckets", "core/somaxconn",
	"netfilter/nf_conntrack_count", "netfilter/nf_conntrack_max",
	"netfilter/nf_conntrack_tcp_timeout_established",
}

// ReadHost reads the host state under opts.Root. A missing file is not an
// error (it is listed in Missing); a file that exists but does not parse is.
func ReadHost(opts DoctorOptions) (*HostState, error) {
	root := opts.Root
	if root == "" {
		root = "/"
	}
	fsys := os.DirFS(root)
	h := &HostState{Sysctl: map[string]int64{}, Counters: Counters{}, Sockstat: Counters{}}
	for _, name := range doctorSysctls {
		v, err := readInt(fsys, "proc/sys/net/"+name)
		if err := h.note("proc/sys/net/"+name, err); err != nil {
			return nil, err
		}
		if err == nil {
			h.Sysctl[name] = v
		}
	}
	for _, name := range []string{"proc/net/netstat", "proc/net/snmp"} {
		if err := h.note(name, readInto(fsys, name, h.Counters, parseCounters)); err != nil {
			return nil, err
		}
	}
	if err := h.note("proc/net/sockstat", readInto(fsys, "proc/net/sockstat", h.Sockstat, parseSockstat)); err != nil {
		return nil, err
	}
	if opts.Port != 0 {
		if err := h.readListeners(fsys, opts); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// note records a missing file and passes other errors through.
func (h *HostState) note(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		h.Missing = append(h.Missing, name)
		return nil
	}
	return err
}

func readInto(fsys fs.FS, name string, c Counters, parse func(string, Counters) error) error {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return err
	}
	if err := parse(string(b), c); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (h *HostState) readListeners(fsys fs.FS, opts DoctorOptions) error {
	for _, name := range []string{"proc/net/tcp", "proc/net/tcp6"} {
		b, err := fs.ReadFile(fsys, name)
		if err := h.note(name, err); err != nil {
			return err
		}
		if err != nil {
			continue
		}
		ls, err := parseListeners(string(b), opts.Port)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		h.Listeners = append(h.Listeners, ls...)
	}
	if opts.Backlogs == nil {
		return nil
	}
	if b, err := opts.Backlogs(opts.Port); err == nil {
		for i, l := range h.Listeners {
			h.Listeners[i].Backlog = b[l.Addr.String()]
		}
	}
	return nil
}

// Doctor reads the host and judges it. See HostState.Findings.
func Doctor(opts DoctorOptions) ([]Finding, *HostState, error) {
	h, err := ReadHost(opts)
	if err != nil {
		return nil, nil, err
	}
	return h.Findings(opts.Port), h, nil
}

// Findings judges the host state: keepalive and FIN sysctls, listen queue
// overflows, reset counters, conntrack fill, socket summary and, for a
// non-zero port, its listeners' accept queues.
func (h *HostState) Findings(port uint16) []Finding {
	var out []Finding
	out = append(out, h.keepaliveFindings()...)
	out = append(out, h.listenFindings()...)
	out = append(out, h.resetFindings()...)
	out = append(out, h.conntrackFindings()...)
	out = append(out, h.sockstatFindings()...)
	if port != 0 {
		out = append(out, h.portFindings(port)...)
	}
	return out
}

func secs(v int64) time.Duration { return time.Duration(v) * time.Second }

func missingFinding(check, what string) Finding {
	return Finding{Severity: Info, Check: check,
		Message: what + " not available on this host", Advice: "nothing to judge"}
}

func (h *HostState) keepaliveFindings() []Finding {
	t, ok1 := h.Sysctl["ipv4/tcp_keepalive_time"]
	iv, ok2 := h.Sysctl["ipv4/tcp_keepalive_intvl"]
	n, ok3 := h.Sysctl["ipv4/tcp_keepalive_probes"]
	var out []Finding
	if !ok1 || !ok2 || !ok3 {
		out = append(out, missingFinding("keepalive", "net.ipv4.tcp_keepalive_*"))
	} else {
		f := Finding{Severity: OK, Check: "keepalive", Message: fmt.Sprintf(
			"kernel default keepalive: idle %s, interval %s, %d probes: a dead peer is found after %s",
			secs(t), secs(iv), n, secs(t+iv*n))}
		if t > 300 {
			f.Severity = Info
			f.Advice = "programs that enable SO_KEEPALIVE without their own idle wait this long; " +
				"set keepalive per socket (rstpool's Dialer does) below the smallest NAT/LB idle timeout"
		}
		out = append(out, f)
	}
	if v, ok := h.Sysctl["ipv4/tcp_fin_timeout"]; ok {
		f := Finding{Severity: OK, Check: "fin-timeout",
			Message: fmt.Sprintf("tcp_fin_timeout %s: orphaned FIN-WAIT-2 sockets live this long", secs(v))}
		if v > 120 {
			f.Severity, f.Advice = Info, "a long FIN-WAIT-2 keeps orphans around; the default is 60s"
		}
		out = append(out, f)
	}
	return out
}

func (h *HostState) listenFindings() []Finding {
	over, ok := h.Counters.Get("TcpExt", "ListenOverflows")
	if !ok {
		return []Finding{missingFinding("listen-overflow", "TcpExt ListenOverflows")}
	}
	drops, _ := h.Counters.Get("TcpExt", "ListenDrops")
	f := Finding{Severity: OK, Check: "listen-overflow",
		Message: fmt.Sprintf("ListenOverflows %d, ListenDrops %d since boot", over, drops)}
	if over > 0 || drops > 0 {
		f.Severity = Warn
		f.Advice = "an accept queue filled up: accept faster or raise the listen backlog and net.core.somaxconn"
		if h.Sysctl["ipv4/tcp_abort_on_overflow"] == 1 {
			f.Severity = Crit
			f.Advice = "tcp_abort_on_overflow=1 turns each overflow into a RST to the client; " + f.Advice
		}
	}
	return []Finding{f}
}

// resetCounters are the kernel counters of resets this host sent or got,
// with what each one means.
var resetCounters = []struct{ prefix, name, advice string }{
	{"TcpExt", "TCPAbortOnData", "RST sent on close with unread data or data arriving after close: read requests fully before closing"},
	{"TcpExt", "TCPAbortOnClose", "RST sent when a socket closed with unread data: drain the request body before closing"},
	{"TcpExt", "TCPAbortOnTimeout", "connections killed by retransmission, keepalive or user timeouts: a peer or path went silent"},
	{"TcpExt", "TCPAbortOnLinger", "RST sent by SO_LINGER 0 closes"},
	{"TcpExt", "TCPAbortOnMemory", "RST sent under TCP memory pressure or too many orphans: raise tcp_mem or close sockets sooner"},
	{"TcpExt", "TCPAbortFailed", "a RST could not be sent (memory)"},
	{"Tcp", "EstabResets", "established connections that received or sent a RST"},
	{"Tcp", "OutRsts", "segments sent with RST (includes refusals of closed ports)"},
}

func (h *HostState) resetFindings() []Finding {
	var out []Finding
	for _, c := range resetCounters {
		v, ok := h.Counters.Get(c.prefix, c.name)
		if !ok {
			continue
		}
		f := Finding{Severity: OK, Check: "resets", Message: fmt.Sprintf("%s %s %d since boot", c.prefix, c.name, v)}
		if v > 0 {
			f.Severity, f.Advice = Info, c.advice
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return []Finding{missingFinding("resets", "reset counters (/proc/net/netstat, /proc/net/snmp)")}
	}
	return out
}

func (h *HostState) conntrackFindings() []Finding {
	n, ok1 := h.Sysctl["netfilter/nf_conntrack_count"]
	m, ok2 := h.Sysctl["netfilter/nf_conntrack_max"]
	if !ok1 || !ok2 || m <= 0 {
		return []Finding{{Severity: Info, Check: "conntrack",
			Message: "conntrack is not loaded (no net.netfilter.nf_conntrack_count)",
			Advice:  "no connection tracking on this host: no local NAT table can expire flows"}}
	}
	f := Finding{Severity: OK, Check: "conntrack",
		Message: fmt.Sprintf("conntrack %d of %d entries (%d%%)", n, m, n*100/m)}
	switch {
	case n*100 >= m*90:
		f.Severity, f.Advice = Crit, "the table is nearly full: new flows are dropped; raise nf_conntrack_max"
	case n*100 >= m*75:
		f.Severity, f.Advice = Warn, "the table is filling: raise nf_conntrack_max before new flows are dropped"
	}
	out := []Finding{f}
	if est, ok := h.Sysctl["netfilter/nf_conntrack_tcp_timeout_established"]; ok {
		out = append(out, Finding{Severity: Info, Check: "conntrack",
			Message: fmt.Sprintf("established TCP flows are forgotten after %s idle", secs(est)),
			Advice:  fmt.Sprintf("a hop of the chain: rstpool audit --hop linux-conntrack=%ds", est)})
	}
	return out
}

func (h *HostState) sockstatFindings() []Finding {
	tcp, ok := h.Sockstat["TCP"]
	if !ok {
		return []Finding{missingFinding("sockets", "/proc/net/sockstat")}
	}
	f := Finding{Severity: OK, Check: "sockets", Message: fmt.Sprintf(
		"TCP in use %d, orphaned %d, time-wait %d, allocated %d", tcp["inuse"], tcp["orphan"], tcp["tw"], tcp["alloc"])}
	var advice []string
	if m := h.Sysctl["ipv4/tcp_max_orphans"]; m > 0 && tcp["orphan"]*2 > m {
		f.Severity = Warn
		advice = append(advice, "orphans above half of tcp_max_orphans: past the limit the kernel resets them")
	}
	if m := h.Sysctl["ipv4/tcp_max_tw_buckets"]; m > 0 && tcp["tw"]*10 > m*8 {
		f.Severity = Warn
		advice = append(advice, "time-wait above 80% of tcp_max_tw_buckets: reuse connections instead of opening new ones")
	}
	f.Advice = strings.Join(advice, "; ")
	return []Finding{f}
}

func (h *HostState) portFindings(port uint16) []Finding {
	if len(h.Listeners) == 0 {
		return []Finding{{Severity: Warn, Check: "listen-queue",
			Message: fmt.Sprintf("nothing listens on TCP port %d", port),
			Advice:  "clients of this port are refused (RST to their SYN)"}}
	}
	var out []Finding
	for _, l := range h.Listeners {
		out = append(out, h.queueFinding(l))
	}
	return out
}

func (h *HostState) queueFinding(l Listener) Finding {
	limit, what := l.Backlog, "backlog"
	if limit == 0 {
		limit, what = h.Sysctl["core/somaxconn"], "somaxconn (backlog unknown, at most this)"
	}
	f := Finding{Severity: OK, Check: "listen-queue",
		Message: fmt.Sprintf("%s: accept queue %d of %s %d", l.Addr, l.AcceptQueue, what, limit)}
	switch {
	case limit > 0 && l.AcceptQueue >= limit:
		f.Severity, f.Advice = Crit, "the accept queue is full: new connections are dropped or reset; accept faster"
	case l.AcceptQueue > 0:
		f.Severity, f.Advice = Warn, "connections wait to be accepted: the server is not calling accept() fast enough"
	}
	return f
}
