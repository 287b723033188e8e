package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/quicmsg/quicmsg/client"
	"github.com/quicmsg/quicmsg/transport"
)

const listenAbout = `Prints every message received on the CHANNELs, one per line, until
interrupted or until -count messages (received or missed). Listening on a
channel opens it, which subscribes to it on a relay server (quicsrv -mode
relay): every message another session sends to a matching subject arrives
here. A CHANNEL may be a subject pattern: "*" matches one dot-separated
token, ">" the rest (orders.*.new, orders.>). With -group NAME, the
listeners of the same group on a pattern share its messages, each going to
one of them. An echo server sends nothing to listeners.

A payload that is printable single-line UTF-8 text is printed as it is,
any other as a Go-quoted string ("\x00..."); with more than one channel or a
wildcard each line starts with the message's subject and ": "; -headers
prints the headers as "[key=value ...] " before the payload. With -json each
line is an object {"channel", "subject", "size", "encoding", "payload",
"headers"}: encoding "utf-8" means payload is the text, "base64" that it is
the standard base64 of the bytes; subject is there when it differs from the
channel, headers with -headers.

When the relay drops messages for a listener that reads too slowly, it says
so in order: listen prints "quiccli: CHANNEL: N messages missed (slow
consumer)" on stderr, counts them toward -count and exits with status 4 at
its end. A listener the server disconnects as a slow consumer does not
reconnect; it reports what it received and missed and exits with status 4.

Example:
  quiccli listen chat
  quiccli -json listen -count 10 orders payments
  quiccli listen -group workers 'orders.>'`

func cmdListen(ctx context.Context, g *globals, args []string) error {
	var count int
	var group string
	var headers bool
	pos, err := g.parseCommand("listen", "CHANNEL...", listenAbout, args, func(fs *flag.FlagSet) {
		fs.IntVar(&count, "count", 0, "exit after `N` messages, received or missed (0: until interrupted)")
		fs.StringVar(&group, "group", "", "join queue group `NAME`: each message goes to one listener of the group")
		fs.BoolVar(&headers, "headers", false, "print each message's headers")
	})
	if err != nil {
		return err
	}
	names, err := listenArgs(pos, count, group)
	if err != nil {
		return err
	}
	// A server that disconnects this listener as a slow consumer would
	// only do it again: stop instead of reconnecting, and say so.
	rctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	g.onLost = func(err error) bool {
		if !isSlowConsumer(err) {
			return false
		}
		stop(err)
		return true
	}
	cl, chs, err := g.subscribe(ctx, names, group)
	if err != nil {
		return err
	}
	if isTerminal(g.stderr) {
		fmt.Fprintln(g.stderr, humanize(fmt.Sprintf("quiccli: listening on %q at %s; Ctrl-C to stop", names, g.addr)))
	}
	p := &printer{w: g.stdout, json: g.json, prefix: len(names) > 1 || anyWildcard(names), headers: headers, limit: count}
	recvErr := receive(rctx, g, chs, p)
	closeErr := cl.Close()
	return g.listenResult(ctx, rctx, p, recvErr, closeErr)
}

