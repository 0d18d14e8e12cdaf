package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// relistenFor bounds how long the proxy retries binding its port again after
// a refusal window (the port may be briefly held by another socket).
const relistenFor = 2 * time.Second

// Refuse closes the listener for down, so that connection attempts get a real
// ECONNREFUSED, then listens again on the same address. Open flows are not
// touched. It returns at once, with the listener already closed; the channel
// receives nil once the proxy listens again, or the error that prevented it,
// and is then closed. Windows that overlap merge: listening resumes at the
// latest end.
func (p *Proxy) Refuse(down time.Duration) <-chan error {
	ch := make(chan error, 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		ch <- net.ErrClosed
		close(ch)
		return ch
	}
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
		p.stats.refused.Add(1)
	}
	if until := time.Now().Add(down); until.After(p.reopenAt) {
		p.reopenAt = until
	}
	p.waiters = append(p.waiters, ch)
	if !p.reopening {
		p.reopening = true
		p.wg.Add(1)
		go p.reopen()
	}
	return ch
}

// Restart models the peer restarting: it closes the listener as Refuse does,
// then resets every open flow (RST to the client). It returns at once; the
// channel is the one of Refuse.
func (p *Proxy) Restart(down time.Duration) <-chan error {
	ch := p.Refuse(down)
	p.stats.restarts.Add(1)
	p.ResetAll()
	return ch
}

// reopen waits for the end of the refusal window, listens again and tells the
// waiters.
func (p *Proxy) reopen() {
	defer p.wg.Done()
	err := p.waitAndListen()
	p.mu.Lock()
	ws := p.waiters
	p.waiters, p.reopening = nil, false
	p.mu.Unlock()
	for _, ch := range ws {
		ch <- err
		close(ch)
	}
}

func (p *Proxy) waitAndListen() error {
	for {
		p.mu.Lock()
		wait := time.Until(p.reopenAt)
		p.mu.Unlock()
		if wait > 0 {
			if !p.sleep(wait) {
				return net.ErrClosed
			}
			continue // the window may have been extended meanwhile
		}
		ln, err := p.listenAgain()
		p.mu.Lock()
		defer p.mu.Unlock()
		switch {
		case p.closed && err == nil:
			_ = ln.Close()
			return net.ErrClosed
		case err == nil:
			p.serveLocked(ln)
		}
		return err
	}
}

// sleep waits for d; false means the proxy was closed meanwhile.
func (p *Proxy) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// listenAgain binds the proxy's address, retrying briefly while it is in use.
func (p *Proxy) listenAgain() (net.Listener, error) {
	deadline := time.Now().Add(relistenFor)
	for {
		ln, err := net.Listen("tcp", p.addr)
		if err == nil || time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("faultproxy: listen again on %s: %w", p.addr, err)
			}
			return ln, nil
		}
		if !p.sleep(10 * time.Millisecond) {
			return nil, net.ErrClosed
		}
	}
}

// serveLocked makes ln the listener and starts accepting on it. p.mu is held.
func (p *Proxy) serveLocked(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go p.acceptLoop(ln)
}

func (p *Proxy) acceptLoop(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // out of fds or similar: back off, bounded by Close
			if !p.sleep(10 * time.Millisecond) {
				return
			}
			continue
		}
		p.admit(c.(*net.TCPConn))
	}
}

// admit starts a flow for c, or resets c when the proxy is full or closed.
func (p *Proxy) admit(c *net.TCPConn) {
	p.stats.accepted.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.flows) >= p.maxConns {
		if !p.closed {
			p.stats.rejected.Add(1)
		}
		closeConn(c, true)
		return
	}
	f := p.newFlowLocked(c)
	p.flows[f] = struct{}{}
	p.stats.open.Add(1)
	p.wg.Add(1)
	go f.run()
}
