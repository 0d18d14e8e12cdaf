package tally

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rstpool/rstpool"
)

// DefaultDestinations is how many distinct destinations get a label value
// of their own when the exporter's option is zero: enough for the
// upstreams of a typical service, few enough that a client of thousands of
// hosts cannot blow up the number of series.
const DefaultDestinations = 32

// maxDestinations bounds the option: destination indexes are 16 bits.
const maxDestinations = 1 << 15

// Label values for what no event says or the cap leaves out.
const (
	Unknown = "unknown" // an event that names no destination
	Other   = "other"   // a destination past the cap, a source or reason not known
)

// fields are a series' labels as indexes.
type fields struct {
	kind   rstpool.EventKind
	source uint8
	dest   uint16
	reason uint8
	class  rstpool.Class
	cause  rstpool.Cause
}

// A key packs fields in one word: kind, source, destination (16 bits),
// reason, class, cause.
type key uint64

func (f fields) pack() key {
	return key(f.kind)<<56 | key(f.source)<<48 | key(f.dest)<<32 |
		key(f.reason)<<24 | key(f.class)<<16 | key(f.cause)<<8
}

func (k key) fields() fields {
	return fields{kind: rstpool.EventKind(k >> 56), source: uint8(k >> 48), dest: uint16(k >> 32),
		reason: uint8(k >> 24), class: rstpool.Class(k >> 16), cause: rstpool.Cause(k >> 8)}
}

// sources are the Event.Source values rstpool documents; any other counts
// as "other" (index 0).
var sources = [...]string{Other, "dialer", "transport", "pool", "sql", "pgx"}

func sourceIndex(s string) uint8 {
	for i := 1; i < len(sources); i++ {
		if sources[i] == s {
			return uint8(i)
		}
	}
	return 0
}

// reasons are the Event.Reason values rstpool documents: the retirement
// reasons, then the retry reasons. An empty reason is "none", any other
// "other".
var reasons = [...]string{"none", "idle-limit", "lifetime", "peer-closed", "unsolicited-data",
	"ping-failed", "nothing-written", "idempotent", Other}

func reasonIndex(r string) uint8 {
	for i, name := range reasons[:len(reasons)-1] {
		if i == 0 && r == "" || name == r {
			return uint8(i)
		}
	}
	return uint8(len(reasons) - 1)
}

// ClassLabel and CauseLabel are the label values of every Class and Cause.
var (
	ClassLabel [256]string
	CauseLabel [256]string
)

// causeSlugs are short label values for the causes, whose String is a
// phrase. A cause added to rstpool later gets its phrase as a slug up to
// any parenthesis.
var causeSlugs = map[rstpool.Cause]string{
	rstpool.CauseUnknown:      "unknown",
	rstpool.CauseIdleReaped:   "idle-reaped",
	rstpool.CausePeerDied:     "peer-died",
	rstpool.CauseUnreadData:   "unread-data",
	rstpool.CauseNotListening: "not-listening",
	rstpool.CauseBlackHole:    "black-hole",
	rstpool.CauseDown:         "down",
	rstpool.CauseConnectReset: "connect-reset",
}

func init() {
	unknownCause := rstpool.CauseUnknown.String()
	for i := range 256 {
		ClassLabel[i] = rstpool.Class(i).String()
		c := rstpool.Cause(i)
		switch s, ok := causeSlugs[c]; {
		case ok:
			CauseLabel[i] = s
		case c.String() == unknownCause:
			CauseLabel[i] = "unknown"
		default:
			CauseLabel[i] = slug(c.String())
		}
	}
}

// slug turns "destination down (refused ...)" into "destination-down".
func slug(phrase string) string {
	phrase, _, _ = strings.Cut(phrase, " (")
	return strings.Join(strings.Fields(strings.ToLower(phrase)), "-")
}

// destinations gives each destination an index: its own for the first
// max seen, destOther for the rest, destUnknown for an event without
// one.
type destinations struct {
	max   int // < 0: no destination label, every index destUnknown
	byKey atomic.Pointer[map[string]uint16]
	full  atomic.Bool

	mu    sync.Mutex
	names []string // by index
}

const (
	destUnknown uint16 = iota
	destOther
)

func (d *destinations) init(max int) {
	if max == 0 {
		max = DefaultDestinations
	}
	d.max = min(max, maxDestinations)
	d.names = []string{Unknown, Other}
	m := make(map[string]uint16)
	d.byKey.Store(&m)
}

func (d *destinations) index(addr string) uint16 {
	if d.max < 0 || addr == "" {
		return destUnknown
	}
	if i, ok := (*d.byKey.Load())[addr]; ok {
		return i
	}
	if d.full.Load() {
		return destOther
	}
	return d.add(addr)
}

func (d *destinations) add(addr string) uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := *d.byKey.Load()
	if i, ok := old[addr]; ok {
		return i
	}
	if len(old) >= d.max {
		d.full.Store(true)
		return destOther
	}
	m := make(map[string]uint16, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	i := uint16(len(d.names))
	m[addr] = i
	d.names = append(d.names, addr)
	d.byKey.Store(&m)
	return i
}

// snapshot returns the names by index.
func (d *destinations) snapshot() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.names[:len(d.names):len(d.names)]
}
