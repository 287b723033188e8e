// Command quicscale measures how many sessions a running quicsrv holds and
// what they cost it. It is a development tool of this repository (make
// scale, make handshake), not an installed command.
//
// In hold mode (the default) it sets up -n sessions against a quicsrv in
// echo mode, -concurrency at a time, each with one channel that exchanged
// one 64-byte echo; it reads the server's resident memory from
// /proc/PID/status (-server-pid) and its heap, stacks and goroutines from
// its Prometheus endpoint (-metrics), before and after; it holds the
// sessions for -hold, then checks that every one of them still answers an
// echo. Its own cost (resident memory, heap, goroutines) is reported apart.
//
//	quicscale -addr 127.0.0.1:4433 -ca dev/ca.pem -server-pid 1234 -metrics http://127.0.0.1:9464/metrics -n 10000
//
// In handshake mode it measures sessions set up per second against quicsrv
// (-addr) and against a raw quic-go server (-raw-addr) in the same run,
// -rounds times interleaved; each connection is closed as soon as it is set
// up. Raw quic-go is measured twice: a bare TLS handshake, and the same
// followed by the exchange quicmsg's HELLO makes (a stream opened, one
// small request and its reply). The raw server is this command in
// serve-raw mode, which echoes on the first stream of each connection:
//
//	quicscale -mode serve-raw -addr 127.0.0.1:0 -cert dev/server.pem -key dev/server-key.pem
//	quicscale -mode handshake -addr QUICSRV -raw-addr RAW -ca dev/ca.pem -count 2000
//
// With -raw, hold mode holds raw quic-go connections against serve-raw
// instead, each with one stream that exchanged one 64-byte echo, measured
// the same way (serve-raw -metrics serves the same runtime figures):
//
//	quicscale -mode serve-raw -addr 127.0.0.1:0 -cert dev/server.pem -key dev/server-key.pem -metrics 127.0.0.1:0
//	quicscale -raw -addr RAW -ca dev/ca.pem -server-pid PID -metrics http://RAWMETRICS/metrics -n 10000
//
// Connections share UDP sockets, -per-socket connections to each
// quic.Transport (1: a socket per connection), so that 50,000 sessions fit
// in the file descriptor limit and the local port range.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/quicmsg/quicmsg/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "quicscale:", err)
		}
		stop()
		os.Exit(1)
	}
}

// Modes of the command.
const (
	modeHold      = "hold"
	modeHandshake = "handshake"
	modeServeRaw  = "serve-raw"
)

