package rstpool

import (
	"bytes"
	"io"
	"net/http"
)

// prepare returns the request to send: the caller's own when nothing needs
// to change, else a shallow copy whose small body is buffered (so that a
// retry can replay it) or whose large body announces itself with
// "Expect: 100-continue". The caller's request is never modified.
func (t *Transport) prepare(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return t.expect(req, req), nil
	}
	limit := t.MaxBufferedBody
	if limit == 0 {
		limit = DefaultMaxBufferedBody
	}
	if limit < 0 || req.ContentLength > limit {
		return t.expect(req, req), nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		closeBody(req)
		return nil, err
	}
	r := shallow(req)
	if int64(len(buf)) > limit { // unknown length, larger than the limit: stream it
		r.Body = &joinedBody{Reader: io.MultiReader(bytes.NewReader(buf), req.Body), Closer: req.Body}
		return t.expect(req, r), nil
	}
	closeBody(req)
	setBufferedBody(r, buf)
	return r, nil
}

// expect adds "Expect: 100-continue" to r (a copy of req, or req itself)
// when its body is large; it returns the request to send.
func (t *Transport) expect(req, r *http.Request) *http.Request {
	threshold := t.ExpectContinueBody
	if threshold == 0 {
		threshold = DefaultExpectContinueBody
	}
	large := req.ContentLength > threshold || (req.ContentLength <= 0 && r != req) // 0 with a body: unknown
	if threshold < 0 || r.Body == nil || r.Body == http.NoBody || !large || req.Header.Get("Expect") != "" {
		return r
	}
	if r == req {
		r = shallow(req)
	}
	r.Header = req.Header.Clone()
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	r.Header.Set("Expect", "100-continue")
	return r
}

func shallow(req *http.Request) *http.Request {
	r := new(http.Request)
	*r = *req
	return r
}

func setBufferedBody(r *http.Request, buf []byte) {
	r.ContentLength = int64(len(buf))
	if len(buf) == 0 {
		r.Body, r.GetBody = http.NoBody, nil
		return
	}
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	r.Body, _ = r.GetBody()
}

// joinedBody streams the bytes read ahead, then the rest of the caller's
// body, and closes the caller's body.
type joinedBody struct {
	io.Reader
	io.Closer
}

// replayable reports whether r's body can be sent again.
func replayable(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}

// rewind returns a copy of r with a fresh body for another attempt.
func rewind(r *http.Request) (*http.Request, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return r, nil
	}
	body, err := r.GetBody()
	if err != nil {
		return nil, err
	}
	r2 := shallow(r)
	r2.Body = body
	return r2, nil
}
