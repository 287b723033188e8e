// Command rawrelay is the ceiling for quicsrv's relay rows in
// scripts/bench-cli.sh: a forwarder written directly on quic-go, with the
// same TLS 1.3 set-up and quic.Config as quicmsg (transport.Config's
// defaults), and no session, relay or channel layer. It shows what QUIC
// itself allows on a machine for the topology quiccli bench measures: one
// publishing connection whose messages go to every subscribing
// connection.
//
//	rawrelay -mode server -addr 127.0.0.1:0 -certs DIR
//	rawrelay -mode bench -addr HOST:PORT -certs DIR [-size 64] [-subscribers 1] [-duration 5s] [-timeout 2s]
//
// Each client opens one bidirectional stream and writes one role byte:
// 'S' for a subscriber, which the server answers with one byte once it
// forwards to it, or 'P' for a publisher, followed by messages, each a
// 4-byte little-endian length and the payload. The server reads a
// publisher's stream through a bufio.Reader and writes every message to
// every subscriber's stream through a bufio.Writer, flushed whenever the
// reader has nothing buffered: a message is never dropped (a slow
// subscriber holds back the publisher through flow control).
//
// The bench prints one JSON object with the fields of quiccli -json bench
// that scripts/bench-cli.sh reads: sent, expected, delivered, undelivered
// and msgs_per_sec (delivered messages over all subscribers per second,
// from the first send to the last delivery), and the bench's own CPU
// time (client_cpu_seconds).
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
)

// alpn keeps rawrelay's clients and servers apart from quicmsg's.
const alpn = "quicmsg-rawrelay"

// Roles, the first byte a client writes on its stream.
const (
	roleSubscriber = 'S'
	rolePublisher  = 'P'
)

// maxSize bounds -size, and the server refuses longer messages.
const maxSize = 1 << 20

// benchOptions are the bench mode's flags.
type benchOptions struct {
	addr, certs       string
	size, subscribers int
	duration, timeout time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "rawrelay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rawrelay", flag.ContinueOnError)
	mode := fs.String("mode", "server", "server or bench")
	o := benchOptions{}
	fs.StringVar(&o.addr, "addr", "127.0.0.1:0", "server: address to listen on; bench: the server's address")
	fs.StringVar(&o.certs, "certs", "", "directory of the development certificates (as quicsrv -dev-certs)")
	fs.IntVar(&o.size, "size", 64, "bench: message size in bytes")
	fs.IntVar(&o.subscribers, "subscribers", 1, "bench: subscribing connections")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "bench: how long to publish")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Second, "bench: how long to wait for deliveries after publishing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case o.certs == "":
		return errors.New("-certs is required")
	case *mode == "server":
		return serve(ctx, o.addr, o.certs, stdout)
	case *mode != "bench":
		return fmt.Errorf("-mode %q: want server or bench", *mode)
	case o.size < 1 || o.size > maxSize:
		return fmt.Errorf("-size %d: want 1 to %d", o.size, maxSize)
	case o.subscribers < 1 || o.subscribers > 64:
		return fmt.Errorf("-subscribers %d: want 1 to 64", o.subscribers)
	}
	return bench(ctx, o, stdout)
}
