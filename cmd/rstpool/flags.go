package main

import (
	"errors"
	"fmt"
	"strconv"
)

// A portFlag is a TCP port on the command line. Any integer parses, so
// that -1, 0 and 70000 all get the same range message from check; only a
// value that is no integer at all is a parse error.
type portFlag struct {
	text string // as given; empty when the flag was not set
	n    int64
}

func (p *portFlag) String() string { return p.text }

func (p *portFlag) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return errors.New("not a port number (1 to 65535)")
	}
	p.text, p.n = s, n
	return nil
}

// given reports whether the flag was set.
func (p *portFlag) given() bool { return p.text != "" }

// port returns the port; call check first.
func (p *portFlag) port() uint16 { return uint16(p.n) }

// check returns the usage error of a port out of range, naming the flag.
func (p *portFlag) check(flag string) error {
	if p.given() && (p.n < 1 || p.n > 65535) {
		return fmt.Errorf("--%s %s: must be between 1 and 65535", flag, p.text)
	}
	return nil
}
