// Command quiccli talks to a quicmsg server from the shell.
//
//	quiccli send CHANNEL MESSAGE...   send each argument as a message
//	quiccli ping [-count N]           round-trip times to an echo server
//
// By default it connects to 127.0.0.1:4433 and trusts the development CA
// that quicsrv writes to .quicmsg/dev-certs/ca.pem.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "quiccli:", err)
		os.Exit(1)
	}
}

type globals struct {
	addr    string
	caFile  string
	pin     string
	timeout time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{}
	fs := flag.NewFlagSet("quiccli", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.addr, "addr", "127.0.0.1:4433", "server address")
	fs.StringVar(&g.caFile, "ca", filepath.Join(certs.DefaultDevDir, certs.DevCAFile), "CA file that signed the server's certificate")
	fs.StringVar(&g.pin, "pin", "", "server public-key pin (sha256/...), instead of or besides -ca")
	fs.DurationVar(&g.timeout, "timeout", 5*time.Second, "connect timeout")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: quiccli [flags] send CHANNEL MESSAGE... | ping [-count N]\n\nExample:\n  quiccli send chat hello\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no command given")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "send":
		return cmdSend(ctx, g, rest, stdout)
	case "ping":
		return cmdPing(ctx, g, rest, stdout, stderr)
	}
	return fmt.Errorf("unknown command %q (want send or ping)", cmd)
}

func (g *globals) dial(ctx context.Context) (*transport.Conn, error) {
	opts := certs.ClientOptions{PinSHA256: g.pin}
	if g.pin == "" || fileExists(g.caFile) {
		opts.CAFile = g.caFile
	}
	if opts.CAFile != "" && !fileExists(opts.CAFile) {
		return nil, fmt.Errorf("CA file %s not found: start quicsrv once to create it, or pass -ca <file printed by quicsrv>", opts.CAFile)
	}
	tlsConf, err := certs.ClientConfig(opts)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	c, err := transport.Dial(dctx, g.addr, tlsConf, &transport.Config{HandshakeTimeout: g.timeout})
	if errors.Is(err, transport.ErrUntrusted) {
		return nil, fmt.Errorf("%w\n(pass -ca <file printed by quicsrv>, or -pin)", err)
	}
	return c, err
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

func cmdSend(ctx context.Context, g *globals, args []string, stdout io.Writer) error {
	if len(args) < 2 {
		return errors.New("usage: quiccli send CHANNEL MESSAGE...")
	}
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	ch, err := c.OpenChannel(ctx, args[0])
	if err != nil {
		_ = c.CloseWithError(transport.CodeInternalError, "")
		return err
	}
	for _, m := range args[1:] {
		if err := ch.Send(ctx, []byte(m)); err != nil {
			_ = c.CloseWithError(transport.CodeInternalError, "")
			return err
		}
	}
	if err := c.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sent %d messages on %q\n", len(args)-1, args[0])
	return nil
}

func cmdPing(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	fs.SetOutput(stderr)
	count := fs.Int("count", 5, "number of pings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ch, err := c.OpenChannel(ctx, "ping")
	if err != nil {
		return err
	}
	var rtts []time.Duration
	for i := range *count {
		start := time.Now()
		if err := ch.Send(ctx, fmt.Appendf(nil, "ping %d", i)); err != nil {
			return err
		}
		if _, err := ch.Receive(ctx); err != nil {
			return err
		}
		rtt := time.Since(start)
		rtts = append(rtts, rtt)
		fmt.Fprintf(stdout, "reply from %s: seq=%d time=%s\n", g.addr, i, rtt.Round(time.Microsecond))
	}
	if len(rtts) == 0 {
		return nil
	}
	slices.Sort(rtts)
	var sum time.Duration
	for _, r := range rtts {
		sum += r
	}
	fmt.Fprintf(stdout, "%d pings: min %s, avg %s, max %s\n", len(rtts), rtts[0].Round(time.Microsecond),
		(sum / time.Duration(len(rtts))).Round(time.Microsecond), rtts[len(rtts)-1].Round(time.Microsecond))
	return nil
}
