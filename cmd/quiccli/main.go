// Command quiccli talks to a quicmsg server (quicsrv) from the shell: it sends,
// listens, chats, pings and generates load.
//
//	quiccli [global flags] COMMAND [flags] [arguments]
//
//	quiccli send CHANNEL [MESSAGE...]  send each MESSAGE, or each line of stdin, on CHANNEL
//	quiccli listen CHANNEL...          print every message received on the channels
//	quiccli chat CHANNEL               send the lines typed, print the messages received
//	quiccli req SUBJECT [DATA]         send a request and print the reply
//	quiccli reply SUBJECT [RESPONSE]   answer the requests on SUBJECT
//	quiccli ping                       round-trip times to any server
//	quiccli bench                      load generator: delivered message rate and latency
//	quiccli context SUBCOMMAND         named connection settings (add, select, unselect, ls, show, rm)
//	quiccli version                    the version (also -version)
//	quiccli completion bash|zsh|fish   a shell completion script
//	quiccli help [COMMAND]             the usage of quiccli or of a command
//
// Global flags go before or after the command:
//
//	-addr HOST:PORT  server address (default 127.0.0.1:4433)
//	-ca FILE         CA certificate that signed the server's certificate (default:
//	                 .quicmsg/dev-certs/ca.pem when it exists and -pin is not given,
//	                 else the system roots)
//	-cert, -key      client certificate and key, for servers that require mutual TLS
//	-pin PIN         the server's public key pin (sha256/...), as quicsrv prints it;
//	                 alone it replaces chain verification, with -ca both must pass
//	-insecure        do not verify the server at all; only when given explicitly,
//	                 never combined with -ca or -pin, and with a warning on stderr
//	-json            machine-readable output: one JSON object per line
//	-timeout D       connect timeout, and how long to wait for replies and for
//	                 deliveries at the end of a run (default 5s)
//	-retries N       reconnect attempts in a row before send, listen, chat and
//	                 reply give up after losing the connection (default 10; -1: for ever)
//
// The environment variables QUICMSG_ADDR, QUICMSG_CA, QUICMSG_CERT,
// QUICMSG_KEY and QUICMSG_PIN set -addr, -ca, -cert, -key and -pin, and so
// does the selected context (quiccli context add NAME ...; select NAME),
// stored in os.UserConfigDir()/quicmsg. Precedence: flag, environment,
// selected context, default.
//
// send, listen, chat and reply use package client: they reconnect by
// themselves with backoff, keep channels open across reconnects and resume
// with 0-RTT. req, ping and bench use package transport directly, one
// connection each, so that a measurement never silently spans a reconnect.
//
// Commands and their flags:
//
//	send CHANNEL [MESSAGE...]
//	    Sends each MESSAGE argument, or each line of stdin when there is none,
//	    as one message. Exits 0 once every message was handed to the server:
//	    written to the connection, which was then closed gracefully after the
//	    server read everything. Messages over the server's size limit are
//	    refused naming the limit; messages a lost connection had written
//	    without confirmation make it fail, since they may not have arrived.
//
//	send [-H KEY=VALUE]... CHANNEL [MESSAGE...]
//	    -H adds a header to every message (repeatable).
//
//	listen [-count N] [-group NAME] [-headers] CHANNEL...
//	    Opens the channels (subscribing to them on a relay; a channel name
//	    may be a subject pattern with "*" and ">" wildcards) and prints every
//	    message received, one per line, until interrupted or N messages
//	    received or missed (-count, default 0: no limit). The payload is
//	    printed as it is when it is printable single-line UTF-8 text,
//	    otherwise Go-quoted; with several channels or a wildcard each line
//	    starts with "SUBJECT: ", the message's concrete subject; -headers
//	    prints "[key=value ...] " before the payload. With -json each line is
//	    an object {"channel", "subject", "size", "encoding", "payload",
//	    "headers"}: encoding "utf-8" means payload is the text, "base64" the
//	    standard base64 of the bytes. -group joins a queue group: each
//	    message goes to one listener of the group. A gap notice (the relay
//	    dropped messages for this slow listener) is printed on stderr
//	    ("quiccli: CHANNEL: N messages missed (slow consumer)"); then listen
//	    exits 4. A listener the server disconnects as a slow consumer does
//	    not reconnect: it reports what it received and missed and exits 4.
//
//	req [-H KEY=VALUE]... [-headers] SUBJECT [DATA]
//	    Sends a request and prints the reply, waiting up to -timeout; fails
//	    at once with "no responders" when nothing subscribes to SUBJECT.
//
//	reply [-group NAME] [-count N] [-command CMD] [-headers] SUBJECT [RESPONSE]
//	    Answers each request on SUBJECT with RESPONSE, the request's own
//	    data (echo, without RESPONSE), or the stdout of CMD run with sh -c
//	    and the request on its stdin.
//
//	chat [-name NAME] CHANNEL
//	    Sends each line typed (prefixed with "NAME: " when -name is given)
//	    and prints the messages received, as listen does, until the end of
//	    input or an interrupt.
//
//	ping [-count N] [-interval D] [-echo [-size N] [-channel NAME]]
//	    Round-trip times to any server, like ping(8) and nats rtt: -count
//	    PINGs on the control stream (default 5; 0: until interrupted), one
//	    every -interval (default 1s), each timed until its PONG, then
//	    min/avg/p50/p99/max. With -echo, messages of -size bytes (default
//	    64, at least the 41-byte header) on channel -channel (default
//	    "ping") timed until their echo, which needs a server in echo mode
//	    (quicsrv -mode echo); against a server in another mode it fails at
//	    once.
//
//	bench [-mode oneway|echo|request] [-conns N] [-channels N] [-size N] [-count N] [-duration D] [-rate R] [-subscribers N] [-group NAME] [-inflight K]
//	    Load generator counting DELIVERED messages, never sent ones: -conns
//	    sending connections (default 1, at most 256) with -channels channels
//	    each (default 1, at most 100, 1000 in all), -size bytes per message
//	    (default 64, at least 9), for -duration (default 10s) or until -count
//	    messages in all, at -rate messages/s in all (default 0: as fast as
//	    possible). In oneway mode (default) each sending connection has a
//	    twin opening the same channels; a test message on every channel first
//	    finds out whether the server relays (deliveries are counted on the
//	    twins; latency is one way from the Send call) or echoes (counted as
//	    echoes reach the senders; latency is a round trip). In echo mode each
//	    channel keeps one message in flight against an echo server and
//	    latency is the round trip. Prints messages/s and MB/s of payload
//	    delivered (1 MB = 10^6 bytes), latency p50, p90, p99, p99.9 and max
//	    from an HDR-style histogram, undelivered messages and errors; -json
//	    prints one object. A progress line goes to stderr when it is a
//	    terminal. -subscribers N gives each sending connection N receiving
//	    connections (fan-out), -group NAME puts them in a queue group (each
//	    message to one; duplicates counted); -mode request measures
//	    request/reply round trips through a responder connection of its
//	    own, with -inflight requests in flight per connection.
//
// Exit status (the same for every command): 0 success; 1 error; 2 usage
// error (also -addr without a port, a -pin that does not parse, a missing
// -ca, -cert or -key file); 3 cannot connect (no
// answer, untrusted certificate, wrong protocol, session refused, or gave up
// reconnecting); 4 listen missed messages (gap notices, or disconnected as a
// slow consumer); 130 interrupted before the command finished. Interrupting
// listen, chat, ping and bench is their normal end and exits 0.
//
// See README.md in this directory for every flag of every command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal the default action is back, so that a second
	// one ends the process even while it is blocked reading stdin.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	code := exitCode(err)
	if err != nil && !errors.Is(err, flag.ErrHelp) && !isReported(err) {
		fmt.Fprintln(os.Stderr, "quiccli:", humanize(err.Error()))
	}
	os.Exit(code)
}

