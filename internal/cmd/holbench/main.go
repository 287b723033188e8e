// Command holbench measures head-of-line blocking on one quicmsg
// connection: 64 B request/response round trips on one channel while
// bulkStreams other channels of the same connection send 64 KiB messages
// continuously. scripts/bench-hol.sh runs it in network namespaces with
// packet loss, beside the same load over yamux on TCP + TLS 1.3.
//
//	holbench -mode server -addr :4500 -certs DIR [-window BYTES]
//	holbench -mode client -addr HOST:4500 -certs DIR [-prio] [-warmup 2s] [-dur 10s]
//	holbench -mode report -in RESULTS [-baseline yamux] [-svg FILE]
//
// DIR holds cert.pem and key.pem (the client trusts cert.pem, for the
// name holbench). The client prints one JSON line: round-trip p50, p99 and
// p99.9 in microseconds and the bulk rate. The report reads such lines
// (each with its loss_pct added) and prints a Markdown table with the
// ratios to the baseline measured at the same loss, and writes a plot.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/quicmsg/quicmsg/transport"
)

func main() {
	mode := flag.String("mode", "client", "server or client")
	addr := flag.String("addr", "127.0.0.1:4500", "server address")
	certs := flag.String("certs", ".", "directory of cert.pem and key.pem")
	prio := flag.Bool("prio", false, "open the request/response channel at urgency 0 (the bulk ones keep the default, 3)")
	name := flag.String("name", "quicmsg", "name of the measurement in the output")
	warmup := flag.Duration("warmup", 2*time.Second, "round trips before measuring")
	dur := flag.Duration("dur", 10*time.Second, "measuring time")
	window := flag.Int("window", 0, "server: MaxConnectionReceiveWindow and MaxStreamReceiveWindow in bytes (0: the defaults)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	in := flag.String("in", "", "report: the results file (JSON lines)")
	baseline := flag.String("baseline", "yamux", "report: the name of the baseline measurement")
	svg := flag.String("svg", "", "report: where to write the SVG plot")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "holbench:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	var err error
	switch *mode {
	case "server":
		err = serve(ctx, *addr, *certs, *window)
	case "report":
		var rows []row
		if rows, err = readRows(*in); err == nil {
			err = report(os.Stdout, rows, *baseline, *svg)
		}
	default:
		err = client(ctx, *addr, *certs, *name, *prio, *warmup, *dur)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "holbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// serve echoes the messages of channel "rr" and discards those of the
// others, until ctx ends.
func serve(ctx context.Context, addr, certs string, window int) error {
	tlsConf, err := serverTLS(certs, "quicmsg/1")
	if err != nil {
		return err
	}
	cfg := &transport.Config{MaxConnectionReceiveWindow: window, MaxStreamReceiveWindow: window}
	ln, err := transport.Listen(addr, tlsConf, cfg)
	if err != nil {
		return err
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			return err
		}
		wg.Go(func() { serveConn(ctx, c) })
	}
}

func serveConn(ctx context.Context, c *transport.Conn) {
	defer c.CloseWithError(transport.CodeNoError, "")
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		ch, err := c.AcceptChannel(ctx)
		if err != nil {
			return
		}
		wg.Go(func() {
			var m transport.Message
			for ch.ReceiveInto(ctx, &m) == nil {
				if ch.Name() == "rr" && ch.Send(ctx, m.Data) != nil {
					return
				}
			}
		})
	}
}

func client(ctx context.Context, addr, certs, name string, prio bool, warmup, dur time.Duration) error {
	tlsConf, err := clientTLS(certs, "quicmsg/1")
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := transport.Dial(dctx, addr, tlsConf, nil)
	if err != nil {
		return err
	}
	defer c.CloseWithError(transport.CodeNoError, "")
	var opts transport.ChannelOptions
	if prio {
		opts.Priority = transport.NewPriority(0, false)
	}
	rr, err := c.OpenChannelWith(dctx, "rr", opts)
	if err != nil {
		return err
	}
	bulk := make([]func(context.Context, []byte) error, bulkStreams)
	for i := range bulk {
		ch, err := c.OpenChannel(dctx, fmt.Sprintf("bulk%d", i))
		if err != nil {
			return err
		}
		bulk[i] = func(ctx context.Context, b []byte) error { return ch.Send(ctx, b) }
	}
	req := make([]byte, rrSize)
	var m transport.Message
	rt := func() error {
		if err := rr.Send(ctx, req); err != nil {
			return err
		}
		return rr.ReceiveInto(ctx, &m)
	}
	r, err := measure(ctx, name, bulk, rt, warmup, dur)
	if err != nil {
		return err
	}
	printResult(r)
	return nil
}
