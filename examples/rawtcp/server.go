package main

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A server answers a few of Redis's inline commands (PING, SET, GET, INCR,
// DEL, QUIT) from a map. Like a load balancer that forgets idle flows, it
// resets a connection idle longer than its idle timeout.
type server struct {
	net.Listener
	idle time.Duration // 0: never

	mu   sync.Mutex
	data map[string]string
}

// listen starts a server on a loopback port.
func listen(idle time.Duration) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{Listener: ln, idle: idle, data: map[string]string{}}
	go s.accept()
	return s, nil
}

func (s *server) accept() {
	for {
		c, err := s.Accept()
		if err != nil {
			return
		}
		go s.serve(c.(*net.TCPConn))
	}
}

// serve answers c's commands until it quits, or resets it (RST) once it
// has been idle for s.idle.
func (s *server) serve(c *net.TCPConn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		if s.idle > 0 {
			_ = c.SetReadDeadline(time.Now().Add(s.idle))
		}
		line, err := r.ReadString('\n')
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				_ = c.SetLinger(0) // close with an RST
			}
			return
		}
		reply, quit := s.answer(strings.Fields(line))
		if _, err := c.Write([]byte(reply)); err != nil || quit {
			return
		}
	}
}

// answer returns the reply to one command in RESP.
func (s *server) answer(args []string) (reply string, quit bool) {
	if len(args) == 0 {
		return "-ERR empty command\r\n", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch cmd := strings.ToUpper(args[0]); {
	case cmd == "PING":
		return "+PONG\r\n", false
	case cmd == "QUIT":
		return "+OK\r\n", true
	case cmd == "SET" && len(args) == 3:
		s.data[args[1]] = args[2]
		return "+OK\r\n", false
	case cmd == "GET" && len(args) == 2:
		v, ok := s.data[args[1]]
		if !ok {
			return "$-1\r\n", false
		}
		return "$" + strconv.Itoa(len(v)) + "\r\n" + v + "\r\n", false
	case cmd == "INCR" && len(args) == 2:
		n, _ := strconv.Atoi(s.data[args[1]])
		s.data[args[1]] = strconv.Itoa(n + 1)
		return ":" + strconv.Itoa(n+1) + "\r\n", false
	case cmd == "DEL" && len(args) >= 2:
		n := 0
		for _, k := range args[1:] {
			if _, ok := s.data[k]; ok {
				delete(s.data, k)
				n++
			}
		}
		return ":" + strconv.Itoa(n) + "\r\n", false
	}
	return "-ERR unknown command or wrong number of arguments\r\n", false
}
