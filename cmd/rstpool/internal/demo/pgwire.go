package demo

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// The minimal PostgreSQL frontend/backend protocol (version 3.0) the
// database leg needs: a startup with trust authentication and the simple
// query protocol. No driver is imported.

const pgProtocol = 3 << 16 // protocol version 3.0

// maxPGMessage bounds a backend message, so that a confused stream cannot
// make us allocate without limit.
const maxPGMessage = 1 << 20

// ErrPGAuth is returned by pgStartup when the server asks for a password:
// the demo speaks trust authentication only.
var ErrPGAuth = errors.New("postgres: server wants authentication (the demo supports trust only)")

// A PGError is an ErrorResponse of the server.
type PGError struct {
	Severity, Code, Message string
}

func (e *PGError) Error() string {
	return fmt.Sprintf("postgres: %s %s: %s", e.Severity, e.Code, e.Message)
}

// pgStartup sends the startup message for user and database on c and reads
// until the server is ready for a query.
func pgStartup(c net.Conn, user, database string) error {
	body := binary.BigEndian.AppendUint32(nil, pgProtocol)
	for _, s := range []string{"user", user, "database", database} {
		body = append(append(body, s...), 0)
	}
	body = append(body, 0)
	msg := binary.BigEndian.AppendUint32(nil, uint32(4+len(body)))
	if _, err := c.Write(append(msg, body...)); err != nil {
		return err
	}
	return pgReadUntilReady(c)
}

// pgQuery runs sql with the simple query protocol and reads the answer up to
// ReadyForQuery. Rows are discarded. A server error is a *PGError, returned
// after the stream is back in step.
func pgQuery(c net.Conn, sql string) error {
	msg := append([]byte{'Q'}, binary.BigEndian.AppendUint32(nil, uint32(4+len(sql)+1))...)
	msg = append(append(msg, sql...), 0)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	return pgReadUntilReady(c)
}

// pgReadUntilReady reads backend messages until ReadyForQuery ('Z'). It
// returns the first ErrorResponse, if any, once ReadyForQuery arrived, or
// at once when it arrives during startup (the server then closes).
func pgReadUntilReady(c net.Conn) error {
	r := bufio.NewReaderSize(c, 512)
	var srvErr error
	for {
		typ, body, err := pgReadMessage(r)
		if err != nil {
			return err
		}
		switch typ {
		case 'Z':
			if r.Buffered() > 0 {
				return errors.New("postgres: unexpected data after ReadyForQuery")
			}
			return srvErr
		case 'R':
			if len(body) < 4 || binary.BigEndian.Uint32(body) != 0 {
				return ErrPGAuth
			}
		case 'E':
			pe := pgParseError(body)
			if pe.Severity != "ERROR" {
				return pe // FATAL or PANIC: the server closes
			}
			srvErr = pe
		}
	}
}

// pgReadMessage reads one backend message: a type byte, a length that counts
// itself, then the body.
func pgReadMessage(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n > maxPGMessage {
		return 0, nil, fmt.Errorf("postgres: message %q of bad length %d", hdr[0], n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

// pgParseError reads the fields of an ErrorResponse body.
func pgParseError(body []byte) *PGError {
	e := &PGError{}
	for len(body) > 1 {
		typ := body[0]
		end := strings.IndexByte(string(body[1:]), 0)
		if end < 0 {
			break
		}
		val := string(body[1 : 1+end])
		switch typ {
		case 'S':
			e.Severity = val
		case 'C':
			e.Code = val
		case 'M':
			e.Message = val
		}
		body = body[2+end:]
	}
	return e
}
