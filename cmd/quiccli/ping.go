package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/quicmsg/quicmsg/internal/hist"
	"github.com/quicmsg/quicmsg/transport"
)

const pingAbout = `Measures round-trip times to a server, like ping(8) and nats rtt: every
-interval it sends a PING on the connection's control stream and waits for
the PONG, then prints min/avg/p50/p99/max of the round-trip times. It works
against any quicmsg server (relay, echo or another mode) that answers PING;
one that predates PING is reported at once (use -echo against an echo
server). A ping unanswered within -timeout counts as lost.

With -echo it sends a message of -size bytes on -channel instead and waits
for its echo: a round trip through the server's message path, which needs a
server in echo mode (quicsrv -mode echo). Against a server that announces
another mode it fails at once. Each payload carries a random number of this
run and a sequence number; other messages on the channel are ignored.

Examples:
  quiccli ping -count 10 -interval 200ms
  quiccli ping -echo -size 1024`

// pingHeader starts every ping payload.
const pingHeader = "quiccli-ping"

// errNoEcho reports a ping left unanswered within -timeout.
var errNoEcho = errors.New("no echo")

// pingEvent is a line of ping's -json output: a reply, a lost ping, or the
// summary.
type pingEvent struct {
	Type  string  `json:"type"` // "reply" or "lost"
	Seq   int     `json:"seq"`
	Bytes int     `json:"bytes,omitempty"`
	RTTus float64 `json:"rtt_us,omitempty"`
}

type pingSummary struct {
	Type        string  `json:"type"` // "summary"
	Addr        string  `json:"addr"`
	Sent        int     `json:"sent"`
	Received    int     `json:"received"`
	LossPercent float64 `json:"loss_percent"`
	MinUs       float64 `json:"min_us"`
	AvgUs       float64 `json:"avg_us"`
	P50Us       float64 `json:"p50_us"`
	P99Us       float64 `json:"p99_us"`
	MaxUs       float64 `json:"max_us"`
}

// pingOptions are ping's flags.
type pingOptions struct {
	count    int
	interval time.Duration
	echo     bool // a message's round trip through an echo server, not PING/PONG
	size     int
	channel  string
}

// Defaults of ping -echo's own flags.
const (
	defaultPingSize    = 64
	defaultPingChannel = "ping"
)

func cmdPing(ctx context.Context, g *globals, args []string) error {
	o, err := parsePing(g, args)
	if err != nil {
		return err
	}
	conf, err := g.tlsConfig()
	if err != nil {
		return err
	}
	conn, err := g.dialConn(ctx, conf)
	if err != nil {
		return err
	}
	defer conn.Close()
	if !o.echo {
		if !conn.PeerCapabilities().Has(transport.CapPing) {
			return explain(exitError, &transport.CapabilityError{Op: "ping", Missing: transport.CapPing},
				"the server at %s does not answer PING (a quicmsg release before it): use quiccli ping -echo against a server in echo mode", g.addr)
		}
		p := &pinger{g: g, o: o, conn: conn}
		if !g.json {
			fmt.Fprintf(g.stdout, "PING %s (quicmsg/1, %s): PING/PONG on the control stream\n", g.addr, describeMode(conn.PeerMode()))
		}
		return p.run(ctx)
	}
	if err := g.requireEcho(conn, "ping -echo", "use quiccli ping without -echo, which works against any server"); err != nil {
		return err
	}
	p, err := g.newPinger(ctx, conn, o)
	if err != nil {
		return err
	}
	if !g.json {
		fmt.Fprintf(g.stdout, "PING %s (quicmsg/1) on channel %q: %d bytes\n", g.addr, o.channel, p.size)
	}
	return p.run(ctx)
}

