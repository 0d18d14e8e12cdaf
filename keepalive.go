package rstpool

import (
	"fmt"
	"net"
	"time"
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

// settings resolves the Dialer's defaults and checks that they fit together.
func (d *Dialer) settings() (*settings, error) {
	s := &settings{}
	if d.NetDialer != nil {
		s.net = *d.NetDialer
	} else {
		s.net.Timeout = DefaultDialTimeout
	}
	steps := [...]func(*settings) error{d.limits, d.keepAlive, d.userTimeout}
	for _, step := range steps {
		if err := step(s); err != nil {
			return nil, err
		}
	}
	s.refusedRetry = orDefault(d.RefusedRetry, DefaultRefusedRetry)
	return s, nil
}

func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// limits resolves the idle limit, lifetime and validation window.
func (d *Dialer) limits(s *settings) error {
	s.idleLimit = d.IdleTimeout
	if s.idleLimit == 0 {
		s.idleLimit = orDefault(d.Chain.ClientIdleTimeout(), DefaultIdleTimeout)
	} else if err := d.Chain.Check(s.idleLimit); err != nil && d.IdleTimeout > 0 {
		return configErr("Dialer.IdleTimeout", "%s outlives the declared chain: %v", d.IdleTimeout, err)
	}
	s.maxLifetime = d.MaxLifetime
	hopCap := d.Chain.MaxLifetime()
	if s.maxLifetime == 0 {
		s.maxLifetime = hopCap
	} else if hopCap > 0 && (s.maxLifetime < 0 || s.maxLifetime > hopCap) {
		return configErr("Dialer.MaxLifetime", "%s exceeds the chain's hard cap of %s", d.MaxLifetime, hopCap)
	}
	s.validateAfter = orDefault(d.ValidateAfter, DefaultValidateAfter)
	s.peek = s.validateAfter > 0
	if !s.peek {
		s.validateAfter = DefaultValidateAfter
	}
	return nil
}

// keepAlive resolves and checks the TCP keepalive options.
func (d *Dialer) keepAlive(s *settings) error {
	idle := d.KeepAliveIdle
	if idle == 0 {
		idle = orDefault(d.Chain.KeepAliveIdle(), DefaultKeepAliveIdle)
	}
	if idle < 0 {
		return nil
	}
	ka := net.KeepAliveConfig{
		Enable:   true,
		Idle:     idle,
		Interval: orDefault(d.KeepAliveInterval, DefaultKeepAliveInterval),
		Count:    d.KeepAliveCount,
	}
	if ka.Count == 0 {
		ka.Count = DefaultKeepAliveCount
	}
	if err := checkSeconds("Dialer.KeepAliveIdle", ka.Idle); err != nil {
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
func (d *Dialer) userTimeout(s *settings) error {
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
