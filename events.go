package rstpool

import (
	"context"
	"log/slog"
	"time"
)

// An EventKind names something rstpool did or saw.
type EventKind uint8

// The kinds of Event. Each says which fields of the Event it fills.
const (
	_ EventKind = iota
	// EventDial: a connect finished. Err is nil, or the failure with its
	// Class and Cause; Duration is how long the connect took, refused
	// retries included.
	EventDial
	// EventDialRetry: a refused connect is tried again after Duration.
	EventDialRetry
	// EventDown: Addr refused connects for a whole RefusedRetry budget;
	// until a probe connect succeeds, connects to it fail at once.
	EventDown
	// EventUp: Addr, marked down, accepted a connect again after Duration.
	EventUp
	// EventRetired: a consumer closed a connection it would otherwise have
	// handed out. Reason is "idle-limit", "lifetime", "peer-closed",
	// "unsolicited-data" or "ping-failed"; Duration is how long it had been
	// idle.
	EventRetired
	// EventCaughtDead: a consumer found, before handing it out, a
	// connection whose peer was gone or out of step. Reason says how:
	// "peer-closed" (a peek saw a FIN or an RST), "unsolicited-data",
	// "ping-failed"; Duration is how long it had been idle.
	EventCaughtDead
	// EventRetry: work runs a second time on another connection. Reason is
	// the RetryReason ("nothing-written", "idempotent"); Err, Class and
	// Cause are the first attempt's failure.
	EventRetry
	// EventRetryDenied: the retry rule allowed a retry but the retry budget
	// had none left; Err is the failure returned to the caller.
	EventRetryDenied
	// EventSurfaced: a connection failure reached the caller, with its
	// Class and Cause. (A Pool does not report errors of Do's fn.)
	EventSurfaced
	// EventLearned: a Transport set the idle limit of connections to Addr
	// to Duration, below the idle timeout of a hop nobody declared, or
	// raised it again when the evidence stopped.
	EventLearned
	// EventUntracked: a consumer got a connection that no rstpool Dialer
	// dialed, so it can neither peek at it nor count its bytes. Reported
	// once per consumer.
	EventUntracked

	numEventKinds
)

var eventKindNames = [...]string{"", "dial", "dial-retry", "down", "up", "retired", "caught-dead",
	"retry", "retry-denied", "surfaced", "learned", "untracked"}

// String names the kind, as "dial" or "retry-denied".
func (k EventKind) String() string {
	if k > 0 && k < numEventKinds {
		return eventKindNames[k]
	}
	return "unknown"
}

// An Event is one thing a Dialer, Transport, Pool or wrapped database
// connector did or saw, delivered to an Observer as it happens.
type Event struct {
	Kind EventKind
	// Source is the part that reports it: "dialer", "transport", "pool",
	// "sql" or "pgx".
	Source   string
	Addr     string        // the destination (host:port), when known
	Class    Class         // the failure's class, for failures
	Cause    Cause         // its likely cause, for failures
	Reason   string        // why, for EventRetired, EventRetry and EventRetryDenied
	Duration time.Duration // see the Kind
	Err      error         // the failure, when there is one
}

// An Observer receives events. It is called synchronously on the path
// that reports the event, so it must be quick and must not block: count,
// or hand the event to a channel without waiting. A nil Observer costs
// nothing.
type Observer func(Event)

// Observers returns an Observer that hands each event to every non-nil one
// of os in turn: to count and log, say.
func Observers(os ...Observer) Observer {
	var all []Observer
	for _, o := range os {
		if o != nil {
			all = append(all, o)
		}
	}
	if len(all) == 0 {
		return nil
	}
	return func(e Event) {
		for _, o := range all {
			o(e)
		}
	}
}

// emit delivers e to o, if there is one.
func (o Observer) emit(e Event) {
	if o != nil {
		o(e)
	}
}

// LogEvents returns an Observer that writes each event to l: failures that
// reach the caller and destinations going down at Warn, retries,
// retirements, dead connections caught and learned limits at Info, and
// dials at Debug. A nil l means slog.Default().
func LogEvents(l *slog.Logger) Observer {
	if l == nil {
		l = slog.Default()
	}
	return func(e Event) {
		level := eventLevel(e)
		ctx := context.Background()
		if !l.Enabled(ctx, level) {
			return
		}
		attrs := []slog.Attr{slog.String("source", e.Source)}
		if e.Addr != "" {
			attrs = append(attrs, slog.String("addr", e.Addr))
		}
		if e.Class != ClassNone {
			attrs = append(attrs, slog.String("class", e.Class.String()), slog.String("cause", e.Cause.String()))
		}
		if e.Reason != "" {
			attrs = append(attrs, slog.String("reason", e.Reason))
		}
		if e.Duration != 0 {
			attrs = append(attrs, slog.Duration("duration", e.Duration))
		}
		if e.Err != nil {
			attrs = append(attrs, slog.String("err", e.Err.Error()))
		}
		l.LogAttrs(ctx, level, "rstpool "+e.Kind.String(), attrs...)
	}
}

func eventLevel(e Event) slog.Level {
	switch e.Kind {
	case EventSurfaced, EventDown, EventRetryDenied, EventUntracked:
		return slog.LevelWarn
	case EventDial, EventDialRetry:
		if e.Err != nil && e.Kind == EventDial {
			return slog.LevelInfo
		}
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
