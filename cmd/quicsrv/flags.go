package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/internal/quiclb"
	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// Defaults of flags that have no constant in a package.
const (
	defaultAddr            = "127.0.0.1:4433"
	defaultShutdownTimeout = 10 * time.Second
	defaultReloadInterval  = 5 * time.Second
)

// Modes of the server.
const (
	modeRelay = "relay"
	modeEcho  = "echo"
)

type options struct {
	addr            string
	certFile        string
	keyFile         string
	devDir          string
	devClientCert   string
	clientCA        string
	mode            string
	maxSessions     int
	maxMessageSize  int
	pendingCap      int
	pendingBytes    int
	overflow        session.OverflowPolicy
	idleTimeout     time.Duration
	keepAlive       time.Duration
	ticketKeys      string
	metricsAddr     string
	logFormat       string
	logLevel        slog.Level
	qlogDir         string
	keyLogFile      string
	shutdownTimeout time.Duration
	reloadInterval  time.Duration
	slowConsumer    relay.SlowConsumerPolicy
	publishTimeout  time.Duration
	subscriberQueue int
	subscriberBytes int
	resumeWindow    time.Duration
	maxDetached     int
	resumeKeyFile   string
	memoryLimit     int64
	serverID        []byte
	version         bool
	pprof           bool
	cluster         clusterOptions

	// The config file and what the command line set, for reloads.
	configFile string
	file       configFile      // the file's settings; nil without -config
	args       []string        // the command line
	cmdline    map[string]bool // the flags it set, which win over the file
}

const usageHead = `Usage: quicsrv [flags]

Runs a quicmsg server. In relay mode (the default) a message sent on a channel
by one client goes to every other client that has the channel open; in echo
mode every message goes back to its sender.

With no flags it listens on 127.0.0.1:4433 with development certificates,
created in %s on first start and reused afterwards, and prints the
CA file and the key pin that clients need.

Examples:
  quicsrv
  quicsrv -config /etc/quicsrv/quicsrv.toml
  quicsrv -addr 0.0.0.0:4433 -cert server.pem -key server-key.pem -metrics 127.0.0.1:9464
  quicsrv -mode echo -log-format json -log-level debug
  quicsrv -client-ca clients-ca.pem -slow-consumer disconnect -subscriber-queue 256

Signals: SIGINT/SIGTERM drain for -shutdown-timeout (a second one exits at
once), SIGHUP reloads -cert/-key and the -config file.

Flags:
`

// parseFlags parses quicsrv's command line into options, applies the
// config file it names, if any, and checks the result. With a check that
// fails after the file was read, it returns the options with the error,
// so that the error is logged in the format they ask for.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := newOptions()
	fs := o.flagSet()
	usage := func() {
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, usageHead, certs.DefaultDevDir)
		fs.PrintDefaults()
	}
	// With JSON logs, flag errors are logged as JSON (run), not printed;
	// -h still prints the usage.
	json := jsonRequested(args)
	fs.Usage = usage
	if json {
		fs.Usage = func() {}
	} else {
		fs.SetOutput(stderr)
	}
	if err := fs.Parse(args); err != nil {
		if json && errors.Is(err, flag.ErrHelp) {
			usage()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (quicsrv takes flags only; see -h)", fs.Arg(0))
	}
	o.args, o.cmdline = args, make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { o.cmdline[f.Name] = true })
	if o.configFile != "" {
		file, err := readConfigFile(o.configFile, func() *flag.FlagSet { return newOptions().flagSet() })
		if err != nil {
			return nil, err
		}
		if err := file.apply(fs, o.cmdline); err != nil {
			return nil, err
		}
		o.file = file
	}
	if err := o.check(); err != nil {
		return o, o.file.blame(err, o.configFile, o.cmdline)
	}
	return o, nil
}

// newOptions returns options holding the defaults of the flags that have
// no flag package default.
func newOptions() *options {
	return &options{overflow: session.OverflowBlock, slowConsumer: relay.Drop}
}

// flagSet returns quicsrv's flags, writing into o. It prints nothing: the
// caller sets its output.
func (o *options) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("quicsrv", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.serverFlags(fs)
	o.tlsFlags(fs)
	o.relayFlags(fs)
	o.clusterFlags(fs)
	o.operationFlags(fs)
	return fs
}

