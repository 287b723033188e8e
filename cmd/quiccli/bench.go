package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/quicmsg/quicmsg/internal/hist"
	"github.com/quicmsg/quicmsg/transport"
)

const benchAbout = `Generates load and reports what was DELIVERED: messages/s and MB/s of
payload received (1 MB = 10^6 bytes), latency percentiles (p50, p90, p99,
p99.9, max) from an HDR-style histogram, undelivered messages and errors.
Every channel name carries a random run ID, so runs never see each other's
messages.

-mode oneway (the default): -conns connections each send as fast as -rate
allows on -channels channels. Each sending connection has a twin that opens
the same channels. Before the run a test message on every channel finds out
what the server does with it: a relay (quicsrv -mode relay) delivers it to the
twin, and messages are counted there; an echo server (quicsrv -mode echo)
sends it back, and messages are counted as their echoes reach the sender.
Latency runs from the Send call to the delivery: one way through a relay, a
round trip through an echo server. One way without -rate the send time is
read once per 8 messages (a clock read costs a tenth of the client's CPU at full speed),
so a latency may include the sending of up to 7 messages before. When sending stops, deliveries are awaited
for up to -timeout; what has not arrived by then counts as undelivered.

-subscribers N (oneway, through a relay): each sending connection has N
receiving connections instead of one twin, all opening the same channels:
fan-out, every message is delivered N times and deliveries are counted over
all of them. With -group NAME the receiving connections open the channels in
the queue group NAME: each message is delivered to one of them, and bench
checks that none arrives twice (each message carries a sequence number; -size
at least 17). With -subscriber-addrs HOST:PORT[,HOST:PORT...] the receiving
connections dial those addresses in turn instead of -addr (the sending
connections stay on -addr): fan-out across the nodes of a quicsrv -cluster.

-mode echo: round trips against an echo server. Each channel keeps one
message in flight: send, wait for its echo, send the next. Latency is the
round trip without queueing. A relay server answers nothing and the command
says so.

-mode request: request/reply round trips (transport Conn.Request). bench opens
a responder connection of its own that subscribes to the request subject and
replies to every request with its payload; each of the -conns requesting
connections keeps -inflight requests in flight. Counted are replies received;
latency is the round trip. Works through a relay (the responder answers) and
against an echo server (the server answers).

The run ends after -duration, or earlier after -count messages in all.
With -rate the messages are spread evenly over the channels. A live progress
line is written to stderr when stderr is a terminal.

Example:
  quiccli bench -conns 4 -channels 4 -size 64 -duration 10s
  quiccli bench -subscribers 10 -duration 5s
  quiccli bench -subscribers 4 -group workers
  quiccli bench -mode request -inflight 64
  quiccli bench -mode echo -rate 1000 -json`

// Bounds on a bench run.
const (
	benchMaxConns    = 256  // -conns
	benchMaxChannels = 100  // -channels: the server's default channel limit per connection
	benchMaxStreams  = 1000 // conns x channels: each has a send buffer of up to 64 KiB
	// benchHeader is a bench message's kind byte and send time.
	benchHeader = 9
	// benchSeqHeader adds a sequence number per channel, checked for
	// duplicates with -group.
	benchSeqHeader = benchHeader + 8
	// benchMaxSubscribers bounds -subscribers, and benchMaxReceivers the
	// receiving channels in all.
	benchMaxSubscribers = 64
	benchMaxReceivers   = 4000
	// benchMaxInflight bounds -inflight.
	benchMaxInflight = 1024
	// syncEvery is how often a sync message is repeated until it arrives.
	syncEvery = 50 * time.Millisecond
	// progressEvery is how often the progress line is redrawn.
	progressEvery = 200 * time.Millisecond
)

// Bench message kinds, the first byte of each message.
const (
	kindData byte = 'D' // counted; bytes 1-8: send time, ns since the run's epoch, little endian
	kindSync byte = 'S' // before the run: finds out whether the server relays or echoes
)

