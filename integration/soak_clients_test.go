package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/rstpool/rstpool"
	"github.com/rstpool/rstpool/rstpgx"
)

// The two sides of the soak: every operation of the schedule runs once
// through the stock client and once through rstpool's, at the same moment,
// against the same server and fault.
const (
	stockSide = iota
	oursSide
)

var sideNames = [2]string{"stock", "rstpool"}

// A soakOp is one operation of the schedule, run by both sides.
type soakOp struct {
	idx    int    // index in the schedule
	kind   int    // index of its client kind
	method string // an HTTP method, or the kind's own word ("read", "insert")
	at     time.Duration
	burst  bool // part of a burst: the server holds it soakHold
	ep     int  // episode
}

// id is the operation's request id on one side: unique in the run, and an
// index into the servers' counters.
func (op *soakOp) id(side int) int64 { return int64(op.idx)*2 + int64(side) }

// doFunc runs an operation on one side.
type doFunc func(ctx context.Context, op *soakOp, id int64) error

// A soakKind is one client kind, with its stock and rstpool clients.
type soakKind struct {
	name    string
	methods []string
	idem    map[string]bool // methods whose errors rstpool must not surface
	do      [2]doFunc
	stream  time.Duration    // mean time between its operations in the stream; 0: special (one or two per episode)
	burst   int              // the most operations of one burst; 0: none
	budget  time.Duration    // rstpool's RefusedRetry for this kind: a fault longer may surface
	timeout time.Duration    // per operation
	dials   [2]atomic.Int64  // connections opened, by side
	dialsOf [2]*atomic.Int64 // where each side counts (twin runs swap them)
	quiesce []func()         // close idle connections, both sides
}

// newKind returns a kind with its counters wired.
func newKind(p *soakKind) *soakKind {
	p.dialsOf = [2]*atomic.Int64{&p.dials[stockSide], &p.dials[oursSide]}
	return p
}

func (k *soakKind) methodIndex(m string) int {
	for i, x := range k.methods {
		if x == m {
			return i
		}
	}
	return -1
}

// countDials wraps a dial function to count the connections it opens.
func countDials(n *atomic.Int64, dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err == nil {
			n.Add(1)
		}
		return c, err
	}
}

func stockNetDial() func(context.Context, string, string) (net.Conn, error) {
	return (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
}

// httpMethods are the methods every HTTP kind sends; POST is not
// idempotent.
var httpMethods = []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPost}

func idemSet(ms ...string) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		out[m] = true
	}
	return out
}

// httpKind builds an HTTP kind: stock is base with a counting dialer;
// rstpool is a Transport over a clone of base through d.
func (s *soak) httpKind(name, url string, base *http.Transport, d *rstpool.Dialer, ours *rstpool.Transport, timeout time.Duration) *soakKind {
	k := newKind(&soakKind{name: name, methods: httpMethods, idem: idemSet("GET", "PUT", "DELETE"),
		stream: 110 * time.Millisecond, burst: 40, budget: refusedBudget(d), timeout: timeout})
	stock := base.Clone()
	stock.DialContext = countDials(&k.dials[stockSide], stockNetDial())
	d.Observer = s.events.observer(s, len(s.kinds), &k.dials[oursSide])
	ours.Base, ours.Dialer = base.Clone(), d
	for side, rt := range []http.RoundTripper{stock, ours} {
		c := &http.Client{Transport: rt, Timeout: timeout}
		k.do[side] = httpDo(c, url)
		k.quiesce = append(k.quiesce, c.CloseIdleConnections)
	}
	return k
}

// refusedBudget is the RefusedRetry d applies.
func refusedBudget(d *rstpool.Dialer) time.Duration {
	switch {
	case d.RefusedRetry == 0:
		return rstpool.DefaultRefusedRetry
	case d.RefusedRetry < 0:
		return 0
	}
	return d.RefusedRetry
}