// command is one of quiccli's commands.
type command struct {
	name     string
	synopsis string // arguments, for usage lines
	summary  string
	run      func(ctx context.Context, g *globals, args []string) error
	connects bool // it talks to a server, so it needs the connection flags
}

var commands = []command{
	{"send", "CHANNEL [MESSAGE...]", "send each MESSAGE, or each line of stdin, on CHANNEL", cmdSend, true},
	{"listen", "CHANNEL...", "print every message received on the channels", cmdListen, true},
	{"chat", "CHANNEL", "send the lines typed, print the messages received", cmdChat, true},
	{"ping", "", "round-trip times to any server (PING/PONG)", cmdPing, true},
	{"req", "SUBJECT [DATA]", "send a request and print the reply", cmdReq, true},
	{"reply", "SUBJECT [RESPONSE]", "answer the requests on SUBJECT (echo, RESPONSE or -command)", cmdReply, true},
	{"bench", "", "load generator: delivered message rate and latency", cmdBench, true},
	{"context", "SUBCOMMAND", "named connection settings (add, select, unselect, ls, show, rm)", cmdContext, false},
	{"version", "", "print the version", cmdVersion, false},
}

// run is the whole command: main without the process. It returns nil on
// success; exitCode maps its error to the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	g := newGlobals(stdin, stdout, stderr)
	defer g.closeDebug()
	// The selected context and the environment set the connection flags
	// before the command line does, so that flags win. A broken context
	// only matters to commands that connect: context must still work.
	profileErr := g.loadProfile()
	fs := flag.NewFlagSet("quiccli", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {} // package flag calls it on errors too: usage follows -h only
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(g.stderr, fs)
			return err
		}
		return usageError("%v; see 'quiccli -h'", err)
	}
	g.markSet(fs)
	if *showVersion {
		return cmdVersion(ctx, g, nil)
	}
	if fs.NArg() == 0 {
		printUsage(g.stderr, fs)
		return reported(usageError("no command given"))
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		return help(ctx, g, fs, rest)
	}
	c, err := findCommand(name)
	if err != nil {
		return err
	}
	if profileErr != nil && c.connects {
		return profileErr
	}
	return c.run(ctx, g, rest)
}