// Where messages are counted.
const (
	serverRelays = "relay"
	serverEchoes = "echo"
)

var errNoSync = errors.New("test message not delivered")

type benchOptions struct {
	conns       int
	channels    int
	size        int
	count       int64
	duration    time.Duration
	rate        float64
	mode        string
	subscribers int      // receiving connections per sending connection (oneway)
	group       string   // queue group of the receiving channels (oneway)
	inflight    int      // requests in flight per connection (request)
	subAddrs    []string // oneway: addresses the receiving connections dial in turn; empty: -addr
}

// tally counts the deliveries seen by one goroutine.
type tally struct {
	delivered atomic.Uint64
	hist      hist.Histogram // owned by the counting goroutine until it ends
	last      int64          // time of the last delivery, ns since epoch; same owner
	seen      *seqSet        // sequence numbers received, with -group; same owner
}

// benchStream is one channel of one sending connection, with its twins on
// the receiving connections in oneway mode.
type benchStream struct {
	pub    *transport.Channel
	subs   []*transport.Channel // oneway: the same channel on each receiving connection
	synced chan int             // receives the index in subs, or echoed, when a sync message arrives
	conn   *transport.Conn      // request mode: the requesting connection; pub is nil
	sent   atomic.Uint64
	echoes tally    // echo and request modes: round trips, counted by the sender itself
	recv   []*tally // oneway: the tallies of subs, in order
}

// echoed marks a sync message that came back to its sender.
const echoed = -1

type bench struct {
	g     *globals
	o     benchOptions
	epoch time.Time

	conns   []*transport.Conn // senders first, then their twins
	streams []*benchStream
	tallies []*tally // one per counting goroutine

	subject   string        // request mode: the subject bench's responder answers
	answered  atomic.Uint64 // request mode: requests bench's responder answered
	missed    atomic.Uint64 // messages the server reported skipped (gap notices)
	remaining atomic.Int64  // messages left to send under -count
	stopping  atomic.Bool   // set before the connections are closed at the end
	errs      atomic.Uint64
	errMu     sync.Mutex
	errSample []string
	readers   sync.WaitGroup

	// live counts the receiving connections' readers still reading
	// (oneway); when the last one ends before the run does, gone is
	// cancelled and the run stops: sending on would go to no one.
	live       atomic.Int64
	gone       context.Context
	goneCancel context.CancelFunc
}

// newBench returns a bench ready to run; its caller calls stop when done.
func newBench(g *globals, o benchOptions) (b *bench, stop func()) {
	b = &bench{g: g, o: o, epoch: time.Now()}
	b.gone, b.goneCancel = context.WithCancel(context.Background())
	return b, b.goneCancel
}

// receiversGone reports whether every receiving connection was lost
// during the run.
func (b *bench) receiversGone() bool { return b.gone != nil && b.gone.Err() != nil }

// readerEnded notes the end of receiver idx's reader.
func (b *bench) readerEnded(idx int) {
	if idx != echoed && b.live.Add(-1) == 0 && !b.stopping.Load() && b.goneCancel != nil {
		b.goneCancel()
	}
}

