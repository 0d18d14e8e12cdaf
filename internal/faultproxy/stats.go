package faultproxy

import "sync/atomic"

// Stats is a snapshot of what a Proxy did since it started. Counters only grow,
// except Open.
type Stats struct {
	Accepted int64 // connections accepted, including rejected ones
	Rejected int64 // connections reset at once because MaxConns flows were open
	Open     int64 // flows open now

	// Flows forgotten after an idle gap, by action. A flow is counted when it
	// is next used after the gap, its close included.
	ReapedReset int64 // flows forgotten after an idle gap with ActionReset
	ReapedDrop  int64 // flows forgotten after an idle gap with ActionDrop
	ReapedClose int64 // flows forgotten after an idle gap with ActionClose

	MidTransferResets int64 // flows reset after ResetAfterBytes bytes
	EarlyCloses       int64 // flows answered with EarlyResponse and closed
	FlowsReset        int64 // flows reset by ResetAll or Restart
	Blips             int64 // calls to Blip
	BlipKills         int64 // flows a blip ended
	Restarts          int64 // calls to Restart
	RefusedWindows    int64 // times the listener was closed by Refuse or Restart
	DialFailures      int64 // flows reset because the upstream could not be dialed

	BytesUp        int64 // bytes forwarded from clients to the upstream
	BytesDown      int64 // bytes forwarded from the upstream to clients
	BytesDiscarded int64 // bytes read and thrown away (black hole, forgotten flows)
}

// Reaped returns the number of flows forgotten after an idle gap, all actions.
func (s Stats) Reaped() int64 { return s.ReapedReset + s.ReapedDrop + s.ReapedClose }

// counters are the live counterparts of Stats.
type counters struct {
	accepted, rejected, open         atomic.Int64
	reaped                           [ActionClose + 1]atomic.Int64
	midResets, earlyCloses, resets   atomic.Int64
	restarts, refused, dialFailures  atomic.Int64
	blips, blipKills                 atomic.Int64
	bytesUp, bytesDown, bytesDropped atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Accepted:          c.accepted.Load(),
		Rejected:          c.rejected.Load(),
		Open:              c.open.Load(),
		ReapedReset:       c.reaped[ActionReset].Load(),
		ReapedDrop:        c.reaped[ActionDrop].Load(),
		ReapedClose:       c.reaped[ActionClose].Load(),
		MidTransferResets: c.midResets.Load(),
		EarlyCloses:       c.earlyCloses.Load(),
		FlowsReset:        c.resets.Load(),
		Restarts:          c.restarts.Load(),
		Blips:             c.blips.Load(),
		BlipKills:         c.blipKills.Load(),
		RefusedWindows:    c.refused.Load(),
		DialFailures:      c.dialFailures.Load(),
		BytesUp:           c.bytesUp.Load(),
		BytesDown:         c.bytesDown.Load(),
		BytesDiscarded:    c.bytesDropped.Load(),
	}
}
