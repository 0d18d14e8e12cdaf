package demo

import (
	"bufio"
	"fmt"
	"net"
	"strings"
)

// respPing sends a RESP PING on c and reads the +PONG. It reads byte by byte
// through a small buffer discarded after the reply, which is all a reply of
// a single line needs.
func respPing(c net.Conn) error {
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReaderSize(c, 64).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimRight(line, "\r\n") != "+PONG" {
		return fmt.Errorf("redis: PING answered %q", strings.TrimSpace(line))
	}
	return nil
}