func cmdBench(ctx context.Context, g *globals, args []string) error {
	o := benchOptions{conns: 1, channels: 1, size: 64, duration: 10 * time.Second, mode: "oneway", subscribers: 1, inflight: 1}
	pos, err := g.parseCommand("bench", "", benchAbout, args, func(fs *flag.FlagSet) {
		fs.IntVar(&o.conns, "conns", o.conns, fmt.Sprintf("sending connections (at most %d)", benchMaxConns))
		fs.IntVar(&o.channels, "channels", o.channels, fmt.Sprintf("channels per sending connection (at most %d, and %d streams in all)", benchMaxChannels, benchMaxStreams))
		fs.IntVar(&o.size, "size", o.size, fmt.Sprintf("message size in `bytes` (at least %d: kind and send time)", benchHeader))
		fs.Int64Var(&o.count, "count", 0, "stop after `N` messages in all (0: no limit; -duration still applies)")
		fs.DurationVar(&o.duration, "duration", o.duration, "how long to send")
		fs.Float64Var(&o.rate, "rate", 0, "messages per second in all, spread evenly over the channels (0: as fast as possible)")
		fs.StringVar(&o.mode, "mode", o.mode, "oneway: delivered message rate; echo: round trips, one message in flight per channel; request: request/reply round trips")
		fs.IntVar(&o.subscribers, "subscribers", o.subscribers, fmt.Sprintf("oneway: receiving connections per sending connection, each opening every channel: fan-out (at most %d)", benchMaxSubscribers))
		fs.StringVar(&o.group, "group", "", "oneway: the receiving connections open the channels in this queue `group`: each message goes to one of them")
		fs.Func("subscriber-addrs", "oneway: the receiving connections dial these `HOST:PORT[,HOST:PORT...]` in turn instead of -addr", o.setSubAddrs)
		fs.IntVar(&o.inflight, "inflight", o.inflight, fmt.Sprintf("request: requests in flight per connection (at most %d)", benchMaxInflight))
	})
	if err != nil {
		return err
	}
	if err := o.check(pos); err != nil {
		return err
	}
	b, stop := newBench(g, o)
	defer stop()
	res, err := b.run(ctx)
	if err != nil {
		return err
	}
	if g.json {
		err = writeJSON(g.stdout, res)
	} else {
		err = res.writeText(g)
	}
	if err != nil {
		return err
	}
	if res.Delivered == 0 && ctx.Err() == nil {
		return explain(exitError, nil, "no message was delivered")
	}
	return nil
}

func (o *benchOptions) check(pos []string) error {
	switch {
	case len(pos) > 0:
		return usageError("bench takes no arguments, got %q", pos)
	case o.conns < 1 || o.conns > benchMaxConns:
		return usageError("-conns must be between 1 and %d", benchMaxConns)
	case o.channels < 1 || o.channels > benchMaxChannels:
		return usageError("-channels must be between 1 and %d", benchMaxChannels)
	case o.conns*o.channels > benchMaxStreams:
		return usageError("-conns x -channels must be at most %d", benchMaxStreams)
	case o.size < benchHeader || o.size > transport.MaxMessageSizeLimit:
		return usageError("-size must be between %d and %d bytes", benchHeader, transport.MaxMessageSizeLimit)
	case o.count < 0:
		return usageError("-count must not be negative")
	case o.duration <= 0:
		return usageError("-duration must be positive")
	case o.rate < 0:
		return usageError("-rate must not be negative")
	case o.mode != "oneway" && o.mode != "echo" && o.mode != modeRequest:
		return usageError("-mode must be oneway, echo or request, not %q", o.mode)
	}
	return o.checkModes()
}

// checkModes checks the flags that belong to one mode.
func (o *benchOptions) checkModes() error {
	switch {
	case o.subscribers < 1 || o.subscribers > benchMaxSubscribers:
		return usageError("-subscribers must be between 1 and %d", benchMaxSubscribers)
	case o.conns*o.channels*o.subscribers > benchMaxReceivers:
		return usageError("-conns x -channels x -subscribers must be at most %d", benchMaxReceivers)
	case o.mode != "oneway" && (o.subscribers != 1 || o.group != "" || len(o.subAddrs) > 0):
		return usageError("-subscribers, -group and -subscriber-addrs go with -mode oneway")
	case o.inflight < 1 || o.inflight > benchMaxInflight:
		return usageError("-inflight must be between 1 and %d", benchMaxInflight)
	case o.inflight != 1 && o.mode != modeRequest:
		return usageError("-inflight goes with -mode request")
	}
	return o.checkGroup()
}