// httpDo sends one request with the operation's id; PUT and POST carry a
// small body (replayable: a strings.Reader).
func httpDo(c *http.Client, url string) doFunc {
	return func(ctx context.Context, op *soakOp, id int64) error {
		u := url
		if op.burst {
			u += "?hold=1"
		}
		var body io.Reader
		if op.method == http.MethodPut || op.method == http.MethodPost {
			body = strings.NewReader("payload " + strconv.FormatInt(id, 10))
		}
		req, err := http.NewRequestWithContext(ctx, op.method, u, body)
		if err != nil {
			return err
		}
		req.Header.Set("X-Request-Id", strconv.FormatInt(id, 10))
		return roundTrip(c, req)
	}
}

// roundTrip sends req and reads the answer; a status but 200 is an error.
func roundTrip(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %s", req.Method, req.URL.Host, resp.Status)
	}
	return err
}

// h2Base is the stock transport for HTTP/2: h2c (prior knowledge) or TLS.
func h2Base(h2c bool, tlsConf *tls.Config) *http.Transport {
	tr := soakBase()
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
		return tr
	}
	tr.TLSClientConfig = tlsConf.Clone()
	tr.ForceAttemptHTTP2 = true
	return tr
}

// soakBase is net/http's DefaultTransport with room for a burst's
// connections, and an IdleConnTimeout of 3 s (above every quiet spell of
// the short soak): net/http's timer for it holds a connection that
// CloseIdleConnections closed until it fires, and the soak measures the
// heap.
func soakBase() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	tr.IdleConnTimeout = soakIdleConnTimeout
	return tr
}

const soakIdleConnTimeout = 3 * time.Second

// uploadKind sends uploads above rstpool's Expect threshold: method "417"
// to a server that answers an Expect header with 417, "no-100" to one
// that never sends 100 Continue.
func (s *soak) uploadKind(url417, urlNo100 string) *soakKind {
	k := newKind(&soakKind{name: "upload", methods: []string{"417", "no-100"}, idem: idemSet(),
		budget: rstpool.DefaultRefusedRetry, timeout: 5 * time.Second})
	d := &rstpool.Dialer{}
	d.Observer = s.events.observer(s, len(s.kinds), &k.dials[oursSide])
	stock := soakBase()
	stock.DialContext = countDials(&k.dials[stockSide], stockNetDial())
	body := bytes.Repeat([]byte("u"), soakUpload)
	for side, rt := range []http.RoundTripper{stock, &rstpool.Transport{Base: soakBase(), Dialer: d}} {
		c := &http.Client{Transport: rt, Timeout: k.timeout}
		k.do[side] = func(ctx context.Context, op *soakOp, id int64) error {
			u := url417
			if op.method == "no-100" {
				u = urlNo100
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("X-Request-Id", strconv.FormatInt(id, 10))
			return roundTrip(c, req)
		}
		k.quiesce = append(k.quiesce, c.CloseIdleConnections)
	}
	return k
}

// A lineConn is a connection of the Pool's line protocol with its reader.
type lineConn struct {
	net.Conn
	r *bufio.Reader
}

func newLineConn(c net.Conn) net.Conn { return &lineConn{Conn: c, r: bufio.NewReader(c)} }

// exchange sends "ID HOLD" and reads "ok ID", within ctx's deadline.
func exchange(ctx context.Context, c *lineConn, op *soakOp, id int64) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
		defer c.SetDeadline(time.Time{})
	}
	hold := "0"
	if op.burst {
		hold = "1"
	}
	ids := strconv.FormatInt(id, 10)
	if _, err := io.WriteString(c, ids+" "+hold+"\n"); err != nil {
		return err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "ok "+ids {
		return fmt.Errorf("line protocol: answer %q to %s", line, ids)
	}
	return nil
}

// A naivePool is the stock side of the Pool kind: what a hand-written
// client of a line protocol does, a stack of idle connections reused
// without a check, and no retry.
type naivePool struct {
	mu      sync.Mutex
	idle    []idleLine
	maxIdle time.Duration // a connection idle longer is closed at checkout, unchecked (database/sql's ConnMaxIdleTime)
	dial    func(ctx context.Context) (net.Conn, error)
}

type idleLine struct {
	c     *lineConn
	since time.Time
}

