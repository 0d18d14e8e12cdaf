package rstpool

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// prepare returns the request to send: the caller's own when nothing needs
// to change, else a shallow copy whose body without GetBody is recorded as
// net/http reads it (so that a retry can send it again) or whose large body
// announces itself with "Expect: 100-continue". Nothing is read ahead: a
// streaming or duplex body flows as it would through net/http alone. The
// caller's request is never modified.
func (t *Transport) prepare(req *http.Request, dst *destName) (r *http.Request, rb *replayBody, probe bool) {
	r, probe = t.expectContinue(req, dst)
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return r, nil, probe
	}
	limit := t.MaxBufferedBody
	if limit == 0 {
		limit = DefaultMaxBufferedBody
	}
	if r == req {
		r = shallow(req)
	}
	rb = &replayBody{src: req.Body, limit: max(limit, 0)}
	rb.stop = context.AfterFunc(req.Context(), rb.abort)
	r.Body = rb
	return r, rb, probe
}

// expectContinue returns req, or a copy of it with "Expect: 100-continue"
// when its body is known to be large and its destination answers 100
// Continue or is to be found out (probe). A body of unknown length gets
// none: a duplex exchange would wait for a 100 Continue the server never
// sends.
func (t *Transport) expectContinue(req *http.Request, dst *destName) (*http.Request, bool) {
	threshold := t.ExpectContinueBody
	if threshold == 0 {
		threshold = DefaultExpectContinueBody
	}
	if threshold < 0 || req.ContentLength <= threshold || req.Body == nil || req.Body == http.NoBody ||
		req.Header.Get("Expect") != "" {
		return req, false
	}
	expect, probe := t.expect.ask(dst)
	if !expect {
		return req, false
	}
	r := shallow(req)
	r.Header = req.Header.Clone()
	r.Header.Set("Expect", "100-continue")
	return r, probe
}

// expectFailed returns the request to send again when the server answered
// 417 (Expectation Failed) to an expectation the Transport added, as RFC
// 9110 (10.1.1) asks: the same request without it. The body was never
// sent. It returns nil for any other response.
func (t *Transport) expectFailed(req, r *http.Request, rb *replayBody, resp *http.Response, dst *destName) *http.Request {
	if resp.StatusCode != http.StatusExpectationFailed || req.Header.Get("Expect") != "" || r.Header.Get("Expect") == "" ||
		!replayable(r, rb) {
		return nil
	}
	r2, err := rewind(r, rb)
	if err != nil {
		return nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	if r2 == r {
		r2 = shallow(r)
	}
	r2.Header = r.Header.Clone()
	r2.Header.Del("Expect")
	t.expect.settle(dst, true)
	return r2
}

// expectKnownFor is how long what a destination showed of 100 Continue is
// remembered: one that let the wait run out, or refused the expectation,
// is sent none; one that answered is sent it without finding out again.
const expectKnownFor = 10 * time.Minute

// expectations remembers, per destination, whether it answers 100
// Continue. While the first upload to a destination known neither way
// finds out, the uploads beside it go without the expectation, as net/http
// would send them: a wait that runs out is paid once, not by each.
type expectations struct {
	mu sync.Mutex
	m  map[string]expectation
}

// An expectation is what is known of one destination.
type expectation struct {
	until   int64 // mono time the verdict expires
	silent  bool  // the verdict: no 100 Continue comes
	probing bool  // an upload is finding out; no verdict yet
}

// ask reports whether an upload to dst is sent an expectation, and
// whether it is the upload that finds out (done must follow).
func (x *expectations) ask(dst *destName) (expect, probe bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.m[dst.String()]
	switch {
	case e.probing:
		return false, false
	case ok && mono() < e.until:
		return !e.silent, false
	}
	x.put(dst.String(), expectation{probing: true})
	return true, true
}

// settle records the verdict an upload to dst showed.
func (x *expectations) settle(dst *destName, silent bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.put(dst.String(), expectation{until: mono() + int64(expectKnownFor), silent: silent})
}

// done ends the finding out of an upload to dst that showed no verdict
// (it failed): the next upload finds out.
func (x *expectations) done(dst *destName) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m[dst.String()].probing {
		delete(x.m, dst.String())
	}
}

// put sets dst's entry; a new one first clears the expired verdicts, so
// the table holds the destinations of the last expectKnownFor.
func (x *expectations) put(dst string, e expectation) {
	if _, ok := x.m[dst]; !ok {
		if x.m == nil {
			x.m = make(map[string]expectation)
		}
		now := mono()
		for k, old := range x.m {
			if !old.probing && old.until <= now {
				delete(x.m, k)
			}
		}
	}
	x.m[dst] = e
}

