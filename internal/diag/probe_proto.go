package diag

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rstpool/rstpool"
)

// A protocol is what a probe connection sends: one exchange right after
// connecting, so that the connection idles as a used one does, and the
// active check when its idle time is up.
type protocol struct {
	first func(c net.Conn, br *bufio.Reader) error
	again func(c net.Conn, br *bufio.Reader) error // nil: peeks only, a silent drop is not seen
	mode  string                                   // what it sends, for the report
	// caveat says why the measured timeout may not be the one a used
	// connection of a real client meets; empty when it is.
	caveat string
}

// peeksOnly is the caveat of a mode that cannot check actively.
const peeksOnly = " Checks are peeks only: a silent drop (a middlebox forgetting the flow) is not seen."

var protocols = map[string]protocol{
	"tcp": {first: noop, mode: "no request (peeks only)",
		caveat: "No request was sent: many servers (Go's http.Server, nginx) apply another timer, or none, before the " +
			"first request, so a connection that never sent one may be kept longer, or closed sooner, than a used one." + peeksOnly},
	"http":  {first: httpNoop, again: httpNoop, mode: "one OPTIONS * HTTP/1.1 exchange per connection, and one per check"},
	"redis": {first: redisPing, again: redisPing, mode: "one RESP PING per connection, and one per check"},
	"postgres": {first: pgSSLRequest, mode: "one PostgreSQL SSLRequest per connection, no login",
		caveat: "Before login PostgreSQL applies authentication_timeout (default 1m), not idle_session_timeout; " +
			"a proxy in between (PgBouncer, a balancer) times this connection as any other. " +
			"--dsn logs in and measures the timeout a session meets." + peeksOnly},
	"mysql": {first: mysqlGreeting, mode: "reads the MySQL greeting, no login",
		caveat: "Before login the server applies connect_timeout (default 10s), not wait_timeout; " +
			"a proxy in between times this connection as any other. " +
			"--dsn logs in and measures the timeout a session meets." + peeksOnly},
}

// sessions opens raw connections to cfg.Addr that make p's exchanges.
func (p protocol) sessions(cfg ProbeConfig, name string) *Sessions {
	return &Sessions{Name: name, Mode: p.mode, Caveat: p.caveat,
		Open: func(ctx context.Context, d *rstpool.Dialer) (Session, error) {
			c, err := d.DialContext(ctx, "tcp", cfg.Addr)
			if err != nil {
				return nil, DialError(err)
			}
			tc, _ := c.(*rstpool.Conn)
			s := &rawSession{c: c, tc: tc, br: bufio.NewReader(c), again: p.again}
			// One exchange first: a pooled connection idles after a request,
			// and many servers apply their idle timeout only between requests.
			err = c.SetDeadline(time.Now().Add(cfg.Wait))
			if err == nil {
				err = p.first(c, s.br)
			}
			if err != nil {
				c.Close()
				return nil, &wrapped{msg: "first exchange with " + cfg.Addr + ": " + err.Error(), err: err}
			}
			return s, nil
		}}
}

// A rawSession is a connection that speaks one of the probe's own
// exchanges.
type rawSession struct {
	c     net.Conn
	tc    *rstpool.Conn // c, for the peek; nil if the dial returned another type
	br    *bufio.Reader
	again func(net.Conn, *bufio.Reader) error
}

func (s *rawSession) Tracked() *rstpool.Conn { return s.tc }

// Exchange makes the protocol's check, or nothing when it has none (the
// probe then counts the connection alive on its last peek).
func (s *rawSession) Exchange(ctx context.Context) error {
	if s.again == nil {
		return nil
	}
	deadline, _ := ctx.Deadline()
	if err := s.c.SetDeadline(deadline); err != nil {
		return err
	}
	return s.again(s.c, s.br)
}

// Farewell reads nothing: no raw exchange says why a server closed.
func (s *rawSession) Farewell(context.Context) string { return "" }

func (s *rawSession) Close() error { return s.c.Close() }

// protoNames lists the --proto values.
const protoNames = "auto, tcp, http, redis, postgres or mysql"

func noop(net.Conn, *bufio.Reader) error { return nil }

func httpNoop(c net.Conn, br *bufio.Reader) error {
	if _, err := io.WriteString(c, "OPTIONS * HTTP/1.1\r\nHost: rstpool-probe\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.Close {
		err = ErrPeerFIN // the server announced it closes: the next check would see EOF
	}
	return err
}

