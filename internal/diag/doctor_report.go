package diag

// HostReport is the part of a HostState that Doctor judges, in the JSON
// convention of the command: snake_case keys, durations as whole
// milliseconds in keys ending _ms, kernel counters by name. A sysctl this
// host does not have is left out.
type HostReport struct {
	KeepAliveTimeMs   *int64           `json:"tcp_keepalive_time_ms,omitempty"`
	KeepAliveIntvlMs  *int64           `json:"tcp_keepalive_intvl_ms,omitempty"`
	KeepAliveProbes   *int64           `json:"tcp_keepalive_probes,omitempty"`
	FinTimeoutMs      *int64           `json:"tcp_fin_timeout_ms,omitempty"`
	AbortOnOverflow   *int64           `json:"tcp_abort_on_overflow,omitempty"`
	MaxOrphans        *int64           `json:"tcp_max_orphans,omitempty"`
	MaxTimeWait       *int64           `json:"tcp_max_tw_buckets,omitempty"`
	Somaxconn         *int64           `json:"somaxconn,omitempty"`
	ConntrackCount    *int64           `json:"nf_conntrack_count,omitempty"`
	ConntrackMax      *int64           `json:"nf_conntrack_max,omitempty"`
	ConntrackEstablMs *int64           `json:"nf_conntrack_tcp_timeout_established_ms,omitempty"`
	Counters          []CounterValue   `json:"counters"`    // the counters the findings judge
	TCPSockets        map[string]int64 `json:"tcp_sockets"` // /proc/net/sockstat TCP: inuse, orphan, tw, alloc, mem
	Listeners         []Listener       `json:"listeners"`   // with --port
	Missing           []string         `json:"missing"`     // files this host does not have
}

// A CounterValue is one kernel counter, named "TcpExt.ListenOverflows".
type CounterValue struct {
	Name  string `json:"name"`
	Value int64  `json:"value"`
}

// Report returns the host state as the doctor's JSON shows it.
func (h *HostState) Report() HostReport {
	num := func(name string) *int64 {
		if v, ok := h.Sysctl[name]; ok {
			return &v
		}
		return nil
	}
	secMs := func(name string) *int64 { // a sysctl in seconds, as milliseconds
		if v, ok := h.Sysctl[name]; ok {
			v *= 1000
			return &v
		}
		return nil
	}
	return HostReport{
		KeepAliveTimeMs: secMs("ipv4/tcp_keepalive_time"), KeepAliveIntvlMs: secMs("ipv4/tcp_keepalive_intvl"),
		KeepAliveProbes: num("ipv4/tcp_keepalive_probes"), FinTimeoutMs: secMs("ipv4/tcp_fin_timeout"),
		AbortOnOverflow: num("ipv4/tcp_abort_on_overflow"), MaxOrphans: num("ipv4/tcp_max_orphans"),
		MaxTimeWait: num("ipv4/tcp_max_tw_buckets"), Somaxconn: num("core/somaxconn"),
		ConntrackCount: num("netfilter/nf_conntrack_count"), ConntrackMax: num("netfilter/nf_conntrack_max"),
		ConntrackEstablMs: secMs("netfilter/nf_conntrack_tcp_timeout_established"),
		Counters:          h.judgedCounters(),
		TCPSockets:        orEmpty(h.Sockstat["TCP"]),
		Listeners:         append([]Listener{}, h.Listeners...),
		Missing:           append([]string{}, h.Missing...),
	}
}

// judgedCounters are the kernel counters the findings read.
func (h *HostState) judgedCounters() []CounterValue {
	out := []CounterValue{}
	names := [][2]string{{"TcpExt", "ListenOverflows"}, {"TcpExt", "ListenDrops"}}
	for _, c := range resetCounters {
		names = append(names, [2]string{c.prefix, c.name})
	}
	for _, n := range names {
		if v, ok := h.Counters.Get(n[0], n[1]); ok {
			out = append(out, CounterValue{Name: n[0] + "." + n[1], Value: v})
		}
	}
	return out
}

func orEmpty(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}