// checkGroup checks -group.
func (o *benchOptions) checkGroup() error {
	switch {
	case o.group == "":
		return nil
	case o.size < benchSeqHeader:
		return usageError("-group needs -size of at least %d bytes (kind, send time and sequence number)", benchSeqHeader)
	case !validGroup(o.group):
		return usageError("-group %q: want 1 to 255 visible ASCII characters without '.', '*' or '>'", o.group)
	}
	return nil
}

// setSubAddrs parses -subscriber-addrs: a comma-separated list of HOST:PORT.
func (o *benchOptions) setSubAddrs(v string) error {
	o.subAddrs = nil
	for a := range strings.SplitSeq(v, ",") {
		host, port, err := net.SplitHostPort(strings.TrimSpace(a))
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("%q is not HOST:PORT (want HOST:PORT[,HOST:PORT...])", a)
		}
		o.subAddrs = append(o.subAddrs, net.JoinHostPort(host, port))
	}
	return nil
}

// validGroup reports whether name is a valid queue group name.
func validGroup(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e || c == '.' || c == '*' || c == '>' {
			return false
		}
	}
	return true
}

// now returns the time since the run's epoch, in nanoseconds.
func (b *bench) now() int64 { return int64(time.Since(b.epoch)) }

func (b *bench) oneway() bool { return b.o.mode == "oneway" }

// run connects, finds out what the server does, sends for the run's length,
// awaits deliveries and returns the result.
func (b *bench) run(ctx context.Context) (*benchResult, error) {
	conf, err := b.g.tlsConfig()
	if err != nil {
		return nil, err
	}
	connect, sync := b.connect, b.sync
	if b.o.mode == modeRequest {
		connect, sync = b.connectRequests, b.syncRequests
	}
	if err := connect(ctx, conf); err != nil {
		b.close()
		return nil, err
	}
	serverMode, err := sync(ctx)
	if err != nil {
		b.close()
		return nil, err
	}
	sendStart := b.now()
	endedBy := b.send(ctx, serverMode)
	b.close()
	return b.result(serverMode, endedBy, sendStart), nil
}

// connect dials the connections, opens the channels and starts the
// counting readers.
func (b *bench) connect(ctx context.Context, conf *tls.Config) error {
	n := b.o.conns
	if b.oneway() {
		n += b.o.conns * b.o.subscribers
	}
	if err := b.dialAll(ctx, conf, n); err != nil {
		return err
	}
	run := fmt.Sprintf("%08x", rand.Uint32())
	octx, cancel := context.WithTimeout(ctx, b.g.timeout)
	defer cancel()
	for i := range b.o.conns {
		for k := range b.o.channels {
			s, err := b.openStream(octx, i, fmt.Sprintf("quiccli-bench.%s.%d.%d", run, i, k))
			if err != nil {
				if octx.Err() != nil && ctx.Err() == nil {
					return explain(exitError, err, "opening channel %d of a connection took longer than %s: does the server allow %d channels per connection (quicsrv default %d)?", k+1, b.g.timeout, b.o.channels, transport.DefaultMaxChannels)
				}
				return b.g.describe(err)
			}
			b.streams = append(b.streams, s)
		}
	}
	if b.oneway() {
		for _, s := range b.streams {
			for j, sub := range s.subs {
				s.recv = append(s.recv, b.startReader(s, sub, j))
			}
			b.startReader(s, s.pub, echoed)
		}
	}
	return nil
}