// learn records whether the attempt's destination answered the
// expectation: silent when no answer, 100 or final, arrived within the
// timeout, so that the body went when the wait ran out. The answer tells,
// not the end of the body's write: net/http may hand over a response
// before its writer has finished (a server that answers once the body
// begins, or a busy machine).
func (x *expectations) learn(a *attempt, dst *destName, timeout time.Duration) {
	began := a.waited100.Load()
	if began == 0 {
		return
	}
	x.settle(dst, !a.got100.Load() && a.firstByte.Load()-began >= int64(timeout))
}

func shallow(req *http.Request) *http.Request {
	r := new(http.Request)
	*r = *req
	return r
}

// A replayBody is a request body without GetBody as net/http reads it: it
// keeps a copy of what was read, up to a limit, so that a retry can send
// the whole body again when it fit. net/http closes a body when an attempt
// fails; the caller's body stays open until the Transport is done with it
// (finish), so that a retry can send what was read and then the rest. When
// the request's context ends, the caller's body is closed at once: a body
// whose producer blocks (an io.Pipe) would otherwise hold net/http's
// request writer, and RoundTrip, past the context.
type replayBody struct {
	src   io.ReadCloser
	limit int64
	stop  func() bool // stops the context's abort

	mu          sync.Mutex
	buf         []byte // what was read, while it fits the limit
	read        bool   // a Read happened
	over        bool   // more than limit was read: no replay
	eof         bool   // the whole body was read
	done        bool   // the Transport is done: Close closes src
	closedEarly bool   // closed by net/http before done
	handed      bool   // src itself went to a retry, whose net/http closes it
	srcClosed   bool
}

func (b *replayBody) Read(p []byte) (int, error) {
	n, err := b.src.Read(p)
	b.mu.Lock()
	b.read = true
	if !b.over && int64(len(b.buf)+n) <= b.limit {
		b.buf = append(b.buf, p[:n]...)
	} else {
		b.over, b.buf = true, nil
	}
	if err == io.EOF {
		b.eof = true
	}
	b.mu.Unlock()
	return n, err
}

// Close closes the caller's body once the Transport is done with it.
func (b *replayBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.closedEarly = true
		return nil
	}
	return b.closeSrc()
}

func (b *replayBody) closeSrc() error {
	if b.srcClosed || b.handed {
		return nil
	}
	b.srcClosed = true
	b.stop()
	return b.src.Close()
}

// abort closes the caller's body when the request's context ends, even
// when a retry holds it.
func (b *replayBody) abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.srcClosed {
		b.srcClosed = true
		_ = b.src.Close()
	}
}

// handedBody is the caller's body as a retry's net/http holds it: its
// Close, whoever calls it, closes the body once and ends the abort's
// registration on the request's context, so that nothing of the request
// outlives it.
type handedBody struct {
	b *replayBody
	r io.Reader // what was read of it, then the rest
}

func (h handedBody) Read(p []byte) (int, error) { return h.r.Read(p) }

func (h handedBody) Close() error {
	b := h.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stop()
	if b.srcClosed {
		return nil
	}
	b.srcClosed = true
	return b.src.Close()
}

// canReplay reports whether the whole body can be sent again.
func (b *replayBody) canReplay() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.over && (b.eof || !b.srcClosed && !b.handed)
}

// replay returns a body that sends the whole body again: the copy when all
// of it was read and fit; else the copy of what was read, then the rest of
// the caller's body, which then belongs to the retry (net/http closes it).
func (b *replayBody) replay() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eof && !b.over {
		return io.NopCloser(bytes.NewReader(b.buf))
	}
	b.handed = true
	return handedBody{b: b, r: io.MultiReader(bytes.NewReader(b.buf), b.src)}
}

// finish ends the Transport's use of the body: the caller's body is closed
// now if net/http already closed it, else when net/http does. A body whose
// copy was replayed, or that is closed already, needs the context's abort
// no more.
func (b *replayBody) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	switch {
	case b.closedEarly:
		_ = b.closeSrc()
	case b.srcClosed:
		b.stop()
	}
}

// replayable reports whether r can be sent again: no body, a GetBody, or a
// recorded body that can be replayed.
func replayable(r *http.Request, rb *replayBody) bool {
	if rb != nil {
		return rb.canReplay()
	}
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}

// rewind returns a copy of r with a fresh body for another attempt.
func rewind(r *http.Request, rb *replayBody) (*http.Request, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return r, nil
	}
	r2 := shallow(r)
	if rb != nil {
		r2.Body = rb.replay()
		return r2, nil
	}
	body, err := r.GetBody()
	if err != nil {
		return nil, err
	}
	r2.Body = body
	return r2, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
