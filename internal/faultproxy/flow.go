package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// drainFor bounds how long a flow closed with ActionClose keeps reading the
// client after its FIN, so that the final close sends no RST.
const drainFor = time.Second

// earlyWriteFor bounds the write of Config.EarlyResponse to the client.
const earlyWriteFor = time.Second

// Flow states. A forgotten flow's state is stForgotten plus its Action.
const (
	stLive      uint32 = 0
	stForgotten uint32 = 1 // +ActionReset, +ActionDrop, +ActionClose
	stDone      uint32 = stForgotten + uint32(ActionClose) + 1
)

// flow is one client connection and its upstream connection, copied by two
// goroutines: run reads the client, a helper reads the upstream.
type flow struct {
	p      *Proxy
	client *net.TCPConn
	up     atomic.Pointer[net.TCPConn] // nil until dialed
	state  atomic.Uint32
	last   atomic.Int64 // p.now() when bytes were last forwarded
	asked  atomic.Bool  // the last bytes forwarded were the client's: the flow waits for the upstream

	resetAfter int64        // 0: no mid-transfer reset
	counted    atomic.Int64 // bytes counted towards resetAfter
	early      bool         // answer with EarlyResponse and close
	earlySeen  int64        // client bytes seen; only run touches it
}

// newFlowLocked draws the flow's faults from the seeded generator; p.mu is
// held, so the draws follow the order of acceptance.
func (p *Proxy) newFlowLocked(c *net.TCPConn) *flow {
	f := &flow{p: p, client: c}
	f.last.Store(p.now())
	resetDraw, earlyDraw := p.rng.Float64(), p.rng.Float64()
	if p.cfg.ResetAfterBytes > 0 && chosen(p.cfg.ResetFraction, resetDraw) {
		f.resetAfter = p.cfg.ResetAfterBytes
	}
	f.early = len(p.cfg.EarlyResponse) > 0 && chosen(p.cfg.EarlyFraction, earlyDraw)
	return f
}

func chosen(fraction, draw float64) bool { return fraction == 0 || draw < fraction }

func (f *flow) run() {
	defer f.p.wg.Done()
	defer f.p.remove(f)
	up, err := f.dial()
	if err != nil {
		f.kill(true, false, &f.p.stats.dialFailures)
		return
	}
	f.up.Store(up)
	// The flow is idle from here: the upstream dial was the proxy's time,
	// not the client's.
	f.last.Store(f.p.now())
	if f.state.Load() == stDone { // killed while dialing
		f.shut()
		return
	}
	downDone := make(chan struct{})
	go func() {
		defer close(downDone)
		f.pump(Down, up, f.client)
	}()
	f.pump(Up, f.client, up)
	<-downDone
	f.shut()
}

