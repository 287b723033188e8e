package main

import (
	"fmt"

	"github.com/quicmsg/quicmsg/internal/hist"
)

// benchLatency is the latency histogram's summary, in microseconds.
type benchLatency struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// benchResult is bench's result, and its -json output.
type benchResult struct {
	Addr         string       `json:"addr"`
	Mode         string       `json:"mode"`        // oneway, echo or request
	ServerMode   string       `json:"server_mode"` // relay or echo, as found out
	CountedAt    string       `json:"counted_at"`  // "receiving connections" or "sending connections (echoes)"
	Conns        int          `json:"conns"`       // sending connections
	Channels     int          `json:"channels"`    // per sending connection
	Subscribers  int          `json:"subscribers"` // receiving connections per sending connection (oneway)
	Group        string       `json:"group,omitempty"`
	Inflight     int          `json:"inflight,omitempty"` // requests in flight per connection (request)
	Size         int          `json:"size"`               // bytes per message
	Rate         float64      `json:"rate"`               // requested messages/s in all; 0: unlimited
	EndedBy      string       `json:"ended_by"`           // count, duration, interrupt or errors
	Seconds      float64      `json:"seconds"`            // from the first send to the last delivery
	Sent         uint64       `json:"sent"`               // accepted by Send
	Expected     uint64       `json:"expected"`           // deliveries the messages sent should make: sent x subscribers in fan-out
	Delivered    uint64       `json:"delivered"`
	Undelivered  uint64       `json:"undelivered"`         // expected, not delivered within -timeout after sending stopped
	Missed       uint64       `json:"missed"`              // skipped by the server, as its gap notices reported
	Duplicates   uint64       `json:"duplicates"`          // -group: deliveries of a message already delivered
	Unchecked    uint64       `json:"unchecked,omitempty"` // -group: deliveries past the duplicate check's bound
	MsgsPerSec   float64      `json:"msgs_per_sec"`
	MBPerSec     float64      `json:"mb_per_sec"` // payload, 10^6 bytes
	LatencyUs    benchLatency `json:"latency_us"`
	GoAway       string       `json:"goaway,omitempty"` // the server's GOAWAY during the run, if one came
	Errors       uint64       `json:"errors"`
	ErrorSamples []string     `json:"error_samples,omitempty"` // the first few distinct errors
}

// result adds up the run. It must be called after close.
func (b *bench) result(serverMode, endedBy string, sendStart int64) *benchResult {
	var h hist.Histogram
	var last int64
	for _, t := range b.tallies {
		h.Merge(&t.hist)
		last = max(last, t.last)
	}
	r := &benchResult{
		Addr:        b.g.addr,
		Mode:        b.o.mode,
		ServerMode:  serverMode,
		CountedAt:   "receiving connections",
		Conns:       b.o.conns,
		Channels:    b.o.channels,
		Subscribers: b.o.subscribers,
		Group:       b.o.group,
		Size:        b.o.size,
		Rate:        b.o.rate,
		EndedBy:     endedBy,
		Sent:        b.sent(),
		Expected:    b.expected(serverMode),
		Delivered:   b.delivered(),
		Missed:      b.missed.Load(),
		Errors:      b.errs.Load(),
	}
	switch {
	case b.o.mode == modeRequest:
		r.CountedAt = "requesting connections (replies)"
		r.Inflight = b.o.inflight
		r.Subscribers = 0
	case serverMode == serverEchoes:
		r.CountedAt = "sending connections (echoes)"
	}
	r.Undelivered = r.Expected - min(r.Delivered, r.Expected)
	for _, s := range b.streams {
		var sets []*seqSet
		for _, t := range s.recv {
			if t.seen != nil {
				sets = append(sets, t.seen)
			}
		}
		d, u := duplicates(sets)
		r.Duplicates += d
		r.Unchecked += u
	}
	if r.Delivered > 0 && last > sendStart {
		r.Seconds = float64(last-sendStart) / 1e9
		r.MsgsPerSec = float64(r.Delivered) / r.Seconds
		r.MBPerSec = float64(r.Delivered) * float64(r.Size) / r.Seconds / 1e6
	}
	s := h.Summary()
	r.LatencyUs = benchLatency{
		Count: s.Count, Min: micros(s.Min), Mean: s.Mean / 1e3,
		P50: micros(s.P50), P90: micros(s.P90), P99: micros(s.P99), P999: micros(s.P999), Max: micros(s.Max),
	}
	r.GoAway = b.goAway()
	r.ErrorSamples = b.errorSamples()
	return r
}

