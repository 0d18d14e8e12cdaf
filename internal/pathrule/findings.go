package pathrule

import (
	"fmt"
	"sort"
	"time"
)

// Severity ranks a finding.
type Severity uint8

// Severities from harmless to broken.
const (
	OK   Severity = iota // nothing to do
	Info                 // worth knowing, no action needed
	Warn                 // likely to cause resets under some load or timing
	Crit                 // resets will happen
)

var severityNames = [...]string{"ok", "info", "warn", "crit"}

// String names the severity: "ok", "info", "warn" or "crit".
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", uint8(s))
}

// MarshalText encodes the severity by name, so JSON output reads "warn".
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if n == string(b) {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("unknown severity %q", b)
}

// A Finding is one judgement of a client's settings on its path.
type Finding struct {
	Severity Severity
	Check    string // "client-idle", "path", "proxy-idle", "keepalive", "user-timeout" or "lifetime"
	Field    string // the client setting at fault: "IdleTimeout", "KeepAliveIdle", "UserTimeout", "MaxLifetime"; "" when none is
	Hop      int    // index of the hop concerned in the chain; -1 when none
	Message  string // what was found
	Advice   string // what to do about it; empty when nothing
}

// Findings judges a client's settings against its path, from the client
// towards the server: the hops on the client's own connection that it
// outlives (a pass-through hop its keepalive keeps fresh excepted), hops
// whose kind leaves the path unclear, proxies that outlive the hops behind
// them, keepalive against the pass-through hops, the user timeout, and the
// lifetime against hard caps. sug is what the path implies (see Derive),
// quoted in the advice.
func Findings(hops []Hop, c, sug Client) []Finding {
	client := ClientHops(hops)
	var out []Finding
	out = append(out, clientIdle(client, c, sug)...)
	out = append(out, pathShape(client)...)
	out = append(out, proxies(hops)...)
	out = append(out, keepAlive(client, c, sug))
	out = append(out, userTimeout(c, sug))
	out = append(out, lifetime(client, c))
	return out
}

// outlived returns the indexes of the hops that reap idle connections no
// later than idle (<= 0: never), smallest idle timeout first.
func outlived(hops []Hop, idle time.Duration) []int {
	var out []int
	for i, h := range hops {
		if h.Idle > 0 && (idle <= 0 || idle >= h.Idle) {
			out = append(out, i)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return hops[out[a]].Idle < hops[out[b]].Idle })
	return out
}

func clientIdle(client []Hop, c, sug Client) []Finding {
	var out []Finding
	for _, i := range outlived(client, c.Idle) {
		h := client[i]
		if keptFresh(c, h) {
			out = append(out, Finding{Severity: OK, Check: "client-idle", Hop: i, Message: fmt.Sprintf(
				"client idle %s outlives pass-through %s %s, but keepalive every %s keeps its flow fresh",
				FormatIdle(c.Idle), h.Name, h.Idle, c.KeepAlive)})
			continue
		}
		out = append(out, Finding{Severity: Crit, Check: "client-idle", Field: "IdleTimeout", Hop: i,
			Message: OutlivesMessage(c.Idle, h.Name, h.Idle),
			Advice:  fmt.Sprintf("set the client idle timeout below %s (suggested %s)", h.Idle, sug.Idle)})
	}
	if len(out) == 0 {
		out = append(out, Finding{Severity: OK, Check: "client-idle", Hop: -1, Message: fmt.Sprintf(
			"client idle %s is below every hop on its connection (%s)", FormatIdle(c.Idle), Format(client))})
	}
	return out
}

// pathShape notes where the path leaves the client's connection unclear:
// an unmarked hop with hops behind it, or a path that ends at a
// pass-through hop (the server is not declared).
func pathShape(client []Hop) []Finding {
	var out []Finding
	for i, h := range client[:max(len(client)-1, 0)] {
		if h.Kind == Unmarked {
			out = append(out, Finding{Severity: Info, Check: "path", Hop: i, Message: fmt.Sprintf(
				"%s is not marked terminates or passthrough: the hops behind it bound the client too", h.Name),
				Advice: fmt.Sprintf("mark %s terminates if it ends the client's TCP connection and pools its own upstream ones (an L7 proxy), passthrough if it forwards it (NAT, L4 balancer)", h.Name)})
		}
	}
	if n := len(client); n > 0 && client[n-1].Kind == PassThrough {
		out = append(out, Finding{Severity: Info, Check: "path", Hop: n - 1, Message: fmt.Sprintf(
			"the path ends at pass-through %s: the server behind it is not declared", client[n-1].Name),
			Advice: "declare the server (its keep-alive timeout) as the last hop"})
	}
	return out
}

// proxies judges each terminating hop as the client of the hops behind it,
// up to the next terminating hop: its upstream idle timeout must be below
// theirs.
func proxies(hops []Hop) []Finding {
	var out []Finding
	for i, p := range hops {
		if p.Kind != Terminates || i == len(hops)-1 {
			continue
		}
		behind := ClientHops(hops[i+1:])
		n := len(out)
		for _, j := range outlived(behind, p.Upstream) {
			out = append(out, proxyOutlives(p, behind[j], i+1+j))
		}
		if len(out) == n {
			out = append(out, Finding{Severity: OK, Check: "proxy-idle", Hop: i, Message: fmt.Sprintf(
				"%s (upstream idle %s) gives up upstream connections before %s does", p.Name, FormatIdle(p.Upstream), Format(behind))})
		}
	}
	return out
}