func (p *naivePool) do(ctx context.Context, op *soakOp, id int64) error {
	var c *lineConn
	var stale []*lineConn
	p.mu.Lock()
	for c == nil && len(p.idle) > 0 {
		n := len(p.idle) - 1
		il := p.idle[n]
		p.idle = p.idle[:n]
		if p.maxIdle > 0 && time.Since(il.since) > p.maxIdle {
			stale = append(stale, il.c)
			continue
		}
		c = il.c
	}
	p.mu.Unlock()
	for _, sc := range stale {
		sc.Close()
	}
	if c == nil {
		nc, err := p.dial(ctx)
		if err != nil {
			return err
		}
		c = newLineConn(nc).(*lineConn)
	}
	if err := exchange(ctx, c, op, id); err != nil {
		c.Close()
		return err
	}
	p.mu.Lock()
	if len(p.idle) < 64 {
		p.idle, c = append(p.idle, idleLine{c, time.Now()}), nil
	}
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
	return nil
}

func (p *naivePool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, il := range idle {
		il.c.Close()
	}
}

// poolKind is the line protocol: a naive pool vs rstpool.Pool with a
// small RetryBudget and a short RefusedRetry.
func (s *soak) poolKind(addr string) (*soakKind, error) {
	k := newKind(&soakKind{name: "pool", methods: []string{"GET", "POST"}, idem: idemSet("GET"),
		stream: 110 * time.Millisecond, burst: 24, timeout: 3 * time.Second})
	d := &rstpool.Dialer{RefusedRetry: 500 * time.Millisecond}
	k.budget = refusedBudget(d)
	d.Observer = s.events.observer(s, len(s.kinds), &k.dials[oursSide])
	dial := countDials(&k.dials[stockSide], stockNetDial())
	// Both sides close connections idle over 2 s, as configured alike.
	const maxIdle = 2 * time.Second
	stock := &naivePool{maxIdle: maxIdle, dial: func(ctx context.Context) (net.Conn, error) { return dial(ctx, "tcp", addr) }}
	p, err := rstpool.NewPool(rstpool.PoolConfig{Addr: addr, Dialer: d, MaxSize: 32, Wrap: newLineConn,
		IdleTimeout: maxIdle, RetryBudget: rstpool.RetryBudget{Ratio: 0.2, Burst: 5}})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = p.Close(context.Background()) })
	k.do[stockSide] = stock.do
	k.do[oursSide] = func(ctx context.Context, op *soakOp, id int64) error {
		return p.Do(ctx, op.method == "GET", func(c net.Conn) error { return exchange(ctx, c.(*lineConn), op, id) })
	}
	k.quiesce = append(k.quiesce, stock.closeIdle)
	return k, nil
}

// pgTable is the soak's table of INSERTs: no key, so that an INSERT run
// twice leaves two rows.
func (s *soak) pgInsert(ctx context.Context, exec func(context.Context, string, ...any) error, id int64) error {
	return exec(ctx, "insert into "+s.w.pg.table+" (id) values ($1)", id)
}

// sqlKind is database/sql through pgx's stdlib, stock vs rstpgx.OpenDB
// (WrapConnector), reads under rstpool.Retry(idempotent) and INSERTs under
// rstpool.Retry(not idempotent) on the rstpool side.
func (s *soak) sqlKind(addr string) (*soakKind, error) {
	k := newKind(&soakKind{name: "sql", methods: []string{"read", "insert"}, idem: idemSet("read"),
		stream: 160 * time.Millisecond, burst: 8, budget: rstpool.DefaultRefusedRetry, timeout: 4 * time.Second})
	cc, err := pgx.ParseConfig(pgURL(addr, s.w.pg.role, s.w.pg.app+"_sql"))
	if err != nil {
		return nil, err
	}
	stockCC := cc.Copy()
	stockCC.DialFunc = countDials(&k.dials[stockSide], stockNetDial())
	d := &rstpool.Dialer{}
	d.Observer = s.events.observer(s, len(s.kinds), &k.dials[oursSide])
	dbs := [2]*sql.DB{stdlib.OpenDB(*stockCC), rstpgx.OpenDB(*cc, d)}
	for side, db := range dbs {
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
		s.closers = append(s.closers, func() { db.Close() })
		k.quiesce = append(k.quiesce, func() { db.SetMaxIdleConns(0); db.SetMaxIdleConns(8) })
		read := func(ctx context.Context) error {
			var one int
			return db.QueryRowContext(ctx, "select 1").Scan(&one)
		}
		exec := func(ctx context.Context, q string, args ...any) error {
			_, err := db.ExecContext(ctx, q, args...)
			return err
		}
		k.do[side] = func(ctx context.Context, op *soakOp, id int64) error {
			fn := read
			if op.method == "insert" {
				fn = func(ctx context.Context) error { return s.pgInsert(ctx, exec, id) }
			}
			if side == oursSide {
				return rstpool.Retry(ctx, op.method == "read", fn)
			}
			return fn(ctx)
		}
	}
	return k, nil
}