// serverFlags defines the flags of the session server: address, mode and
// limits.
func (o *options) serverFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.addr, "addr", defaultAddr, "UDP `address` to listen on; port 0 picks a free port (printed on the first line)")
	fs.StringVar(&o.mode, "mode", modeRelay, "server `mode`: relay (publish/subscribe by channel name) or echo (every message back to its sender)")
	fs.IntVar(&o.maxSessions, "max-sessions", session.DefaultMaxSessions, "sessions held at once; more are refused with too_many_sessions")
	fs.IntVar(&o.maxMessageSize, "max-message-size", transport.DefaultMaxMessageSize, "largest message accepted, in `bytes` (at most 16 MiB)")
	fs.IntVar(&o.pendingCap, "pending-cap", session.DefaultPendingCap, "`messages` received from a session but not yet handled before it is asked to slow down")
	fs.IntVar(&o.pendingBytes, "pending-bytes", session.DefaultPendingBytes, "`bytes` of messages received from a session but not yet handled before it is asked to slow down")
	fs.Func("overflow", "`policy` for a session at -pending-cap or -pending-bytes: block (stop reading it, nothing is lost) or disconnect (close it with overloaded once it sends on past SLOW_DOWN beyond what was under way) (default block)", func(s string) error {
		switch s {
		case "block":
			o.overflow = session.OverflowBlock
		case "disconnect":
			o.overflow = session.OverflowDisconnect
		default:
			return errors.New("want block or disconnect")
		}
		return nil
	})
	fs.DurationVar(&o.idleTimeout, "idle-timeout", transport.DefaultIdleTimeout, "close sessions that receive nothing for this long (clients send keep-alives)")
	fs.DurationVar(&o.keepAlive, "keep-alive", transport.DefaultKeepAlivePeriod, "how often the server sends a keep-alive on a quiet connection; negative: never, the clients' keep-alives keep their sessions open (each keep-alive and its acknowledgement cost the server CPU: at tens of thousands of idle sessions, most of its work)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "on SIGINT/SIGTERM, how long sessions may drain after GOAWAY before they are closed")
	fs.DurationVar(&o.resumeWindow, "resume-window", session.DefaultResumeWindow, "how long a session whose connection was lost waits for its client to resume it; negative: sessions end with their connection")
	fs.IntVar(&o.maxDetached, "max-detached", session.DefaultMaxDetachedSessions, "`sessions` kept at once waiting to be resumed; beyond it the oldest one ends")
	fs.Func("server-id", "put this server's ID, 1 to 15 bytes in `hex` (e.g. 0a1b), unique among the nodes behind one UDP load balancer, into every QUIC connection ID it issues (QUIC-LB plaintext layout, config rotation 0), so that a balancer that routes by connection ID keeps each connection on this node when the client's address changes; see CLUSTER.md (default: random connection IDs)", func(v string) (err error) {
		o.serverID, err = quiclb.ParseServerID(v)
		return err
	})
	fs.StringVar(&o.resumeKeyFile, "resume-key-file", "", "`file` holding the key that authenticates resume tokens (32 bytes, hex), created if missing; default: a random key per start, so that clients of a restarted server are told their token is invalid rather than that their session expired")
}

// tlsFlags defines the flags of certificates, keys and TLS debugging.
func (o *options) tlsFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.certFile, "cert", "", "server certificate chain, PEM `file`; default: the development certificate in -dev-certs")
	fs.StringVar(&o.keyFile, "key", "", "private key of -cert, PEM `file`")
	fs.StringVar(&o.devDir, "dev-certs", certs.DefaultDevDir, "`dir`ectory of the development CA and certificate, used when -cert is not given")
	fs.StringVar(&o.devClientCert, "dev-client-cert", "", "issue a development client certificate for mutual TLS, with `name` as its common name, into -dev-certs; print its files and exit")
	fs.StringVar(&o.clientCA, "client-ca", "", "require mutual TLS: clients must present a certificate signed by a CA in this PEM `file`")
	fs.StringVar(&o.ticketKeys, "ticket-keys", "", "`file` keeping the TLS session ticket and QUIC stateless reset keys across restarts, so that clients resume with 0-RTT; created if missing (default: session-keys.pem in -dev-certs with development certificates, none otherwise)")
	fs.StringVar(&o.keyLogFile, "keylog", "", "append TLS secrets to `file` in NSS key log format so that Wireshark can decrypt the traffic; for debugging only")
	fs.DurationVar(&o.reloadInterval, "reload-interval", defaultReloadInterval, "how often to check the certificate files for changes and reload them (0: only on SIGHUP)")
}

// relayFlags defines the flags of relay mode's subscriber queues.
func (o *options) relayFlags(fs *flag.FlagSet) {
	fs.Func("slow-consumer", "relay mode: `policy` for a subscriber whose queue is full: drop (its messages are dropped, counted and reported to it in a gap notice), disconnect (gap notice, then close it with slow_consumer) or block (slow the publishers down for up to -publish-timeout, then disconnect that subscriber) (default drop)", func(s string) error {
		p, err := relay.ParseSlowConsumerPolicy(s)
		o.slowConsumer = p
		return err
	})
	fs.IntVar(&o.subscriberQueue, "subscriber-queue", relay.DefaultQueueSize, "relay mode: `messages` that may wait for one subscriber before -slow-consumer applies")
	fs.IntVar(&o.subscriberBytes, "subscriber-queue-bytes", relay.DefaultQueueBytes, "relay mode: payload `bytes` that may wait for one subscriber before -slow-consumer applies")
	fs.DurationVar(&o.publishTimeout, "publish-timeout", relay.DefaultPublishTimeout, "relay mode, -slow-consumer block: how long a publish waits for room in a full subscriber queue before that subscriber is disconnected with slow_consumer")
}

// operationFlags defines the flags for operating the server: metrics,
// logs, traces and the version.
func (o *options) operationFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.metricsAddr, "metrics", "", "serve Prometheus metrics at http://`address`/metrics, health at /healthz and JSON status at /status (e.g. 127.0.0.1:9464); off by default")
	fs.BoolVar(&o.pprof, "pprof", false, "serve the Go profiler at /debug/pprof/ on the -metrics listener; off by default (it shows the command line and costs CPU while profiling: keep -metrics on a private address)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format` on stderr: text or json")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "least severe `level` logged: debug, info, warn or error")
	fs.Func("memory-limit", "soft limit of the Go runtime's memory, e.g. 600MiB or 2GiB (as GOMEMLIMIT, which it overrides): the garbage collector runs more often as the process nears it, trading CPU for memory; 0 or unset: GOMEMLIMIT, else none", func(v string) (err error) {
		o.memoryLimit, err = parseByteSize(v)
		return err
	})
	fs.StringVar(&o.qlogDir, "qlog", "", "write a qlog trace of every QUIC connection into `dir`, for debugging (qvis, Wireshark)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.configFile, "config", "", "read settings from this TOML `file`: one key per flag, named as the flag without its dash (max-sessions = 5000); flags on the command line win over it. SIGHUP reloads it: log-level, max-sessions, shutdown-timeout, subscriber-queue, subscriber-queue-bytes and publish-timeout change at once, other changes are logged as needing a restart")
}

// check rejects flag values that contradict each other or are out of range.
func (o *options) check() error {
	switch {
	case (o.certFile == "") != (o.keyFile == ""):
		return errors.New("-cert and -key go together")
	case o.mode != modeRelay && o.mode != modeEcho:
		return fmt.Errorf("-mode %q: want relay or echo", o.mode)
	case o.logFormat != logText && o.logFormat != logJSON:
		return fmt.Errorf("-log-format %q: want text or json", o.logFormat)
	case o.idleTimeout < 0:
		return fmt.Errorf("-idle-timeout %v is negative", o.idleTimeout)
	case o.shutdownTimeout < 0:
		return fmt.Errorf("-shutdown-timeout %v is negative", o.shutdownTimeout)
	case o.reloadInterval < 0:
		return fmt.Errorf("-reload-interval %v is negative", o.reloadInterval)
	case o.pprof && o.metricsAddr == "":
		return errors.New("-pprof needs -metrics: the profiler is served on the metrics listener")
	case o.publishTimeout < 0:
		return fmt.Errorf("-publish-timeout %v is negative", o.publishTimeout)
	}
	for _, v := range []struct {
		name string
		n    int
	}{
		{"max-sessions", o.maxSessions}, {"max-message-size", o.maxMessageSize}, {"pending-cap", o.pendingCap},
		{"pending-bytes", o.pendingBytes}, {"max-detached", o.maxDetached}, {"subscriber-queue", o.subscriberQueue},
		{"subscriber-queue-bytes", o.subscriberBytes},
	} {
		if v.n < 0 {
			return fmt.Errorf("-%s %d must not be negative", v.name, v.n)
		}
	}
	return o.cluster.check(o.mode)
}