// parsePing parses and checks ping's flags.
func parsePing(g *globals, args []string) (pingOptions, error) {
	o := pingOptions{count: 5, interval: time.Second, size: defaultPingSize, channel: defaultPingChannel}
	pos, err := g.parseCommand("ping", "", pingAbout, args, func(fs *flag.FlagSet) {
		fs.IntVar(&o.count, "count", o.count, "stop after `N` pings (0: until interrupted)")
		fs.DurationVar(&o.interval, "interval", o.interval, "time between the starts of two pings")
		fs.BoolVar(&o.echo, "echo", false, "time a message's round trip through a server in echo mode instead of PING/PONG")
		fs.IntVar(&o.size, "size", o.size, "with -echo: payload `bytes`; at least the 41-byte header is sent")
		fs.StringVar(&o.channel, "channel", o.channel, "with -echo: channel `name` to ping on")
	})
	switch {
	case err != nil:
		return o, err
	case len(pos) > 0:
		return o, usageError("ping takes no arguments, got %q", pos)
	case !o.echo && (o.size != defaultPingSize || o.channel != defaultPingChannel):
		return o, usageError("-size and -channel apply to ping -echo only: a PING carries no payload and uses no channel")
	case o.count < 0:
		return o, usageError("-count must not be negative")
	case o.interval < 0:
		return o, usageError("-interval must not be negative")
	case o.size < 0 || o.size > transport.MaxMessageSizeLimit:
		return o, usageError("-size must be between 0 and %d", transport.MaxMessageSizeLimit)
	}
	return o, checkChannelName(o.channel)
}

// pinger sends the pings of one run, PINGs on conn or with -echo messages
// on ch, and records their round trips.
type pinger struct {
	g     *globals
	o     pingOptions
	conn  *transport.Conn    // PING/PONG; nil with -echo
	ch    *transport.Channel // -echo: the channel to ping on
	nonce uint64
	size  int // of every payload, header included
	sent  int
	rtts  hist.Histogram
}

// newPinger opens the channel to ping on and checks that the payloads fit
// the server's message size limit.
func (g *globals) newPinger(ctx context.Context, conn *transport.Conn, o pingOptions) (*pinger, error) {
	octx, cancel := context.WithTimeout(ctx, g.timeout)
	ch, err := conn.OpenChannel(octx, o.channel)
	cancel()
	if err != nil {
		return nil, g.describe(err)
	}
	p := &pinger{g: g, o: o, ch: ch, nonce: rand.Uint64()}
	p.size = len(pingPayload(p.nonce, 0, o.size))
	if limit := conn.PeerLimits().MaxMessageSize; p.size > limit {
		return nil, explain(exitError, &transport.MessageTooLargeError{Channel: o.channel, Size: p.size, Limit: limit},
			"-size %d is larger than the server's limit of %d bytes (quicsrv -max-message-size)", p.size, limit)
	}
	return p, nil
}

// run sends a ping every interval, starting at once, until count were sent
// or ctx ends, then prints the statistics.
func (p *pinger) run(ctx context.Context) error {
	start := time.Now()
	wait := time.NewTimer(0)
	defer wait.Stop()
loop:
	for seq := 0; p.o.count == 0 || seq < p.o.count; seq++ {
		if seq > 0 {
			wait.Reset(time.Until(start.Add(time.Duration(seq) * p.o.interval)))
			select {
			case <-wait.C:
			case <-ctx.Done():
				break loop
			}
		}
		interrupted, err := p.ping(ctx, seq)
		if err != nil {
			return err
		}
		if interrupted {
			break loop
		}
	}
	if err := p.g.pingSummary(p.sent, &p.rtts, time.Since(start)); err != nil {
		return err
	}
	if p.conn != nil && p.sent > 0 && p.rtts.Count() == 0 {
		return explain(exitError, errNoEcho, "no PONG from %s: %d pings unanswered within %s each", p.g.addr, p.sent, p.g.timeout)
	}
	return nil
}

// ping sends ping seq, waits for its PONG or echo and reports it. It
// returns interrupted when ctx ended meanwhile.
func (p *pinger) ping(ctx context.Context, seq int) (interrupted bool, err error) {
	if p.conn != nil {
		return p.controlPing(ctx, seq)
	}
	t0 := time.Now()
	if err := p.ch.Send(ctx, pingPayload(p.nonce, seq, p.size)); err != nil {
		if ctx.Err() != nil {
			return true, nil
		}
		return false, p.g.describe(err)
	}
	p.sent++
	err = awaitEcho(ctx, p.ch, p.nonce, seq, t0.Add(p.g.timeout))
	rtt := time.Since(t0)
	if ctx.Err() != nil {
		return true, nil
	}
	return false, p.report(seq, rtt, err)
}