// pgxKind is pgxpool, stock vs rstpgx.Configure, reads and INSERTs under
// rstpgx.Retry on the rstpool side.
func (s *soak) pgxKind(addr string) (*soakKind, [2]*pgxpool.Pool, error) {
	k := newKind(&soakKind{name: "pgx", methods: []string{"read", "insert"}, idem: idemSet("read"),
		stream: 160 * time.Millisecond, burst: 8, budget: rstpool.DefaultRefusedRetry, timeout: 4 * time.Second})
	d := &rstpool.Dialer{}
	d.Observer = s.events.observer(s, len(s.kinds), &k.dials[oursSide])
	var pools [2]*pgxpool.Pool
	for side := range pools {
		cfg, err := pgxpool.ParseConfig(pgURL(addr, s.w.pg.role, s.w.pg.app+"_pgx"))
		if err != nil {
			return nil, pools, err
		}
		cfg.MaxConns = 8
		if side == oursSide {
			rstpgx.Configure(cfg, d)
		} else {
			cfg.ConnConfig.DialFunc = countDials(&k.dials[stockSide], stockNetDial())
		}
		p, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			return nil, pools, err
		}
		pools[side] = p
		s.closers = append(s.closers, p.Close)
		k.quiesce = append(k.quiesce, p.Reset)
		read := func(ctx context.Context) error {
			var one int
			return p.QueryRow(ctx, "select 1").Scan(&one)
		}
		exec := func(ctx context.Context, q string, args ...any) error {
			_, err := p.Exec(ctx, q, args...)
			return err
		}
		k.do[side] = func(ctx context.Context, op *soakOp, id int64) error {
			fn := read
			if op.method == "insert" {
				fn = func(ctx context.Context) error { return s.pgInsert(ctx, exec, id) }
			}
			if side == oursSide {
				return rstpgx.Retry(ctx, op.method == "read", fn)
			}
			return fn(ctx)
		}
	}
	return k, pools, nil
}