func (r *benchResult) writeText(g *globals) error {
	w := g.stdout
	how, latency := r.counting()
	rate := "unlimited"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%g msg/s", r.Rate)
	}
	ns := func(us float64) string { return shortDuration(int64(us * 1e3)) }
	fmt.Fprintf(w, "quiccli bench: %s to %s; %s\n", r.Mode, r.Addr, how)
	fmt.Fprintf(w, "  setup        %d connection(s) x %d channel(s)%s, %d-byte messages, rate %s, ended by %s\n", r.Conns, r.Channels, r.receivers(), r.Size, rate, r.EndedBy)
	fmt.Fprintf(w, "  sent         %s messages (%s deliveries expected)\n", thousands(r.Sent), thousands(r.Expected))
	fmt.Fprintf(w, "  delivered    %s messages in %.2fs (%s undelivered, of which the server reported %s missed)\n", thousands(r.Delivered), r.Seconds, thousands(r.Undelivered), thousands(r.Missed))
	if r.Group != "" {
		fmt.Fprintf(w, "  duplicates   %s (%s not checked)\n", thousands(r.Duplicates), thousands(r.Unchecked))
	}
	fmt.Fprintf(w, "  throughput   %s msg/s, %.2f MB/s of payload\n", thousands(uint64(r.MsgsPerSec)), r.MBPerSec)
	if r.LatencyUs.Count == 0 {
		fmt.Fprintf(w, "  latency      n/a (nothing was delivered to time)\n")
	} else {
		fmt.Fprintf(w, "  latency      min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s (%s)\n",
			ns(r.LatencyUs.Min), ns(r.LatencyUs.P50), ns(r.LatencyUs.P90), ns(r.LatencyUs.P99), ns(r.LatencyUs.P999), ns(r.LatencyUs.Max), latency)
	}
	if r.GoAway != "" {
		fmt.Fprintf(w, "  goaway       %s\n", r.GoAway)
	}
	_, err := fmt.Fprintf(w, "  errors       %s\n", thousands(r.Errors))
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(w, "    %s\n", e)
	}
	return err
}

// counting says where deliveries were counted and what latency measures.
func (r *benchResult) counting() (how, latency string) {
	switch {
	case r.Mode == modeRequest && r.ServerMode == serverEchoes:
		return "the server answers requests itself; replies counted on the requesting connections", "round trip"
	case r.Mode == modeRequest:
		return "the server relays to bench's responder; replies counted on the requesting connections", "round trip"
	case r.ServerMode == serverEchoes:
		return "the server echoes; deliveries counted as echoes reach the sending connections", "round trip"
	}
	return "the server relays; deliveries counted on the receiving connections", "Send to delivery"
}

// receivers describes the receiving side of the setup line.
func (r *benchResult) receivers() string {
	switch {
	case r.Mode == modeRequest:
		return fmt.Sprintf(", %d request(s) in flight per connection", r.Inflight)
	case r.Group != "":
		return fmt.Sprintf(", %d subscriber connection(s) per sender in queue group %q", r.Subscribers, r.Group)
	case r.Subscribers > 1:
		return fmt.Sprintf(", %d subscriber connections per sender (fan-out)", r.Subscribers)
	}
	return ""
}

// goAway describes the first GOAWAY a connection of the run received.
func (b *bench) goAway() string {
	for _, c := range b.conns {
		if c == nil {
			continue
		}
		if ga, ok := c.PeerGoAway(); ok {
			return fmt.Sprintf("the server sent GOAWAY during the run (code %d, %q): its results stop there", ga.Code, ga.Reason)
		}
	}
	return ""
}

// errorSamples returns the first few distinct errors of the run.
func (b *bench) errorSamples() []string {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	return append([]string(nil), b.errSample...)
}