// findCommand returns the command called name.
func findCommand(name string) (*command, error) {
	names := make([]string, len(commands))
	for i := range commands {
		if commands[i].name == name {
			return &commands[i], nil
		}
		names[i] = commands[i].name
	}
	return nil, usageError("unknown command %q (want %s); see 'quiccli help'", name, strings.Join(names, ", "))
}

// help prints the usage of quiccli, or of the command named in args.
func help(ctx context.Context, g *globals, fs *flag.FlagSet, args []string) error {
	if len(args) == 0 {
		printUsage(g.stderr, fs)
		return nil
	}
	c, err := findCommand(args[0])
	if err != nil {
		return err
	}
	err = c.run(ctx, g, append(slices.Clone(args[1:]), "-h"))
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// cmdVersion prints the version of quiccli.
func cmdVersion(_ context.Context, g *globals, args []string) error {
	if _, err := g.parseCommand("version", "", "Prints the version of quiccli: the module version, the VCS commit it was built from, the Go version.", args, nil); err != nil {
		return err
	}
	_, err := fmt.Fprintln(g.stdout, versionString())
	return err
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fs.SetOutput(w)
	defer fs.SetOutput(io.Discard)
	fmt.Fprint(w, `Usage: quiccli [global flags] COMMAND [flags] [arguments]

quiccli talks to a quicmsg server (quicsrv) from the shell.

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-30s %s\n", c.name+" "+c.synopsis, c.summary)
	}
	fmt.Fprint(w, `
Examples:
  quiccli listen chat                    # in one terminal
  quiccli send chat hello world          # in another
  quiccli reply time.now "$(date)"       # a responder
  quiccli req time.now                   # prints its reply
  quiccli -addr 10.0.0.5:4433 -ca ca.pem ping -count 3
  quiccli bench -conns 4 -duration 10s -json

Global flags (before or after the command):
`)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Environment: QUICMSG_ADDR, QUICMSG_CA, QUICMSG_CERT, QUICMSG_KEY and QUICMSG_PIN set
-addr, -ca, -cert, -key and -pin; so does the selected context ('quiccli help context').
Flags win over the environment, the environment over the context.

Exit status: 0 success, 1 error, 2 usage error, 3 cannot connect,
4 messages missed (listen), 130 interrupted. Run 'quiccli help COMMAND' for the flags of a command.
`)
}

// parseCommand parses the arguments of a command: its own flags, defined by
// define (which may be nil), and the global flags, which may also follow the
// command. Flags and arguments may be mixed; "--" ends the flags. It returns
// the positional arguments.
func (g *globals) parseCommand(name, synopsis, about string, args []string, define func(fs *flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	if define != nil {
		define(fs)
	}
	if g.probe != nil {
		g.probe(fs)
		return nil, flag.ErrHelp
	}
	fs.Usage = func() {
		fmt.Fprintf(g.stderr, "Usage: quiccli [global flags] %s [flags] %s\n\n%s\n", name, synopsis, about)
		own := 0
		fs.VisitAll(func(*flag.Flag) { own++ })
		if own > 0 {
			fmt.Fprint(g.stderr, "\nFlags:\n")
			fs.PrintDefaults()
		}
		fmt.Fprint(g.stderr, "\nGlobal flags may come before or after the command; see quiccli -h.\n")
	}
	// The global flags are registered after Usage counted the command's own,
	// with their current values as defaults, so that those given before the
	// command survive.
	all := flag.NewFlagSet(name, flag.ContinueOnError)
	all.SetOutput(io.Discard)
	fs.VisitAll(func(f *flag.Flag) { all.Var(f.Value, f.Name, f.Usage) })
	g.register(all)
	all.Usage = func() {}
	var pos []string
	for {
		if err := all.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.Usage()
				return nil, err
			}
			return nil, usageError("%v; see 'quiccli help %s'", err, name)
		}
		rest := all.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	g.markSet(all)
	return pos, nil
}