// controlPing sends PING seq on the control stream and reports its PONG,
// or its loss after -timeout.
func (p *pinger) controlPing(ctx context.Context, seq int) (interrupted bool, err error) {
	pctx, cancel := context.WithTimeout(ctx, p.g.timeout)
	rtt, err := p.conn.Ping(pctx)
	expired := pctx.Err() != nil
	cancel()
	switch {
	case ctx.Err() != nil:
		return true, nil
	case expired:
		err = errNoEcho
	case err != nil:
		return false, p.g.describe(err)
	}
	p.sent++
	return false, p.report(seq, rtt, err)
}

// report prints the reply to ping seq, or its loss; with -echo the first
// ping lost before any reply ends the run with an explanation.
func (p *pinger) report(seq int, rtt time.Duration, err error) error {
	g := p.g
	switch {
	case errors.Is(err, errNoEcho) && p.rtts.Count() == 0 && p.conn == nil:
		return explain(exitError, err, "no echo from %s within %s: ping needs a server in echo mode (quicsrv -mode echo); a relay server sends nothing back to the sender", g.addr, g.timeout)
	case errors.Is(err, errNoEcho) && g.json:
		_ = writeJSON(g.stdout, pingEvent{Type: "lost", Seq: seq})
	case errors.Is(err, errNoEcho):
		fmt.Fprintf(g.stdout, "no reply to seq=%d within %s\n", seq, g.timeout)
	case err != nil:
		return g.describe(err)
	case g.json:
		p.rtts.Record(int64(rtt))
		_ = writeJSON(g.stdout, pingEvent{Type: "reply", Seq: seq, Bytes: p.size, RTTus: micros(int64(rtt))})
	case p.conn != nil:
		p.rtts.Record(int64(rtt))
		fmt.Fprintf(g.stdout, "PONG from %s: seq=%d time=%s ms\n", g.addr, seq, millis(int64(rtt)))
	default:
		p.rtts.Record(int64(rtt))
		fmt.Fprintf(g.stdout, "%d bytes from %s: seq=%d time=%s ms\n", p.size, g.addr, seq, millis(int64(rtt)))
	}
	return nil
}

func (g *globals) pingSummary(sent int, rtts *hist.Histogram, elapsed time.Duration) error {
	received := int(rtts.Count())
	loss := 0.0
	if sent > 0 {
		loss = 100 * float64(sent-received) / float64(sent)
	}
	s := rtts.Summary()
	if g.json {
		return writeJSON(g.stdout, pingSummary{
			Type: "summary", Addr: g.addr, Sent: sent, Received: received, LossPercent: loss,
			MinUs: micros(s.Min), AvgUs: s.Mean / 1e3, P50Us: micros(s.P50), P99Us: micros(s.P99), MaxUs: micros(s.Max),
		})
	}
	fmt.Fprintf(g.stdout, "\n--- %s ping statistics ---\n", g.addr)
	fmt.Fprintf(g.stdout, "%d pings sent, %d replies, %s%% loss, time %dms\n", sent, received,
		strconv.FormatFloat(loss, 'f', -1, 64), elapsed.Milliseconds())
	if received > 0 {
		_, err := fmt.Fprintf(g.stdout, "rtt min/avg/p50/p99/max = %s/%s/%s/%s/%s ms\n",
			millis(s.Min), millis(int64(s.Mean)), millis(s.P50), millis(s.P99), millis(s.Max))
		return err
	}
	return nil
}

// pingPayload returns the payload of ping seq: the header, the run's nonce,
// the sequence number, padded with dots to size bytes; at least 41 bytes.
func pingPayload(nonce uint64, seq, size int) []byte {
	p := fmt.Appendf(nil, "%s %016x %010d ", pingHeader, nonce, seq)
	for len(p) < size {
		p = append(p, '.')
	}
	return p
}

// awaitEcho waits until deadline for the echo of ping seq, skipping late
// echoes of earlier pings and foreign messages. It returns errNoEcho at the
// deadline.
func awaitEcho(ctx context.Context, ch *transport.Channel, nonce uint64, seq int, deadline time.Time) error {
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for {
		msg, err := ch.Receive(rctx)
		switch {
		case err != nil && ctx.Err() == nil && rctx.Err() != nil:
			return errNoEcho
		case err != nil:
			return err
		}
		f := strings.Fields(string(msg[:min(len(msg), 64)]))
		if len(f) >= 3 && f[0] == pingHeader && f[1] == fmt.Sprintf("%016x", nonce) && f[2] == fmt.Sprintf("%010d", seq) {
			return nil
		}
	}
}
