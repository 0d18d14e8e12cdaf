package diag

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/net/bpf"
)

// TCP flags as in the TCP header.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
)

// A Segment is what the watcher keeps of a captured TCP segment.
type Segment struct {
	Time     time.Time
	Src, Dst netip.AddrPort
	TTL      uint8 // IPv4 TTL or IPv6 hop limit as received
	Flags    uint8
}

// ParseSegment decodes an IPv4 or IPv6 packet (starting at the IP header)
// carrying TCP. It reports false for anything else, IPv4 fragments past the
// first and IPv6 packets with extension headers.
func ParseSegment(pkt []byte) (Segment, bool) {
	if len(pkt) < 1 {
		return Segment{}, false
	}
	var s Segment
	var tcp []byte
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if len(pkt) < 20 || ihl < 20 || len(pkt) < ihl+14 || pkt[9] != 6 || binary.BigEndian.Uint16(pkt[6:])&0x1fff != 0 {
			return Segment{}, false
		}
		s.TTL, tcp = pkt[8], pkt[ihl:]
		s.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[12:16])), binary.BigEndian.Uint16(tcp[0:]))
		s.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[16:20])), binary.BigEndian.Uint16(tcp[2:]))
	case 6:
		if len(pkt) < 54 || pkt[6] != 6 {
			return Segment{}, false
		}
		s.TTL, tcp = pkt[7], pkt[40:]
		s.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(pkt[8:24])), binary.BigEndian.Uint16(tcp[0:]))
		s.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(pkt[24:40])), binary.BigEndian.Uint16(tcp[2:]))
	default:
		return Segment{}, false
	}
	s.Flags = tcp[13]
	return s, true
}

// Verdict says who sent a RST.
type Verdict uint8

// Verdicts on a RST.
const (
	VerdictUnknown Verdict = iota // no other segment from that address seen yet
	VerdictPeer                   // same TTL as the peer's other segments
	VerdictForged                 // a different TTL: something in between sent it
)

func (v Verdict) String() string { return [...]string{"unknown", "peer", "forged"}[v] }

// MarshalText encodes the verdict by name.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// An RSTEvent is one captured RST and its verdict.
type RSTEvent struct {
	Time    time.Time      `json:"time"`
	From    netip.AddrPort `json:"from"`
	To      netip.AddrPort `json:"to"`
	TTL     uint8          `json:"ttl"`
	PeerTTL uint8          `json:"peer_ttl"` // TTL of From's other segments; 0 when none seen
	Verdict Verdict        `json:"verdict"`
}

func (e RSTEvent) String() string {
	peer := "?"
	if e.PeerTTL != 0 {
		peer = fmt.Sprint(e.PeerTTL)
	}
	return fmt.Sprintf("%s  RST %s → %s  ttl %3d  peer ttl %3s  %s",
		e.Time.Format("15:04:05.000"), e.From, e.To, e.TTL, peer, e.Verdict)
}

// WatchSummary counts what a watch saw.
type WatchSummary struct {
	Segments int        `json:"segments"`
	RSTs     int        `json:"rsts"`
	Peer     int        `json:"peer"`
	Forged   int        `json:"forged"`
	Unknown  int        `json:"unknown"`
	Events   []RSTEvent `json:"events"`
}

func (s WatchSummary) String() string {
	return fmt.Sprintf("%d segments, %d RSTs: %d sent by the peer, %d forged in between, %d unknown",
		s.Segments, s.RSTs, s.Peer, s.Forged, s.Unknown)
}

// A TTLJudge learns the TTL each address's segments arrive with and judges
// each RST against it. The zero value is ready to use.
type TTLJudge struct {
	ttl     map[netip.Addr]uint8
	summary WatchSummary
}

// Observe takes a segment and, for a RST, returns its event.
func (j *TTLJudge) Observe(s Segment) (RSTEvent, bool) {
	j.summary.Segments++
	if j.ttl == nil {
		j.ttl = map[netip.Addr]uint8{}
	}
	if s.Flags&flagRST == 0 {
		j.ttl[s.Src.Addr()] = s.TTL
		return RSTEvent{}, false
	}
	e := RSTEvent{Time: s.Time, From: s.Src, To: s.Dst, TTL: s.TTL, PeerTTL: j.ttl[s.Src.Addr()]}
	switch {
	case e.PeerTTL == 0:
		e.Verdict = VerdictUnknown
		j.summary.Unknown++
	case e.PeerTTL == e.TTL:
		e.Verdict = VerdictPeer
		j.summary.Peer++
	default:
		e.Verdict = VerdictForged
		j.summary.Forged++
	}
	j.summary.RSTs++
	j.summary.Events = append(j.summary.Events, e)
	return e, true
}

// Summary returns what the judge saw so far.
func (j *TTLJudge) Summary() WatchSummary {
	s := j.summary
	s.Events = append([]RSTEvent{}, s.Events...)
	return s
}

// portFilter is a classic BPF program for packets that start at the IP
// header: it accepts TCP over IPv4 (first fragment) or IPv6 (no extension
// header) with port as source or destination, and drops the rest.
func portFilter(port uint16) []bpf.Instruction {
	p := uint32(port)
	return []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 0, Size: 1},
		/* 1 */ bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
		/* 2 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipTrue: 10},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipFalse: 15},
		/* 4 */ bpf.LoadAbsolute{Off: 9, Size: 1},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipFalse: 13},
		/* 6 */ bpf.LoadAbsolute{Off: 6, Size: 2},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 11},
		/* 8 */ bpf.LoadMemShift{Off: 0},
		/* 9 */ bpf.LoadIndirect{Off: 0, Size: 2},
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: p, SkipTrue: 9},
		/* 11 */ bpf.LoadIndirect{Off: 2, Size: 2},
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: p, SkipTrue: 7, SkipFalse: 6},
		/* 13 v6 */ bpf.LoadAbsolute{Off: 6, Size: 1},
		/* 14 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipFalse: 4},
		/* 15 */ bpf.LoadAbsolute{Off: 40, Size: 2},
		/* 16 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: p, SkipTrue: 3},
		/* 17 */ bpf.LoadAbsolute{Off: 42, Size: 2},
		/* 18 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: p, SkipTrue: 1},
		/* 19 drop */ bpf.RetConstant{Val: 0},
		/* 20 accept */ bpf.RetConstant{Val: 256},
	}
}
