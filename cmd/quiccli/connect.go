package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/client"
	"github.com/quicmsg/quicmsg/transport"
)

// Defaults of the global flags.
const (
	defaultAddr    = "127.0.0.1:4433"
	defaultTimeout = 5 * time.Second
	defaultRetries = 10
)

// devCAFile is the CA quicsrv creates on first start; quiccli trusts it by
// default when it exists.
var devCAFile = filepath.Join(certs.DefaultDevDir, certs.DevCAFile)

// globals holds the global flags and the command's input and output.
type globals struct {
	addr     string
	caFile   string
	certFile string
	keyFile  string
	pin      string
	insecure bool
	json     bool
	timeout  time.Duration
	retries  int
	dbg      debugFlags

	set  map[string]bool   // flags given explicitly
	from map[string]string // connection flags set by QUICMSG_* or a context: where from

	// onLost, when set, is told why the connection was lost, before the
	// client reconnects; when it returns true the command handles it (it
	// stops) and no "reconnecting" line, nor any later event, is printed.
	onLost func(error) bool
	// stopping is set once onLost returned true: no event is reported
	// after it. Owned by the client's event dispatcher (logEvent).
	stopping bool

	// probe, when set, is given a command's own flags instead of parsing
	// them, and the command returns at once: completion lists them so.
	probe func(fs *flag.FlagSet)

	stdin  io.Reader
	stdout io.Writer // safe for concurrent use
	stderr io.Writer // safe for concurrent use
}

func newGlobals(stdin io.Reader, stdout, stderr io.Writer) *globals {
	return &globals{
		addr:    defaultAddr,
		timeout: defaultTimeout,
		retries: defaultRetries,
		set:     make(map[string]bool),
		from:    make(map[string]string),
		stdin:   stdin,
		stdout:  newSyncWriter(stdout),
		stderr:  newSyncWriter(stderr),
	}
}

// register defines the global flags on fs, with their current values as
// defaults.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.addr, "addr", g.addr, "server `address` (host:port)")
	fs.StringVar(&g.caFile, "ca", g.caFile, "CA certificate `file` that signed the server's certificate (default: "+devCAFile+" when it exists and -pin is not given, else the system roots)")
	fs.StringVar(&g.certFile, "cert", g.certFile, "client certificate `file` (PEM), for servers that require mutual TLS; needs -key")
	fs.StringVar(&g.keyFile, "key", g.keyFile, "client private key `file` (PEM)")
	fs.StringVar(&g.pin, "pin", g.pin, "the server's public key `pin` (sha256/...) as quicsrv prints it; alone it replaces chain verification, with -ca both must pass")
	fs.BoolVar(&g.insecure, "insecure", g.insecure, "do not verify the server's certificate at all (man-in-the-middle attacks become possible); not with -ca or -pin")
	fs.BoolVar(&g.json, "json", g.json, "machine-readable output: one JSON object per line")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "connect timeout, and how long to wait for replies and deliveries")
	fs.IntVar(&g.retries, "retries", g.retries, "reconnect attempts in a row before send, listen, chat and reply give up after losing the connection (-1: for ever)")
	fs.StringVar(&g.dbg.qlogDir, "qlog", g.dbg.qlogDir, "write a qlog trace of each connection into `directory` (for qvis)")
	fs.StringVar(&g.dbg.keyLog, "keylog", g.dbg.keyLog, "append the connections' TLS secrets to `file` (NSS key log format, for Wireshark); whoever reads it can decrypt the traffic")
}

// markSet records which flags of fs were given explicitly.
func (g *globals) markSet(fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) { g.set[f.Name] = true })
}

// check validates the global flags.
func (g *globals) check() error {
	if g.insecure {
		// An explicit -insecure wins over a CA or pin from the
		// environment or a context, as every flag does.
		for _, name := range []string{"ca", "pin"} {
			if !g.set[name] {
				*g.field(name) = ""
			}
		}
	}
	if err := g.checkConn(); err != nil {
		return err
	}
	switch {
	case g.timeout <= 0:
		return usageError("-timeout must be positive")
	case g.retries == 0 || g.retries < -1:
		return usageError("-retries must be positive, or -1 to retry for ever")
	case g.insecure && g.caFile != "":
		return usageError("-insecure and -ca exclude each other: -ca verifies the server, -insecure does not")
	case g.insecure && g.pin != "":
		return usageError("-insecure and -pin exclude each other: -pin alone already skips chain verification and checks the key")
	}
	return nil
}

// checkConn validates the connection flags: an address with a port, a pin
// that parses, files that exist. Their faults are usage errors.
func (g *globals) checkConn() error {
	if _, port, err := net.SplitHostPort(g.addr); err != nil || port == "" {
		return usageError("-addr %q%s is not HOST:PORT (e.g. 127.0.0.1:4433)", g.addr, g.origin("addr"))
	}
	if g.pin != "" {
		if _, err := certs.ParsePin(g.pin); err != nil {
			return usageError("-pin %q%s: %v; pass the pin quicsrv prints (sha256/...)", g.pin, g.origin("pin"), err)
		}
	}
	if (g.certFile == "") != (g.keyFile == "") {
		return usageError("-cert and -key go together")
	}
	for _, name := range []string{"ca", "cert", "key"} {
		file := *g.field(name)
		if file == "" {
			continue
		}
		if _, err := os.Stat(file); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return usageError("-%s %s%s: %v", name, file, g.origin(name), err)
		}
	}
	return nil
}

// trustedBy names what verifies the server, for error messages.
func (g *globals) trustedBy() string {
	if ca := g.effectiveCA(); ca != "" {
		return ca + g.origin("ca")
	}
	return "the system roots"
}

// effectiveCA returns the CA file to trust: -ca, or else the development CA
// when it exists and no -pin was given.
func (g *globals) effectiveCA() string {
	if g.caFile != "" || g.insecure || g.pin != "" {
		return g.caFile
	}
	if _, err := os.Stat(devCAFile); err == nil {
		return devCAFile
	}
	return ""
}

// tlsConfig returns the client TLS configuration the flags ask for.
func (g *globals) tlsConfig() (*tls.Config, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	opts := certs.ClientOptions{
		CAFile:             g.effectiveCA(),
		CertFile:           g.certFile,
		KeyFile:            g.keyFile,
		PinSHA256:          g.pin,
		InsecureSkipVerify: g.insecure,
	}
	if g.insecure {
		fmt.Fprintf(g.stderr, "quiccli: WARNING: -insecure: the certificate of %s is NOT verified; anyone on the path can read and change this traffic\n", g.addr)
	}
	conf, err := certs.ClientConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("TLS set-up: %w", err)
	}
	return conf, g.withKeyLog(conf)
}

// firstAttemptTimeout bounds the first reconnect attempt; each further
// one in a row waits twice as long, up to -timeout.
const firstAttemptTimeout = 500 * time.Millisecond

// backoff is the reconnection schedule of the commands that reconnect:
// the first attempts wait briefly, so that a server that went away is
// found out quickly; later ones get the full -timeout.
func (g *globals) backoff() client.Backoff {
	return client.Backoff{MaxAttempts: g.retries, AttemptTimeout: min(g.timeout, firstAttemptTimeout)}
}

// attemptFailure says on one line why reconnect attempt n (0-based)
// failed.
func (g *globals) attemptFailure(n int, err error) string {
	if errors.Is(err, transport.ErrNoAnswer) {
		return fmt.Sprintf("no answer from %s within %s; is quicsrv running?", g.addr, shortDuration(int64(g.backoff().AttemptWait(n, g.timeout))))
	}
	return oneLine(g.describeDial(context.Background(), err))
}

// transportConfig configures every connection quiccli makes.
func (g *globals) transportConfig() transport.Config {
	return g.withQlog(transport.Config{HandshakeTimeout: g.timeout, CloseTimeout: g.timeout})
}

// dialConn makes one connection with package transport, for ping and bench.
func (g *globals) dialConn(ctx context.Context, conf *tls.Config) (*transport.Conn, error) {
	tc := g.transportConfig()
	dctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	conn, err := transport.Dial(dctx, g.addr, conf, &tc)
	if err != nil {
		return nil, g.describeDial(ctx, err)
	}
	return conn, nil
}

// dialConnAt is dialConn to addr instead of -addr (bench -subscriber-addrs).
func (g *globals) dialConnAt(ctx context.Context, conf *tls.Config, addr string) (*transport.Conn, error) {
	if addr == g.addr {
		return g.dialConn(ctx, conf)
	}
	tc := g.transportConfig()
	dctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	conn, err := transport.Dial(dctx, addr, conf, &tc)
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupted(err, "while connecting to %s", addr)
		}
		return nil, explain(exitConnect, err, "cannot connect to %s, given with -subscriber-addrs", addr)
	}
	return conn, nil
}

// dialClient connects a reconnecting client, for send, listen and chat, and
// waits for the server's HELLO so that its limits are known. Connection
// events go to stderr.
func (g *globals) dialClient(ctx context.Context) (*client.Client, error) {
	conf, err := g.tlsConfig()
	if err != nil {
		return nil, err
	}
	cfg := &client.Config{
		Transport: g.transportConfig(),
		Backoff:   g.backoff(),
		OnEvent:   g.logEvent,
	}
	dctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	// client.Dial returns once the server has answered the HELLO, so a
	// refused client certificate or session is reported here.
	cl, err := client.Dial(dctx, g.addr, conf, cfg)
	if err != nil {
		return nil, g.describeDial(ctx, err)
	}
	return cl, nil
}

// logAttempt reports a reconnect attempt, and why the one before it
// failed, on stderr.
func (g *globals) logAttempt(ev client.Event) {
	if ev.Err != nil {
		fmt.Fprintf(g.stderr, "quiccli: reconnect attempt %d failed: %s\n", ev.Attempt, g.attemptFailure(ev.Attempt-1, ev.Err))
	}
	retries := "for ever"
	if g.retries >= 0 {
		retries = fmt.Sprintf("of %d", g.retries)
	}
	fmt.Fprintf(g.stderr, "quiccli: reconnect attempt %d %s to %s in %s\n", ev.Attempt+1, retries, ev.Addr, shortDuration(int64(ev.Delay)))
}

// logEvent reports connection losses and reconnects on stderr.
func (g *globals) logEvent(ev client.Event) {
	if g.stopping {
		return // the command stops; the client may still reconnect meanwhile
	}
	switch ev.Type {
	case client.EventDisconnected:
		if g.onLost != nil && g.onLost(ev.Err) {
			g.stopping = true
			return
		}
		fmt.Fprintf(g.stderr, "quiccli: lost the connection to %s (%s); reconnecting\n", ev.Addr, humanize(fmt.Sprint(ev.Err)))
	case client.EventReconnecting:
		g.logAttempt(ev)
	case client.EventReconnected:
		zero := ""
		if ev.Used0RTT {
			zero = " with 0-RTT"
		}
		fmt.Fprintf(g.stderr, "quiccli: reconnected to %s%s\n", ev.Addr, zero)
	}
}

// messageLimit returns the largest message the server accepts.
func messageLimit(cl *client.Client) int {
	if conn := cl.Conn(); conn != nil {
		return conn.PeerLimits().MaxMessageSize
	}
	return transport.DefaultMaxMessageSize
}