// redisPing sends PING; any RESP status or error line is an answer (a
// server that wants AUTH answers -NOAUTH, and still counts the exchange).
func redisPing(c net.Conn, br *bufio.Reader) error {
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "-") {
		return fmt.Errorf("redis: unexpected answer %q", strings.TrimSpace(line))
	}
	return nil
}

// sslRequest is PostgreSQL's SSLRequest: length 8, code 80877103.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

func pgSSLRequest(c net.Conn, br *bufio.Reader) error {
	if _, err := c.Write(sslRequest); err != nil {
		return err
	}
	b, err := br.ReadByte()
	if err != nil {
		return err
	}
	if b != 'N' && b != 'S' {
		return fmt.Errorf("postgres: unexpected answer to SSLRequest %q", b)
	}
	return nil
}

// mysqlGreeting reads the handshake a MySQL or MariaDB server sends first:
// a packet with sequence 0 whose payload starts with protocol version 10.
func mysqlGreeting(_ net.Conn, br *bufio.Reader) error {
	hdr, err := br.Peek(5)
	if err != nil {
		return err
	}
	if hdr[3] != 0 || hdr[4] != 10 {
		return fmt.Errorf("mysql: not a handshake packet % x", hdr)
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	_, err = br.Discard(4 + n)
	return err
}

// detect finds which exchange the server at cfg.Addr answers: a greeting it
// sends first (MySQL), PING (a RESP or an HTTP answer), or an SSLRequest
// (PostgreSQL), on fresh connections; PostgreSQL is tried first on port
// 5432. It returns "tcp" and the reason when none is recognised.
func detect(ctx context.Context, cfg ProbeConfig) (name, why string, err error) {
	greet := min(cfg.Wait, 500*time.Millisecond)
	if name, err = tryProto(ctx, cfg, greet, nil, sniffGreeting); name != "" || err != nil {
		why := "the server sent a MySQL greeting"
		if name == "tcp" {
			why = "the server sent a greeting of a protocol the probe does not speak"
		}
		return name, why, err
	}
	tries := []func(net.Conn, *bufio.Reader) (string, error){sniffPing, sniffPostgres}
	if strings.HasSuffix(cfg.Addr, ":5432") {
		tries[0], tries[1] = tries[1], tries[0]
	}
	for _, try := range tries {
		if name, err = tryProto(ctx, cfg, cfg.Wait, try, nil); name != "" || err != nil {
			return name, "the port answered " + name, err
		}
	}
	return "tcp", "no HTTP, RESP, PostgreSQL or MySQL answer was recognised", nil
}

// tryProto dials once and either sends with try or, with sniff, reads what
// the server says first. An error is returned only when dialing fails.
func tryProto(ctx context.Context, cfg ProbeConfig, wait time.Duration,
	try func(net.Conn, *bufio.Reader) (string, error), sniff func(*bufio.Reader) string) (string, error) {
	c, err := cfg.Dialer.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return "", DialError(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		return "", err
	}
	if sniff != nil {
		return sniff(br), nil
	}
	name, _ := try(c, br)
	return name, nil
}

func sniffGreeting(br *bufio.Reader) string {
	if _, err := br.Peek(1); err != nil {
		return "" // silent (or closed): the client speaks first
	}
	if mysqlGreeting(nil, br) == nil {
		return "mysql"
	}
	return "tcp" // a greeting of a protocol the probe does not speak
}

func sniffPing(c net.Conn, br *bufio.Reader) (string, error) {
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return "", err
	}
	line, err := br.ReadString('\n')
	switch {
	case strings.HasPrefix(line, "HTTP/"):
		return "http", nil
	case strings.HasPrefix(line, "+"), strings.HasPrefix(line, "-"):
		return "redis", nil
	}
	return "", err
}

func sniffPostgres(c net.Conn, br *bufio.Reader) (string, error) {
	if err := pgSSLRequest(c, br); err != nil {
		return "", err
	}
	return "postgres", nil
}

// DialError keeps a failed probe dial's error (an rstpool.ConnError) in
// the chain but reads as the net error under it: the ConnError's own text
// only repeats it with a prefix of its own.
func DialError(err error) error {
	var ne *net.OpError
	if errors.As(err, &ne) {
		return &wrapped{msg: ne.Error(), err: err}
	}
	return err
}

// wrapped is an error with a text of its own that unwraps to err.
type wrapped struct {
	msg string
	err error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }
