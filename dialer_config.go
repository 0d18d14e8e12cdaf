package rstpool

import (
	"fmt"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rstpool/rstpool/internal/pathrule"
)

// Kernel limits on the keepalive options (Linux MAX_TCP_KEEPIDLE,
// MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT).
const (
	maxKeepAliveSeconds = 32767
	maxKeepAliveCount   = 127
)

// A ConfigError reports a Dialer or pool setting that cannot work.
type ConfigError struct {
	Field string // the setting, as "Dialer.KeepAliveCount"
	Msg   string // what is wrong with it
}

func (e *ConfigError) Error() string { return "rstpool: " + e.Field + " " + e.Msg }

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// settings are a Dialer's fields with defaults resolved and checked.
type settings struct {
	owner          *Dialer // the Dialer resolved: a copy of it resolves its own
	err            error   // a setting that cannot work
	net            net.Dialer
	tcp            net.Dialer // net with the keepalive and user timeout, for TCP
	keepAlive      net.KeepAliveConfig
	userTimeout    time.Duration // <= 0: not set
	idleLimit      time.Duration // <= 0: none
	maxLifetime    time.Duration // <= 0: none
	peekAfter      time.Duration // quiet time after which a Write checks first
	peek           bool          // check the socket, not only what a read saw
	refusedRetry   time.Duration // <= 0: none
	refusedBackoff Backoff
	observer       Observer
}

// settings returns the Dialer's settings, resolved at its first use and
// kept: a Dialer's fields must not change once it has dialed. A copy of a
// Dialer resolves its own.
func (d *Dialer) settings() (*settings, error) {
	if s := (*settings)(atomic.LoadPointer(&d.resolved)); s != nil && s.owner == d {
		return s, s.err
	}
	s, err := d.resolve()
	if err != nil {
		s = &settings{err: err}
	}
	s.owner = d
	atomic.StorePointer(&d.resolved, unsafe.Pointer(s))
	return s, err
}

// resolve resolves the Dialer's defaults and checks that they fit together
// and fit the declared chain. Derived values never make an error: only a
// value the caller set does.
func (d *Dialer) resolve() (*settings, error) {
	s := &settings{observer: d.Observer}
	if d.NetDialer != nil {
		s.net = *d.NetDialer
	} else {
		s.net.Timeout = DefaultDialTimeout
	}
	hops, err := d.Chain.checked()
	if err != nil {
		return nil, err
	}
	p := path{hops: hops, derived: pathrule.Derive(hops, DefaultIdleTimeout, DefaultKeepAliveIdle,
		orDefault(d.KeepAliveInterval, DefaultKeepAliveInterval))}
	steps := [...]func(*settings, path) error{d.keepAlive, d.userTimeout, d.limits, d.fitChain, d.refused}
	for _, step := range steps {
		if err := step(s, p); err != nil {
			return nil, err
		}
	}
	s.tcp = s.net
	s.tcp.KeepAliveConfig, s.tcp.KeepAlive = s.keepAlive, -1
	s.tcp.Control, s.tcp.ControlContext = withUserTimeout(s.net.Control, s.net.ControlContext, s.userTimeout)
	return s, nil
}

// refused resolves the retries of refused connects.
func (d *Dialer) refused(s *settings, _ path) error {
	s.refusedRetry = orDefault(d.RefusedRetry, DefaultRefusedRetry)
	s.refusedBackoff = d.RefusedBackoff
	if s.refusedBackoff == (Backoff{}) {
		s.refusedBackoff = defaultRefusedBackoff
	}
	return s.refusedBackoff.check("Dialer.RefusedBackoff")
}

// path is the declared chain as the rules see it, and what it implies.
type path struct {
	hops    []pathrule.Hop
	derived pathrule.Derived
}

func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// limits resolves the idle limit, lifetime and validation window.
func (d *Dialer) limits(s *settings, p path) error {
	s.idleLimit = orDefault(d.IdleTimeout, p.derived.Idle)
	s.maxLifetime = orDefault(d.MaxLifetime, p.derived.Lifetime)
	s.peekAfter = orDefault(d.PeekAfter, DefaultPeekAfter)
	s.peek = s.peekAfter > 0 && canPeek
	if !s.peek {
		s.peekAfter = DefaultPeekAfter
	}
	return nil
}