// listenArgs checks listen's arguments and returns the channel names,
// without duplicates.
func listenArgs(pos []string, count int, group string) ([]string, error) {
	if len(pos) == 0 {
		return nil, usageError("listen needs at least one CHANNEL: quiccli listen CHANNEL...")
	}
	if count < 0 {
		return nil, usageError("-count must not be negative")
	}
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	var names []string
	for _, name := range pos {
		if err := checkChannelName(name); err != nil {
			return nil, err
		}
		if err := transport.ValidatePattern(name); err != nil {
			return nil, usageError("%v", err)
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names, nil
}

// checkGroup rejects a queue group name the protocol does not allow.
func checkGroup(group string) error {
	if len(group) > 255 {
		return usageError("-group %q: at most 255 bytes", group)
	}
	for _, c := range []byte(group) {
		if c < 0x21 || c > 0x7e || c == '.' || c == '*' || c == '>' {
			return usageError("-group %q: want visible ASCII without '.', '*' or '>'", group)
		}
	}
	return nil
}

// subscribe connects a client and opens its channels names, in queue
// group group when it is not empty.
func (g *globals) subscribe(ctx context.Context, names []string, group string) (*client.Client, []*client.Channel, error) {
	cl, err := g.dialClient(ctx)
	if err != nil {
		return nil, nil, err
	}
	chs := make([]*client.Channel, 0, len(names))
	for _, name := range names {
		var ch *client.Channel
		if group != "" {
			ch, err = cl.ChannelWith(ctx, name, transport.ChannelOptions{Group: group})
		} else {
			ch, err = cl.Channel(ctx, name)
		}
		if err != nil {
			_ = cl.Close()
			return nil, nil, g.describe(err)
		}
		chs = append(chs, ch)
	}
	return cl, chs, nil
}

func anyWildcard(names []string) bool {
	return slices.ContainsFunc(names, transport.IsWildcard)
}

// isSlowConsumer reports whether err is the server closing the connection
// because this side read too slowly.
func isSlowConsumer(err error) bool {
	var ce *transport.ConnError
	return errors.As(err, &ce) && ce.Remote && ce.Code == transport.CodeSlowConsumer
}

// listenResult returns what ends listen: nil after -count messages or an
// interrupt, unless messages were missed (exitMissed); the slow-consumer
// disconnect (rctx's cause) with what was received and missed; or why
// receiving failed.
func (g *globals) listenResult(ctx, rctx context.Context, p *printer, recvErr, closeErr error) error {
	printed, missed := p.counts()
	cause := context.Cause(rctx)
	switch {
	case ctx.Err() == nil && isSlowConsumer(cause):
		var short string
		if p.limit > 0 {
			// No longer subscribed, so the server reports nothing after the
			// disconnect: -count says how many were expected.
			short = fmt.Sprintf("; of -count %d, %d not received", p.limit, p.limit-printed)
		}
		return explain(exitMissed, cause, "the server disconnected this listener as a slow consumer (it read too slowly); not reconnecting: %s received, %s missed%s", plural(printed, "message"), plural(int(missed), "message"), short)
	case missed > 0 && (p.done() || ctx.Err() != nil || recvErr == nil):
		return explain(exitMissed, nil, "%s missed, %s received", plural(int(missed), "message"), plural(printed, "message"))
	case p.done(), ctx.Err() != nil:
		return nil
	case errors.Is(recvErr, client.ErrClosed) && closeErr != nil:
		return g.describe(closeErr)
	}
	return g.describe(recvErr)
}

// receive prints what arrives on chs until ctx ends, the printer has
// printed its limit, or receiving fails; it returns the first failure. A
// gap notice is reported on stderr and counted as missed. A channel the
// server ends is a failure; the end of a connection that the client
// replaces is not.
func receive(ctx context.Context, g *globals, chs []*client.Channel, p *printer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, ch := range chs {
		wg.Go(func() {
			err := receiveOne(ctx, g, ch, p)
			if err != nil && ctx.Err() == nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
			cancel()
		})
	}
	wg.Wait()
	if first == nil && p.writeFailed() != nil {
		return p.writeFailed()
	}
	return first
}

// receiveOne prints what arrives on ch until ctx ends, the printer is
// done, or receiving fails.
func receiveOne(ctx context.Context, g *globals, ch *client.Channel, p *printer) error {
	for {
		m, err := ch.ReceiveMsg(ctx)
		var gap *transport.GapError
		switch {
		case errors.As(err, &gap):
			fmt.Fprintf(g.stderr, "quiccli: %s: %s missed (%s)\n", ch.Name(), plural(int(gap.Missed), "message"), strings.ReplaceAll(gap.Reason.String(), "_", " "))
			if !p.gap(gap.Missed) {
				return nil
			}
			continue
		case errors.Is(err, io.EOF):
			return fmt.Errorf("the server closed channel %q", ch.Name())
		case err != nil:
			return err
		}
		if !p.printMsg(ch.Name(), m) {
			return nil
		}
	}
}