// dialAll dials n connections at once into b.conns and checks -size
// against the server's limit.
func (b *bench) dialAll(ctx context.Context, conf *tls.Config, n int) error {
	b.conns = make([]*transport.Conn, n)
	var eg errgroup.Group
	for i := range b.conns {
		eg.Go(func() error {
			c, err := b.g.dialConnAt(ctx, conf, b.dialAddr(i))
			b.conns[i] = c
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	if err := b.checkServerMode(b.conns[0]); err != nil {
		return err
	}
	if limit := b.conns[0].PeerLimits().MaxMessageSize; b.o.size > limit {
		return explain(exitError, &transport.MessageTooLargeError{Size: b.o.size, Limit: limit},
			"-size %d is larger than the server's limit of %d bytes (quicsrv -max-message-size)", b.o.size, limit)
	}
	return nil
}

// checkServerMode fails at once when the server announced a mode that
// cannot serve the run, instead of waiting out -timeout for the test
// message: -mode echo needs echo mode, the other modes relay or echo. A
// server that announced none predates the MODE extension; the test
// message finds out what it does.
func (b *bench) checkServerMode(conn *transport.Conn) error {
	mode := conn.PeerMode()
	switch {
	case mode == "":
		return nil
	case b.o.mode == "echo":
		return b.g.requireEcho(conn, "bench -mode echo", "use -mode oneway or -mode request")
	case mode != transport.ModeRelay && mode != transport.ModeEcho:
		return explain(exitError, &serverModeError{Need: "relay or echo", Mode: mode},
			"bench needs a quicsrv in relay or echo mode, but the server at %s is in %s mode", b.g.addr, mode)
	}
	return nil
}

// dialAddr is the address connection i dials: -addr for the sending
// connections, the -subscriber-addrs in turn for the receiving ones.
func (b *bench) dialAddr(i int) string {
	if i < b.o.conns || len(b.o.subAddrs) == 0 {
		return b.g.addr
	}
	return b.o.subAddrs[(i-b.o.conns)%len(b.o.subAddrs)]
}

// openStream opens channel name on sending connection i and, in oneway
// mode, on each of its receiving connections (in the queue group -group
// when given).
func (b *bench) openStream(ctx context.Context, i int, name string) (*benchStream, error) {
	s := &benchStream{synced: make(chan int, b.o.subscribers+1)}
	var err error
	if s.pub, err = b.conns[i].OpenChannel(ctx, name); err != nil || !b.oneway() {
		return s, err
	}
	for j := range b.o.subscribers {
		conn := b.conns[b.o.conns+i*b.o.subscribers+j]
		var sub *transport.Channel
		if b.o.group != "" {
			sub, err = conn.OpenChannelWith(ctx, name, transport.ChannelOptions{Group: b.o.group})
		} else {
			sub, err = conn.OpenChannel(ctx, name)
		}
		if err != nil {
			return s, err
		}
		s.subs = append(s.subs, sub)
	}
	return s, nil
}

// startReader counts the data messages arriving on ch, receiver idx of s
// (echoed: the sender itself), and returns its tally.
func (b *bench) startReader(s *benchStream, ch *transport.Channel, idx int) *tally {
	t := &tally{}
	if b.o.group != "" && idx != echoed {
		t.seen = &seqSet{}
	}
	b.tallies = append(b.tallies, t)
	if idx != echoed {
		b.live.Add(1)
	}
	b.readers.Go(func() {
		defer b.readerEnded(idx)
		// count keeps nothing of a message: one buffer serves them all.
		buf := make([]byte, 0, max(b.o.size, benchHeader))
		for {
			// No context: the reader ends when its connection is closed,
			// and a Receive without one costs less.
			msg, err := ch.ReceiveBuf(context.Background(), buf)
			if gap := (*transport.GapError)(nil); errors.As(err, &gap) {
				// The relay skipped messages for this receiver.
				b.missed.Add(gap.Missed)
				continue
			}
			if err != nil {
				if !b.stopping.Load() {
					b.fail(err)
				}
				return
			}
			b.count(s, t, msg, idx)
		}
	})
	return t
}

// count handles a received message at receiver idx of s.
func (b *bench) count(s *benchStream, t *tally, msg []byte, idx int) {
	switch {
	case len(msg) < benchHeader:
		b.fail(fmt.Errorf("unexpected message of %d bytes", len(msg)))
	case msg[0] == kindSync:
		select {
		case s.synced <- idx:
		default:
		}
	case msg[0] == kindData:
		now := b.now()
		t.hist.Record(now - int64(binary.LittleEndian.Uint64(msg[1:])))
		t.last = now
		if t.seen != nil && len(msg) >= benchSeqHeader {
			t.seen.add(binary.LittleEndian.Uint64(msg[benchHeader:]))
		}
		t.delivered.Add(1)
	default:
		b.fail(fmt.Errorf("unexpected message of kind %q", msg[0]))
	}
}

// sync sends a test message on every channel until it arrives, so that the
// server knows every receiving channel before the run starts, and returns
// what the server did with it: serverRelays or serverEchoes.
func (b *bench) sync(ctx context.Context) (string, error) {
	modes := make([]string, len(b.streams))
	var eg errgroup.Group
	for i, s := range b.streams {
		eg.Go(func() error {
			var err error
			if b.oneway() {
				modes[i], err = b.syncOneway(ctx, s)
			} else {
				modes[i], err = b.syncEcho(ctx, s)
			}
			return err
		})
	}
	err := eg.Wait()
	switch {
	case ctx.Err() != nil:
		return "", interrupted(ctx.Err(), "before the run started")
	case errors.Is(err, errNoSync) && b.oneway():
		return "", explain(exitError, err, "the server at %s neither relayed nor echoed a test message within %s; is it a quicsrv in relay or echo mode?", b.g.addr, b.g.timeout)
	case errors.Is(err, errNoSync):
		return "", explain(exitError, err, "no echo from %s within %s: bench -mode echo needs a server in echo mode (quicsrv -mode echo); against a relay use -mode oneway", b.g.addr, b.g.timeout)
	case err != nil:
		return "", b.g.describe(err)
	}
	for _, m := range modes {
		if m != modes[0] {
			return "", explain(exitError, nil, "the server relayed the test message on some channels and echoed it on others; bench cannot count deliveries")
		}
	}
	return modes[0], nil
}

// syncOneway sends sync messages on s every syncEvery until each of its
// receivers got one (the relay knows every subscription; a queue group
// hands them out in turn) or one came back to the sender (an echo server).
func (b *bench) syncOneway(ctx context.Context, s *benchStream) (string, error) {
	msg := make([]byte, benchHeader)
	msg[0] = kindSync
	deadline := time.NewTimer(b.g.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(syncEvery)
	defer tick.Stop()
	got := make([]bool, len(s.subs))
	left := len(s.subs)
	for {
		if err := s.pub.Send(ctx, msg); err != nil {
			return "", err
		}
		for wait := true; wait; {
			select {
			case idx := <-s.synced:
				if idx == echoed {
					return serverEchoes, nil
				}
				if !got[idx] {
					got[idx] = true
					left--
				}
				if left == 0 {
					return serverRelays, nil
				}
			case <-tick.C:
				wait = false
			case <-deadline.C:
				return "", errNoSync
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
	}
}

func (b *bench) syncEcho(ctx context.Context, s *benchStream) (string, error) {
	msg := make([]byte, benchHeader)
	msg[0] = kindSync
	if err := s.pub.Send(ctx, msg); err != nil {
		return "", err
	}
	rctx, cancel := context.WithTimeout(ctx, b.g.timeout)
	defer cancel()
	for {
		reply, err := s.pub.Receive(rctx)
		switch {
		case err != nil && rctx.Err() != nil && ctx.Err() == nil:
			return "", errNoSync
		case err != nil:
			return "", err
		case len(reply) >= 1 && reply[0] == kindSync:
			return serverEchoes, nil
		}
	}
}

// send runs the senders (or requesters) until -duration, -count or ctx
// ends, and says which ended the run.
func (b *bench) send(ctx context.Context, serverMode string) string {
	rctx, cancel := context.WithTimeout(ctx, b.o.duration)
	defer cancel()
	if b.gone != nil {
		defer context.AfterFunc(b.gone, cancel)()
	}
	// An echo or a reply in flight when the run ends is still awaited, up
	// to -timeout.
	ectx, ecancel := context.WithTimeout(ctx, b.o.duration+b.g.timeout)
	defer ecancel()
	if b.o.count > 0 {
		b.remaining.Store(b.o.count)
	}
	var interval time.Duration
	if b.o.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(b.streams)) / b.o.rate)
	}
	if !b.oneway() {
		for _, s := range b.streams {
			b.tallies = append(b.tallies, &s.echoes)
		}
	}
	stop := b.startProgress()
	failed := b.runStreams(rctx, ectx, interval)
	if b.oneway() && !b.receiversGone() {
		dctx, wait := drainWindow(ctx, b.g.timeout)
		b.drain(dctx, wait, serverMode)
	}
	stop()
	return b.endedBy(ctx, failed)
}

// runStreams runs every stream's sender (or requester) until rctx ends or
// the -count budget is spent, echoes and replies awaited until ectx ends,
// and returns how many of them failed.
func (b *bench) runStreams(rctx, ectx context.Context, interval time.Duration) int {
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, s := range b.streams {
		wg.Go(func() {
			var err error
			switch {
			case b.oneway():
				err = b.publish(rctx, s, interval)
			case b.o.mode == modeRequest:
				err = b.requestLoop(rctx, ectx, s, interval)
			default:
				err = b.pingPong(rctx, ectx, s, interval)
			}
			if err != nil {
				failed.Add(1)
				b.fail(err)
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// endedBy says what ended the run: ctx is the command's, failed the
// number of streams that failed.
func (b *bench) endedBy(ctx context.Context, failed int) string {
	switch {
	case ctx.Err() != nil:
		return "interrupt"
	case b.receiversGone():
		return "receivers gone"
	case b.o.count > 0 && b.remaining.Load() <= 0:
		return "count"
	case failed == len(b.streams):
		return "errors"
	}
	return "duration"
}

// take claims one message of the -count budget.
func (b *bench) take() bool {
	return b.o.count == 0 || b.remaining.Add(-1) >= 0
}

// pace waits until message i of a stream that started at start is due. It
// returns false when ctx ends first. A message due after ctx's deadline is
// never sent, even while the deadline's timer has not fired yet, as happens
// on a loaded machine: pace then waits for ctx to end.
func pace(ctx context.Context, t *time.Timer, start time.Time, i int, interval time.Duration) bool {
	if interval == 0 {
		return ctx.Err() == nil
	}
	due := start.Add(time.Duration(i) * interval)
	if dl, ok := ctx.Deadline(); ok && due.After(dl) {
		<-ctx.Done()
		return false
	}
	d := time.Until(due)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t.Reset(d)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// publish sends data messages on s until ctx ends or the -count budget is
// spent. It returns a failure, not the end of ctx.
func (b *bench) publish(ctx context.Context, s *benchStream, interval time.Duration) error {
	return b.sendLoop(ctx, s, interval, func(msg []byte) error { return s.pub.Send(ctx, msg) }, nil)
}

// pingPong sends a data message on s, waits for its echo and records the
// round trip, until ctx ends or the -count budget is spent; echoes are
// awaited until ectx ends.
func (b *bench) pingPong(ctx, ectx context.Context, s *benchStream, interval time.Duration) error {
	buf := make([]byte, 0, b.o.size) // for the echoes, of which count keeps nothing
	send := func(msg []byte) error { return s.pub.Send(ctx, msg) }
	return b.sendLoop(ctx, s, interval, send, func() (bool, error) {
		for {
			reply, err := s.pub.ReceiveBuf(ectx, buf)
			if err != nil {
				if ectx.Err() != nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
					return true, nil // interrupted
				}
				if ectx.Err() != nil {
					return true, fmt.Errorf("no echo within %s (-timeout) after the run", b.g.timeout)
				}
				return true, err
			}
			if len(reply) >= 1 && reply[0] == kindData {
				b.count(s, &s.echoes, reply, echoed)
				return false, nil
			}
		}
	})
}

// unpacedStampEvery is how many messages share one send time one way
// without -rate (a round trip reads the clock for each): at full speed a clock read per message was a tenth of the
// client's CPU (runtime.nanotime in the profile of a one-way run).
const unpacedStampEvery = 8

// sendLoop sends data messages stamped with their send time (and sequence
// number) with send, for s, paced by interval, until ctx ends or the -count
// budget is spent. After each one it calls after, if set, which may stop
// the loop. It returns a failure, not the end of ctx.
func (b *bench) sendLoop(ctx context.Context, s *benchStream, interval time.Duration, send func([]byte) error, after func() (stop bool, err error)) error {
	msg := make([]byte, b.o.size)
	msg[0] = kindData
	t := time.NewTimer(0)
	defer t.Stop()
	start := time.Now()
	var stamp int64
	for i := 0; b.take(); i++ {
		if !pace(ctx, t, start, i, interval) {
			return nil
		}
		if interval > 0 || after != nil || i%unpacedStampEvery == 0 {
			stamp = b.now()
		}
		binary.LittleEndian.PutUint64(msg[1:], uint64(stamp))
		if len(msg) >= benchSeqHeader {
			binary.LittleEndian.PutUint64(msg[benchHeader:], uint64(i))
		}
		if err := send(msg); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.sent.Add(1)
		if after == nil {
			continue
		}
		if stop, err := after(); stop {
			return err
		}
	}
	return nil
}

// sent returns how many messages Send accepted.
func (b *bench) sent() uint64 {
	var n uint64
	for _, s := range b.streams {
		n += s.sent.Load()
	}
	return n
}

// delivered returns how many data messages arrived.
func (b *bench) delivered() uint64 {
	var n uint64
	for _, t := range b.tallies {
		n += t.delivered.Load()
	}
	return n
}

// expected returns how many deliveries the messages sent should make: one
// per receiving connection in oneway mode (one per message with -group),
// one per message otherwise.
func (b *bench) expected(serverMode string) uint64 {
	sent := b.sent()
	if serverMode == serverRelays && b.o.group == "" {
		return sent * uint64(b.o.subscribers)
	}
	return sent
}

// interruptGrace bounds the wait for messages in flight after an
// interrupt (Ctrl-C), so that they are counted as delivered rather than
// undelivered while the report still comes at once.
const interruptGrace = time.Second

// drainWindow returns the context and the time to wait for deliveries
// after sending stopped: -timeout under ctx; after an interrupt (ctx
// ended) interruptGrace at most, under a context the interrupt does not
// end.
func drainWindow(ctx context.Context, timeout time.Duration) (context.Context, time.Duration) {
	if ctx.Err() != nil {
		return context.WithoutCancel(ctx), min(timeout, interruptGrace)
	}
	return ctx, timeout
}

// drain waits up to timeout for every message sent to be delivered.
func (b *bench) drain(ctx context.Context, timeout time.Duration, serverMode string) {
	want := b.expected(serverMode)
	waitUntil(ctx, timeout, 5*time.Millisecond, func() bool { return b.delivered() >= want })
}

// close closes every connection at once and waits for the readers.
func (b *bench) close() {
	b.stopping.Store(true)
	for _, c := range b.conns {
		if c != nil {
			_ = c.CloseWithError(transport.CodeNoError, "bench finished")
		}
	}
	b.readers.Wait()
}

// fail counts an error and keeps the first few distinct ones.
func (b *bench) fail(err error) {
	b.errs.Add(1)
	msg := b.g.describe(err).Error()
	b.errMu.Lock()
	defer b.errMu.Unlock()
	if len(b.errSample) < 5 && !slices.Contains(b.errSample, msg) {
		b.errSample = append(b.errSample, msg)
	}
}