func (f *flow) dial() (*net.TCPConn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(f.p.ctx, "tcp", f.p.cfg.Upstream)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// finish marks the flow done; it reports whether this call did it.
func (f *flow) finish() bool {
	for {
		s := f.state.Load()
		if s == stDone {
			return false
		}
		if f.state.CompareAndSwap(s, stDone) {
			return true
		}
	}
}

// kill finishes the flow and closes both sides, each with an RST or a FIN. If
// this call finished the flow, it adds one to count (if not nil) before the
// peers can see anything, and reports true.
func (f *flow) kill(rstClient, rstUp bool, count *atomic.Int64) bool {
	if !f.finish() {
		return false
	}
	if count != nil {
		count.Add(1)
	}
	closeConn(f.client, rstClient)
	closeConn(f.up.Load(), rstUp)
	return true
}

// shut finishes the flow, if not yet done, and closes both sockets.
func (f *flow) shut() {
	f.finish()
	closeConn(f.client, false)
	closeConn(f.up.Load(), false)
}

// pump copies src to dst, applying the faults, until either ends.
func (f *flow) pump(dir Direction, src, dst *net.TCPConn) {
	bp := f.p.getBuf()
	defer f.p.putBuf(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 && !f.onData(dir, dst, buf[:n]) {
			return
		}
		if err != nil {
			f.onEnd(dir, dst, err)
			return
		}
	}
}

// onData handles bytes read in direction dir; false stops the pump.
func (f *flow) onData(dir Direction, dst *net.TCPConn, b []byte) bool {
	if f.state.Load() == stDone {
		return false
	}
	now := f.p.now()
	if a, ok := f.p.blipping(now); ok {
		f.p.stats.bytesDropped.Add(int64(len(b)))
		f.end(a)
		return false
	}
	if f.p.blackHole.Load() {
		f.p.stats.bytesDropped.Add(int64(len(b)))
		return true
	}
	if s := f.reapFor(dir, now); s != stLive {
		f.p.stats.bytesDropped.Add(int64(len(b)))
		return f.onForgotten(dir, Action(s-stForgotten))
	}
	if dir == Up && f.early {
		return f.onEarly(b)
	}
	return f.forward(dir, dst, b, now)
}

// reapFor is reap for bytes (or an end) coming from dir: with
// Config.IdleWaitsForClient, the upstream's never find the flow forgotten.
func (f *flow) reapFor(dir Direction, now int64) uint32 {
	if dir == Down && f.p.cfg.IdleWaitsForClient {
		return f.state.Load()
	}
	return f.reap(now)
}

// reap forgets a live flow idle longer than the idle timeout, and returns the
// flow's state.
func (f *flow) reap(now int64) uint32 {
	s := f.state.Load()
	if s != stLive {
		return s
	}
	pol := f.p.idle.Load()
	if pol.timeout <= 0 || time.Duration(now-f.last.Load()) <= pol.timeout {
		return stLive
	}
	ns := stForgotten + uint32(pol.action)
	if f.state.CompareAndSwap(stLive, ns) {
		f.p.stats.reaped[pol.action].Add(1)
		return ns
	}
	return f.state.Load()
}

// forgetSilently forgets the flow if it sat idle beyond the timeout and can
// close its client socket without a word. With Config.IdleWaitsForClient, a
// flow whose client spoke last waits for an answer: it is not idle.
func (f *flow) forgetSilently(now int64) {
	if f.state.Load() != stLive || f.up.Load() == nil {
		return
	}
	if f.p.cfg.IdleWaitsForClient && f.asked.Load() {
		return
	}
	pol := f.p.idle.Load()
	if time.Duration(now-f.last.Load()) <= pol.timeout || !silence(f.client) {
		return
	}
	// Silenced before it is forgotten, so that no byte the client sends
	// meanwhile is acknowledged.
	if f.reap(now) == stForgotten+uint32(ActionReset) && f.finish() {
		_ = f.client.Close() // silenced: no FIN, no RST
		closeConn(f.up.Load(), false)
		return
	}
	// The flow lives on: bytes came meanwhile, or forgetting was turned
	// off. A socket left in repair mode would swallow them, unanswered.
	unsilence(f.client)
}

// onForgotten applies the idle action to bytes that reach a forgotten flow.
// Upstream bytes vanish; the client learns when it next sends.
func (f *flow) onForgotten(dir Direction, a Action) bool {
	if dir == Down {
		return true
	}
	switch a {
	case ActionReset:
		f.kill(true, false, nil)
		return false
	case ActionClose:
		f.closeDraining()
		return false
	}
	return true // ActionDrop
}

// end ends the flow for a blip: an RST to the client, or a FIN.
func (f *flow) end(a Action) {
	if f.state.Load() == stDone {
		return
	}
	if a == ActionClose {
		if f.state.Load() != stDone {
			f.p.stats.blipKills.Add(1)
		}
		f.closeDraining()
		return
	}
	f.kill(true, false, &f.p.stats.blipKills)
}

// closeDraining closes both sides with a FIN, draining the client briefly so
// that unread bytes do not turn the client's FIN into an RST.
func (f *flow) closeDraining() {
	if !f.finish() {
		return
	}
	closeConn(f.up.Load(), false)
	_ = f.client.CloseWrite()
	_ = f.client.SetReadDeadline(time.Now().Add(drainFor))
	bp := f.p.getBuf()
	_, _ = io.CopyBuffer(io.Discard, onlyReader{f.client}, *bp)
	f.p.putBuf(bp)
	_ = f.client.Close()
}

// onlyReader hides the WriterTo of *net.TCPConn so CopyBuffer uses our buffer.
type onlyReader struct{ io.Reader }

// onEarly holds client bytes until EarlyAfterBytes were seen, then answers
// with EarlyResponse and closes the client with its bytes unread.
func (f *flow) onEarly(b []byte) bool {
	f.p.stats.bytesDropped.Add(int64(len(b)))
	f.earlySeen += int64(len(b))
	if f.earlySeen < f.p.cfg.EarlyAfterBytes {
		return true
	}
	f.closeEarly()
	return false
}

// closeEarly writes EarlyResponse to the client and closes it without reading
// what it still sends.
func (f *flow) closeEarly() {
	if !f.finish() {
		return
	}
	f.p.stats.earlyCloses.Add(1)
	closeConn(f.up.Load(), false)
	_ = f.client.SetWriteDeadline(time.Now().Add(earlyWriteFor))
	_, _ = f.client.Write(f.p.cfg.EarlyResponse)
	_ = f.client.Close()
}

// forward writes b to dst, up to the mid-transfer reset threshold.
func (f *flow) forward(dir Direction, dst *net.TCPConn, b []byte, now int64) bool {
	cut := false
	if f.resetAfter > 0 && f.p.cfg.ResetDirection.counts(dir) {
		n := int64(len(b))
		if over := f.counted.Add(n) - f.resetAfter; over >= 0 {
			b, cut = b[:max(0, n-over)], true
		}
	}
	if len(b) > 0 {
		if _, err := dst.Write(b); err != nil {
			f.kill(true, true, nil)
			return false
		}
		f.countForwarded(dir, len(b))
		f.last.Store(now)
		f.asked.Store(dir == Up)
	}
	if cut {
		f.kill(true, false, &f.p.stats.midResets)
	}
	return !cut
}

func (f *flow) countForwarded(dir Direction, n int) {
	if dir == Up {
		f.p.stats.bytesUp.Add(int64(n))
	} else {
		f.p.stats.bytesDown.Add(int64(n))
	}
}

func (d Direction) counts(dir Direction) bool { return d == Both || d == dir }

// onEnd handles the end of src: EOF or an error.
func (f *flow) onEnd(dir Direction, dst *net.TCPConn, err error) {
	if f.state.Load() == stDone {
		return
	}
	s := f.reapFor(dir, f.p.now())
	quiet := s != stLive || f.p.blackHole.Load()
	switch {
	case quiet && dir == Down: // the upstream's goodbye goes nowhere
		closeConn(f.up.Load(), false)
	case quiet: // the client left a forgotten or black-holed flow
		f.kill(s == stForgotten+uint32(ActionReset), false, nil)
	case dir == Up && f.early && errors.Is(err, io.EOF):
		f.closeEarly() // the whole request was shorter than EarlyAfterBytes
	case errors.Is(err, io.EOF):
		if dst.CloseWrite() != nil {
			f.kill(true, true, nil)
		}
	default: // a reset on one side resets the other
		f.kill(true, true, nil)
	}
}
