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
	Mode         string       `json:"mode"`        // oneway or echo
	ServerMode   string       `json:"server_mode"` // relay or echo, as found out
	CountedAt    string       `json:"counted_at"`  // "receiving connections" or "sending connections (echoes)"
	Conns        int          `json:"conns"`       // sending connections
	Channels     int          `json:"channels"`    // per sending connection
	Size         int          `json:"size"`        // bytes per message
	Rate         float64      `json:"rate"`        // requested messages/s in all; 0: unlimited
	EndedBy      string       `json:"ended_by"`    // count, duration, interrupt or errors
	Seconds      float64      `json:"seconds"`     // from the first send to the last delivery
	Sent         uint64       `json:"sent"`        // accepted by Send
	Delivered    uint64       `json:"delivered"`
	Undelivered  uint64       `json:"undelivered"` // sent, not delivered within -timeout after sending stopped
	MsgsPerSec   float64      `json:"msgs_per_sec"`
	MBPerSec     float64      `json:"mb_per_sec"` // payload, 10^6 bytes
	LatencyUs    benchLatency `json:"latency_us"`
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
		Addr:       b.g.addr,
		Mode:       b.o.mode,
		ServerMode: serverMode,
		CountedAt:  "receiving connections",
		Conns:      b.o.conns,
		Channels:   b.o.channels,
		Size:       b.o.size,
		Rate:       b.o.rate,
		EndedBy:    endedBy,
		Sent:       b.sent(),
		Delivered:  b.delivered(),
		Errors:     b.errs.Load(),
	}
	if serverMode == serverEchoes {
		r.CountedAt = "sending connections (echoes)"
	}
	r.Undelivered = r.Sent - min(r.Delivered, r.Sent)
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
	b.errMu.Lock()
	r.ErrorSamples = append([]string(nil), b.errSample...)
	b.errMu.Unlock()
	return r
}

func (r *benchResult) writeText(g *globals) error {
	w := g.stdout
	how := "the server relays; deliveries counted on the receiving connections"
	latency := "Send to delivery"
	if r.ServerMode == serverEchoes {
		how = "the server echoes; deliveries counted as echoes reach the sending connections"
		latency = "round trip"
	}
	rate := "unlimited"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%g msg/s", r.Rate)
	}
	ns := func(us float64) string { return shortDuration(int64(us * 1e3)) }
	fmt.Fprintf(w, "quiccli bench: %s to %s; %s\n", r.Mode, r.Addr, how)
	fmt.Fprintf(w, "  setup        %d connection(s) x %d channel(s), %d-byte messages, rate %s, ended by %s\n", r.Conns, r.Channels, r.Size, rate, r.EndedBy)
	fmt.Fprintf(w, "  sent         %s messages\n", thousands(r.Sent))
	fmt.Fprintf(w, "  delivered    %s messages in %.2fs (%s undelivered)\n", thousands(r.Delivered), r.Seconds, thousands(r.Undelivered))
	fmt.Fprintf(w, "  throughput   %s msg/s, %.2f MB/s of payload\n", thousands(uint64(r.MsgsPerSec)), r.MBPerSec)
	fmt.Fprintf(w, "  latency      min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s (%s)\n",
		ns(r.LatencyUs.Min), ns(r.LatencyUs.P50), ns(r.LatencyUs.P90), ns(r.LatencyUs.P99), ns(r.LatencyUs.P999), ns(r.LatencyUs.Max), latency)
	_, err := fmt.Fprintf(w, "  errors       %s\n", thousands(r.Errors))
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(w, "    %s\n", e)
	}
	return err
}