// fitChain rejects a setting the caller made that the path rules judge
// critical on the declared chain: an idle limit a hop on the client's
// connection reaps first, a keepalive idle a middlebox forgets first, a
// lifetime beyond a hop's hard cap. It is the judgement "rstpool audit"
// prints, in the same words.
func (d *Dialer) fitChain(s *settings, p path) error {
	set := map[string]time.Duration{"IdleTimeout": d.IdleTimeout, "KeepAliveIdle": d.KeepAliveIdle, "MaxLifetime": d.MaxLifetime}
	if len(p.hops) == 0 || (d.IdleTimeout == 0 && d.KeepAliveIdle == 0 && d.MaxLifetime == 0) {
		return nil
	}
	// The advice, which quotes a suggestion, is not used here.
	for _, f := range pathrule.Findings(p.hops, s.client(), pathrule.Client{}) {
		if v := set[f.Field]; f.Severity == pathrule.Crit && v != 0 {
			return configErr("Dialer."+f.Field, "%s does not fit the declared chain: %s", pathrule.FormatIdle(v), f.Message)
		}
	}
	return nil
}

// client is the resolved settings as the path rules judge them.
func (s *settings) client() pathrule.Client {
	c := pathrule.Client{Idle: s.idleLimit, UserTimeout: s.userTimeout, Lifetime: s.maxLifetime}
	if s.keepAlive.Enable {
		c.KeepAlive, c.Interval, c.Count = s.keepAlive.Idle, s.keepAlive.Interval, s.keepAlive.Count
	}
	return c
}

// keepAlive resolves and checks the TCP keepalive options. A keepalive
// idle derived from the chain is a whole number of seconds by construction.
func (d *Dialer) keepAlive(s *settings, p path) error {
	if d.KeepAliveIdle < 0 {
		return nil
	}
	ka := net.KeepAliveConfig{
		Enable:   true,
		Idle:     d.KeepAliveIdle,
		Interval: orDefault(d.KeepAliveInterval, DefaultKeepAliveInterval),
		Count:    d.KeepAliveCount,
	}
	if ka.Count == 0 {
		ka.Count = DefaultKeepAliveCount
	}
	if ka.Idle == 0 {
		ka.Idle = p.derived.KeepAlive
	} else if err := checkSeconds("Dialer.KeepAliveIdle", ka.Idle); err != nil {
		return err
	}
	if err := checkSeconds("Dialer.KeepAliveInterval", ka.Interval); err != nil {
		return err
	}
	if ka.Count < 1 || ka.Count > maxKeepAliveCount {
		return configErr("Dialer.KeepAliveCount", "%d must be between 1 and %d (zero for the default)", ka.Count, maxKeepAliveCount)
	}
	s.keepAlive = ka
	return nil
}

// KeepAlive returns the TCP keepalive settings and TCP_USER_TIMEOUT the
// Dialer's connections get, defaults resolved: Enable false when keepalive
// is off, a zero user timeout when it is not set. Drivers that set their
// own socket options take them from here. The error is the one DialContext
// would return.
func (d *Dialer) KeepAlive() (ka net.KeepAliveConfig, userTimeout time.Duration, err error) {
	s, err := d.settings()
	if err != nil {
		return net.KeepAliveConfig{}, 0, err
	}
	return s.keepAlive, max(s.userTimeout, 0), nil
}

// checkSeconds checks a keepalive duration: the kernel counts whole
// seconds, and rounding would silently change what the caller asked for.
func checkSeconds(field string, v time.Duration) error {
	switch {
	case v < time.Second:
		return configErr(field, "%s must be at least 1s (the kernel counts keepalive time in seconds)", v)
	case v%time.Second != 0:
		return configErr(field, "%s must be a whole number of seconds", v)
	case v > maxKeepAliveSeconds*time.Second:
		return configErr(field, "%s exceeds the kernel's limit of %ds", v, maxKeepAliveSeconds)
	}
	return nil
}

// userTimeout resolves TCP_USER_TIMEOUT and checks it against keepalive:
// Linux kills a connection whose probes have gone unanswered for the user
// timeout at the next probe, so a user timeout at or below idle + interval
// lets one lost probe kill a healthy connection (grpc-go#6250).
func (d *Dialer) userTimeout(s *settings, _ path) error {
	ka := s.keepAlive
	u := d.UserTimeout
	switch {
	case u < 0:
		return nil
	case u == 0 && ka.Enable:
		u = ka.Idle + ka.Interval*time.Duration(ka.Count)
	case u == 0:
		u = 60 * time.Second
	case u < time.Millisecond || u%time.Millisecond != 0:
		return configErr("Dialer.UserTimeout", "%s must be a whole number of milliseconds", u)
	case ka.Enable && u <= ka.Idle+ka.Interval:
		return configErr("Dialer.UserTimeout", "%s must exceed KeepAliveIdle + KeepAliveInterval (%s), or one lost keepalive probe kills the connection",
			u, ka.Idle+ka.Interval)
	}
	s.userTimeout = u
	return nil
}