func proxyOutlives(p, h Hop, index int) Finding {
	window := fmt.Sprintf("after %s idle", h.Idle)
	advice := fmt.Sprintf("give %s an upstream idle timeout below %s's %s", p.Name, h.Name, h.Idle)
	if p.Upstream > 0 {
		window = fmt.Sprintf("between %s and %s idle", h.Idle, p.Upstream)
		advice = fmt.Sprintf("raise %s's idle timeout above %s's %s: a backend must outlive the proxy in front of it", h.Name, p.Name, p.Upstream)
	}
	return Finding{Severity: Crit, Check: "proxy-idle", Hop: index, Message: fmt.Sprintf(
		"%s keeps idle upstream connections %s ≥ %s %s: it reuses connections %s has closed, and requests fail (502s) %s",
		p.Name, FormatIdle(p.Upstream), h.Name, h.Idle, h.Name, window), Advice: advice}
}

func keepAlive(client []Hop, c, sug Client) Finding {
	f := Finding{Severity: OK, Check: "keepalive", Hop: -1}
	m, ok := smallestPassThrough(client)
	if ok {
		f.Hop = indexOf(client, m)
	}
	switch {
	case !ok && c.KeepAlive <= 0:
		f.Severity, f.Message = Info, "keepalive off: no pass-through hop on the client's connection, but dead peers of idle connections go unnoticed"
		f.Advice = fmt.Sprintf("enable keepalive (suggested idle %s) to find dead peers", sug.KeepAlive)
	case !ok:
		f.Message = fmt.Sprintf("keepalive idle %s; no pass-through hop on the client's connection", c.KeepAlive)
	case c.KeepAlive <= 0:
		f.Severity, f.Message = Warn, fmt.Sprintf("keepalive off behind pass-through %s %s: a connection held quiet (a long transaction, a subscription) loses its flow state", m.Name, m.Idle)
		f.Advice = fmt.Sprintf("enable keepalive with idle %s", sug.KeepAlive)
	case c.KeepAlive >= m.Idle:
		f.Severity, f.Field = Crit, "KeepAliveIdle"
		f.Message = fmt.Sprintf("keepalive idle %s not below pass-through %s %s: its flow state expires before the first probe", c.KeepAlive, m.Name, m.Idle)
		f.Advice = fmt.Sprintf("set keepalive idle to %s", sug.KeepAlive)
	case c.KeepAlive+c.Interval >= m.Idle:
		f.Severity = Warn
		f.Message = fmt.Sprintf("keepalive idle %s + interval %s reaches pass-through %s %s: one lost probe and the flow expires", c.KeepAlive, c.Interval, m.Name, m.Idle)
		f.Advice = fmt.Sprintf("set keepalive idle to %s and the interval below %s", sug.KeepAlive, m.Idle-sug.KeepAlive)
	default:
		f.Message = fmt.Sprintf("keepalive idle %s + interval %s is below pass-through %s %s", c.KeepAlive, c.Interval, m.Name, m.Idle)
	}
	return f
}

func indexOf(hops []Hop, h Hop) int {
	for i := range hops {
		if hops[i] == h {
			return i
		}
	}
	return -1
}

func userTimeout(c, sug Client) Finding {
	f := Finding{Severity: OK, Check: "user-timeout", Hop: -1}
	probe := c.KeepAlive + c.Interval
	switch {
	case c.UserTimeout <= 0:
		f.Severity, f.Message = Info, "no TCP_USER_TIMEOUT: unacknowledged writes into a black hole retry for about 15 minutes"
		f.Advice = fmt.Sprintf("set a user timeout (suggested %s)", sug.UserTimeout)
	case c.KeepAlive <= 0:
		f.Message = fmt.Sprintf("user timeout %s bounds unacknowledged writes (keepalive off)", c.UserTimeout)
	case c.UserTimeout <= probe:
		f.Severity, f.Field = Crit, "UserTimeout"
		f.Message = fmt.Sprintf("user timeout %s ≤ keepalive idle %s + interval %s: one lost probe kills an idle connection", c.UserTimeout, c.KeepAlive, c.Interval)
		f.Advice = fmt.Sprintf("set the user timeout to idle + interval × count = %s", c.KeepAlive+c.Interval*time.Duration(max(c.Count, 2)))
	default:
		f.Message = fmt.Sprintf("user timeout %s exceeds keepalive idle + interval (%s)", c.UserTimeout, probe)
	}
	return f
}

func lifetime(client []Hop, c Client) Finding {
	h, ok := smallest(client, func(h Hop) time.Duration { return h.Lifetime })
	switch {
	case !ok:
		return Finding{Severity: OK, Check: "lifetime", Hop: -1, Message: "no hop on the client's connection caps connection age"}
	case c.Lifetime <= 0 || c.Lifetime > h.Lifetime:
		return Finding{Severity: Crit, Check: "lifetime", Field: "MaxLifetime", Hop: indexOf(client, h), Message: fmt.Sprintf(
			"client lifetime %s outlives %s's hard cap %s: connections older than %s are closed under the client",
			FormatIdle(c.Lifetime), h.Name, h.Lifetime, h.Lifetime),
			Advice: fmt.Sprintf("set the client lifetime to at most %s", h.Lifetime)}
	}
	return Finding{Severity: OK, Check: "lifetime", Hop: indexOf(client, h), Message: fmt.Sprintf(
		"client lifetime %s is within %s's hard cap %s", c.Lifetime, h.Name, h.Lifetime)}
}