// halfCloseKind talks to the half-closing server: read its greeting up to
// its FIN, wait past the Dialer's ValidateAfter, send the id and a payload,
// close. The server counts what arrived.
func (s *soak) halfCloseKind(addr string) *soakKind {
	k := newKind(&soakKind{name: "half-close", methods: []string{"write"}, idem: idemSet(),
		budget: rstpool.DefaultRefusedRetry, timeout: 3 * time.Second})
	d := &rstpool.Dialer{}
	d.Observer = s.events.observer(s, len(s.kinds), &k.dials[oursSide])
	for side, dial := range []func(context.Context, string, string) (net.Conn, error){
		countDials(&k.dials[stockSide], stockNetDial()), d.DialContext} {
		k.do[side] = func(ctx context.Context, op *soakOp, id int64) error {
			c, err := dial(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			if dl, ok := ctx.Deadline(); ok {
				_ = c.SetDeadline(dl)
			}
			got, err := io.ReadAll(c)
			if err != nil {
				return err
			}
			if string(got) != halfCloseGreeting {
				return fmt.Errorf("half-close: greeting %q", got)
			}
			time.Sleep(20 * time.Millisecond) // past ValidateAfter: the write checks first
			_, err = io.WriteString(c, halfClosePayload(id))
			return err
		}
	}
	return k
}

// halfClosePayload is what a client sends the half-closing server.
func halfClosePayload(id int64) string {
	return strconv.FormatInt(id, 10) + "\n" + strings.Repeat("d", 64)
}

// mixedKind is Retry around work that mixes clients (issue 16, row 1):
// "http+pool" is a POST through a stock http.Client, then a Pool.Do on a
// server that closes every connection at once, so that the Do fails before
// a byte of it left (EOF); "pgx+pgx" is an INSERT on a pgx connection acquired
// before Retry, then a read through a second rstpgx-configured pool whose
// port refuses. The stock side runs the same work without Retry.
func (s *soak) mixedKind(postURL, closing, refusing string, pgxPools [2]*pgxpool.Pool) (*soakKind, error) {
	k := newKind(&soakKind{name: "mixed", methods: []string{"http+pool", "pgx+pgx"}, idem: idemSet(),
		budget: rstpool.DefaultRefusedRetry, timeout: 4 * time.Second})
	plain := &http.Client{Transport: soakBase(), Timeout: 4 * time.Second}
	s.closers = append(s.closers, plain.CloseIdleConnections)
	k.quiesce = append(k.quiesce, plain.CloseIdleConnections)
	d := &rstpool.Dialer{RefusedRetry: 30 * time.Millisecond}
	d.Observer = s.events.observer(s, len(s.kinds), &k.dials[oursSide])
	refPool, err := rstpool.NewPool(rstpool.PoolConfig{Addr: closing, Dialer: d, Wrap: newLineConn})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = refPool.Close(context.Background()) })
	stockPool := &naivePool{dial: func(ctx context.Context) (net.Conn, error) { return stockNetDial()(ctx, "tcp", closing) }}
	var refPgx [2]*pgxpool.Pool
	for side := range refPgx {
		cfg, err := pgxpool.ParseConfig(pgURL(refusing, s.w.pg.role, s.w.pg.app))
		if err != nil {
			return nil, err
		}
		if side == oursSide {
			rstpgx.Configure(cfg, d)
		}
		if refPgx[side], err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, refPgx[side].Close)
	}
	for side := range 2 {
		// The step prepares its request past the Dialer's ValidateAfter:
		// the connection's check finds the server's FIN, nothing is sent.
		poolDo := func(ctx context.Context, op *soakOp, id int64) error {
			time.Sleep(15 * time.Millisecond)
			return stockPool.do(ctx, op, id)
		}
		if side == oursSide {
			poolDo = func(ctx context.Context, op *soakOp, id int64) error {
				return refPool.Do(ctx, false, func(c net.Conn) error {
					time.Sleep(15 * time.Millisecond)
					return exchange(ctx, c.(*lineConn), op, id)
				})
			}
		}
		k.do[side] = func(ctx context.Context, op *soakOp, id int64) error {
			var fn func(context.Context) error
			retry := rstpool.Retry
			switch op.method {
			case "http+pool":
				fn = func(ctx context.Context) error {
					req, err := http.NewRequestWithContext(ctx, http.MethodPost, postURL, strings.NewReader("charge"))
					if err != nil {
						return err
					}
					req.Header.Set("X-Request-Id", strconv.FormatInt(id, 10))
					if err := roundTrip(plain, req); err != nil {
						return err
					}
					return poolDo(ctx, op, id)
				}
			default:
				held, err := pgxPools[side].Acquire(ctx)
				if err != nil {
					return err
				}
				defer held.Release()
				retry = rstpgx.Retry
				fn = func(ctx context.Context) error {
					if _, err := held.Exec(ctx, "insert into "+s.w.pg.table+" (id) values ($1)", id); err != nil {
						return err
					}
					var one int
					return refPgx[side].QueryRow(ctx, "select 1").Scan(&one)
				}
			}
			if side == oursSide {
				return retry(ctx, false, fn)
			}
			return fn(ctx)
		}
	}
	k.quiesce = append(k.quiesce, stockPool.closeIdle)
	return k, nil
}
