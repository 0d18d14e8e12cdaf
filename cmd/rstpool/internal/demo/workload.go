package demo

import (
	"math/rand/v2"
	"net/http"
	"time"
)

// Kind is the kind of a request of the workload.
type Kind uint8

// The kinds of requests. A schedule draws the HTTP kinds; a database leg
// turns GET and PUT into reads and both POSTs into writes.
const (
	KindGet       Kind = iota // GET: idempotent
	KindPut                   // PUT: idempotent
	KindPostKeyed             // POST with an Idempotency-Key: safe to replay
	KindPost                  // POST without a key: never safe to replay
	KindRead                  // a database read: idempotent
	KindWrite                 // a database write the server counts: never safe to replay
	numKinds
)

// numHTTPKinds is the number of kinds a schedule draws.
const numHTTPKinds = KindRead

var kindNames = [numKinds]string{"get", "put", "post_keyed", "post", "read", "write"}

// String returns the kind's key in the report: "get", "put", "post_keyed",
// "post", "read" or "write".
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "?"
}

// Idempotent reports whether repeating the request has the effect of sending
// it once: every kind but a POST without an Idempotency-Key and a write.
func (k Kind) Idempotent() bool { return k != KindPost && k != KindWrite }

// dbKind is the database kind of an HTTP kind: GET and PUT read, both POSTs
// write.
func (k Kind) dbKind() Kind {
	if k == KindGet || k == KindPut {
		return KindRead
	}
	return KindWrite
}

// Method returns the HTTP method of the kind.
func (k Kind) Method() string {
	switch k {
	case KindGet:
		return http.MethodGet
	case KindPut:
		return http.MethodPut
	}
	return http.MethodPost
}

// A Request is one request of a Schedule.
type Request struct {
	ID   int  // unique in the schedule, from 0
	Kind Kind // method and idempotency
	Body int  // request body size in bytes; 0 for GET
}

// A Burst is a group of requests sent concurrently after a quiet gap, in
// which no request is in flight and every pooled connection sits idle.
type Burst struct {
	Gap      time.Duration
	Requests []Request
}

// Workload shapes a Schedule. Gaps are relative to Idle, the idle timeout of
// the path's shortest hop.
type Workload struct {
	Requests int           // total requests
	Seed     int64         // seeds every random choice
	Idle     time.Duration // the idle timeout that long gaps exceed
	LongGaps float64       // share of gaps longer than Idle, in [0, 1]
}

// Burst sizes: small enough that gaps dominate the schedule's length, large
// enough that several connections are open at once.
const (
	minBurst = 6
	maxBurst = 24
)

// Schedule is the workload as bursts separated by gaps. The same Workload
// always gives the same Schedule, so two clients see exactly the same
// requests and pauses.
func (w Workload) Schedule() []Burst {
	rng := rand.New(rand.NewPCG(uint64(w.Seed), 0x5eed))
	var bursts []Burst
	for id := 0; id < w.Requests; {
		n := min(minBurst+rng.IntN(maxBurst-minBurst+1), w.Requests-id)
		b := Burst{Gap: w.gap(rng, len(bursts) == 0)}
		for range n {
			b.Requests = append(b.Requests, newRequest(rng, id))
			id++
		}
		bursts = append(bursts, b)
	}
	return bursts
}

// gap draws the quiet time before a burst: none before the first; a long
// one (1.1 to 1.6 × Idle) with probability LongGaps; otherwise a short one
// (up to half of Idle), which keeps connections pooled and alive.
func (w Workload) gap(rng *rand.Rand, first bool) time.Duration {
	if first || w.Idle <= 0 {
		return 0
	}
	f := rng.Float64() * 0.5
	if rng.Float64() < w.LongGaps {
		f = 1.1 + rng.Float64()*0.5
	}
	return time.Duration(f * float64(w.Idle))
}

// newRequest draws a request: 40% GET, 20% PUT, 20% POST with a key, 20%
// POST without.
func newRequest(rng *rand.Rand, id int) Request {
	r := Request{ID: id}
	switch p := rng.IntN(10); {
	case p < 4:
		r.Kind = KindGet
	case p < 6:
		r.Kind = KindPut
	case p < 8:
		r.Kind = KindPostKeyed
	default:
		r.Kind = KindPost
	}
	if r.Kind != KindGet {
		r.Body = 64 + rng.IntN(449)
	}
	return r
}

// Length returns the sum of the schedule's gaps: a lower bound on the time
// it takes to run.
func Length(s []Burst) time.Duration {
	var d time.Duration
	for _, b := range s {
		d += b.Gap
	}
	return d
}