// options are quicscale's flags.
type options struct {
	mode        string
	addr        string
	rawAddr     string
	caFile      string
	certFile    string
	keyFile     string
	n           int
	concurrency int
	perSocket   int
	hold        time.Duration
	opTimeout   time.Duration
	deadline    time.Duration
	serverPID   int
	rawPID      int
	metricsURL  string
	count       int
	rounds      int
	retries     int
	slow        time.Duration
	progress    time.Duration
	keepAlive   time.Duration
	idleTimeout time.Duration
	raw         bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("quicscale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mode, "mode", modeHold, "hold (hold -n sessions and measure the server), handshake (set-up rate against quicsrv and raw quic-go) or serve-raw (a raw quic-go echo server for handshake mode and hold mode with -raw)")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:4433", "quicsrv's `address`; in serve-raw mode the address to listen on")
	fs.StringVar(&o.rawAddr, "raw-addr", "", "handshake mode: the raw quic-go server's `address` (quicscale -mode serve-raw)")
	fs.StringVar(&o.caFile, "ca", "", "CA `file` that signed the servers' certificates")
	fs.StringVar(&o.certFile, "cert", "", "serve-raw mode: certificate `file` (PEM)")
	fs.StringVar(&o.keyFile, "key", "", "serve-raw mode: private key `file` (PEM)")
	fs.IntVar(&o.n, "n", 1000, "hold mode: sessions to hold")
	fs.IntVar(&o.concurrency, "concurrency", transport.DefaultMaxHandshakesPerIP, "sessions set up at once, at most (quicsrv refuses more than 16 handshakes in progress from one address: transport.DefaultMaxHandshakesPerIP); hold mode narrows it while set-ups are slow (-slow)")
	fs.IntVar(&o.perSocket, "per-socket", 100, "connections sharing one UDP socket (quic.Transport); 1: one socket each")
	fs.DurationVar(&o.hold, "hold", 5*time.Second, "hold mode: how long the sessions are held before they are checked")
	fs.DurationVar(&o.opTimeout, "op-timeout", 20*time.Second, "bound of one set-up or one echo")
	fs.DurationVar(&o.deadline, "deadline", 10*time.Minute, "bound of the whole run")
	fs.IntVar(&o.serverPID, "server-pid", 0, "quicsrv's `pid`: hold mode reads its VmRSS from /proc/PID/status, handshake mode its CPU time from /proc/PID/stat")
	fs.IntVar(&o.rawPID, "raw-pid", 0, "handshake mode: the raw quic-go server's `pid`, for its CPU time")
	fs.StringVar(&o.metricsURL, "metrics", "", "hold mode: the server's Prometheus `URL` (http://HOST:PORT/metrics), for its heap, stacks and goroutines; serve-raw mode: the address (HOST:PORT) to serve them on")
	fs.IntVar(&o.retries, "retries", 3, "hold mode: how many times a set-up that timed out, or that the server closed or refused during its handshake, is tried again (counted and reported)")
	fs.DurationVar(&o.slow, "slow", time.Second, "hold mode: a set-up slower than this halves the set-ups allowed at once and pauses new ones (the window grows back by one per window's worth of faster set-ups in a row)")
	fs.DurationVar(&o.progress, "progress", 10*time.Second, "hold mode: how often the set-up's progress is printed (0: never)")
	fs.DurationVar(&o.keepAlive, "keep-alive", 0, "the client connections' keep-alive period; serve-raw mode: the server's, as quicsrv's -keep-alive (0: transport.DefaultKeepAlivePeriod, 10s; negative: none)")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 0, "the client connections' idle timeout; serve-raw mode: the server's, as quicsrv's -idle-timeout (0: transport.DefaultIdleTimeout, 30s)")
	fs.BoolVar(&o.raw, "raw", false, "hold mode: hold raw quic-go connections against quicscale -mode serve-raw (-addr), each with one stream that exchanged one 64 B echo, instead of quicmsg sessions against quicsrv")
	fs.IntVar(&o.count, "count", 2000, "handshake mode: connections set up per server per round")
	fs.IntVar(&o.rounds, "rounds", 3, "handshake mode: rounds, each measuring quicsrv, raw quic-go, then raw quic-go with one request and reply")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	return o, o.check()
}

func (o *options) check() error {
	if o.mode != modeHold && o.mode != modeHandshake && o.mode != modeServeRaw {
		return fmt.Errorf("-mode %q: want hold, handshake or serve-raw", o.mode)
	}
	if min(o.n, o.count, o.rounds, o.concurrency, o.perSocket) < 1 {
		return errors.New("-n, -count, -rounds, -concurrency and -per-socket must be at least 1")
	}
	if err := o.checkPacing(); err != nil {
		return err
	}
	switch {
	case o.mode == modeServeRaw && (o.certFile == "" || o.keyFile == ""):
		return errors.New("serve-raw mode needs -cert and -key")
	case o.mode == modeHandshake && o.rawAddr == "":
		return errors.New("handshake mode needs -raw-addr (a quicscale -mode serve-raw)")
	case o.mode != modeServeRaw && o.caFile == "":
		return errors.New("-ca is needed to verify the server")
	}
	return nil
}

// checkPacing checks the flags of hold mode's pacing and of the client
// connections.
func (o *options) checkPacing() error {
	if o.retries < 0 || o.slow <= 0 || o.progress < 0 || o.idleTimeout < 0 {
		return errors.New("-retries, -progress and -idle-timeout must not be negative, -slow must be positive")
	}
	return nil
}

// run runs the mode the flags ask for until it is done or ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.mode == modeServeRaw {
		return serveRaw(ctx, o, stdout)
	}
	ctx, cancel := context.WithTimeout(ctx, o.deadline)
	defer cancel()
	if o.mode == modeHandshake {
		return handshakeRate(ctx, o, stdout)
	}
	return holdSessions(ctx, o, stdout)
}
