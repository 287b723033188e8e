package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/quicmsg/quicmsg/client"
)

const listenAbout = `Prints every message received on the CHANNELs, one per line, until
interrupted or until -count messages. Listening on a channel opens it, which
subscribes to it on a relay server (quicsrv -mode relay): every message
another session sends on it arrives here. An echo server sends nothing to
listeners.

A payload that is printable single-line UTF-8 text is printed as it is,
any other as a Go-quoted string ("\x00..."); with more than one channel each
line starts with the channel name and ": ". With -json each line is an
object {"channel", "size", "encoding", "payload"}: encoding "utf-8" means
payload is the text, "base64" that it is the standard base64 of the bytes.

Example:
  quiccli listen chat
  quiccli -json listen -count 10 orders payments`

func cmdListen(ctx context.Context, g *globals, args []string) error {
	var count int
	pos, err := g.parseCommand("listen", "CHANNEL...", listenAbout, args, func(fs *flag.FlagSet) {
		fs.IntVar(&count, "count", 0, "exit after `N` messages (0: until interrupted)")
	})
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError("listen needs at least one CHANNEL: quiccli listen CHANNEL...")
	}
	if count < 0 {
		return usageError("-count must not be negative")
	}
	var names []string
	for _, name := range pos {
		if err := checkChannelName(name); err != nil {
			return err
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	cl, err := g.dialClient(ctx)
	if err != nil {
		return err
	}
	chs := make([]*client.Channel, 0, len(names))
	for _, name := range names {
		ch, err := cl.Channel(ctx, name)
		if err != nil {
			_ = cl.Close()
			return g.describe(err)
		}
		chs = append(chs, ch)
	}
	if isTerminal(g.stderr) {
		fmt.Fprintf(g.stderr, "quiccli: listening on %q at %s; Ctrl-C to stop\n", names, g.addr)
	}
	p := &printer{w: g.stdout, json: g.json, prefix: len(names) > 1, limit: count}
	recvErr := receive(ctx, cl, chs, p)
	closeErr := cl.Close()
	switch {
	case p.done(), ctx.Err() != nil:
		return nil
	case errors.Is(recvErr, client.ErrClosed) && closeErr != nil:
		return g.describe(closeErr)
	}
	return g.describe(recvErr)
}

// receive prints what arrives on chs, channels of cl, until ctx ends, the
// printer has printed its limit, or receiving fails; it returns the first
// failure. A channel the server ends is a failure; the end of a connection
// that the client replaces is not.
func receive(ctx context.Context, cl *client.Client, chs []*client.Channel, p *printer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, ch := range chs {
		wg.Go(func() {
			for {
				msg, err := ch.Receive(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					if errors.Is(err, io.EOF) {
						err = fmt.Errorf("the server closed channel %q", ch.Name())
					}
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
				if !p.print(ch.Name(), msg) {
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil && p.writeFailed() != nil {
		return p.writeFailed()
	}
	return first
}
