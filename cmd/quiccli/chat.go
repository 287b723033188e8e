package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/quicmsg/quicmsg/client"
	"github.com/quicmsg/quicmsg/transport"
)

const chatAbout = `Interactive: each line typed is sent as a message on CHANNEL and every
message received on it is printed, as listen prints them. Ends at the end of
input (Ctrl-D) or on Ctrl-C, after handing what was typed to the server. On
a relay server (quicsrv -mode relay) the messages of everyone else in the
channel arrive; an echo server sends each line back.

Example:
  quiccli chat -name ann lobby`

func cmdChat(ctx context.Context, g *globals, args []string) error {
	var name string
	pos, err := g.parseCommand("chat", "CHANNEL", chatAbout, args, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "prefix every message sent with `NAME` and \": \"")
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("chat needs exactly one CHANNEL: quiccli chat CHANNEL")
	}
	if err := checkChannelName(pos[0]); err != nil {
		return err
	}
	cl, err := g.dialClient(ctx)
	if err != nil {
		return err
	}
	ch, err := cl.Channel(ctx, pos[0])
	if err != nil {
		_ = cl.Close()
		return g.describe(err)
	}
	if isTerminal(g.stdin) {
		fmt.Fprintf(g.stderr, "quiccli: chat on %s at %s: type a line and press Enter to send; Ctrl-D to leave\n", shortName(pos[0]), g.addr)
	}
	chatErr := g.chat(ctx, cl, ch, name)
	if chatErr == nil || ctx.Err() != nil {
		g.waitSent(ctx, cl)
	}
	closeErr := cl.Close()
	switch {
	case errors.Is(chatErr, client.ErrClosed) && closeErr != nil:
		return g.describe(closeErr)
	case chatErr != nil && ctx.Err() == nil:
		return g.describe(chatErr)
	}
	return g.describe(closeErr)
}

// chat sends the lines of stdin on ch and prints what arrives on it, until
// the end of stdin, ctx ends, or sending or receiving fails.
func (g *globals) chat(ctx context.Context, cl *client.Client, ch *client.Channel, name string) error {
	rctx, cancel := context.WithCancel(ctx)
	recvDone := make(chan error, 1)
	go func() { recvDone <- receive(rctx, g, []*client.Channel{ch}, &printer{w: g.stdout, json: g.json}) }()
	defer func() {
		cancel()
		if recvDone != nil {
			<-recvDone
		}
	}()
	// Over-long lines are refused one by one, below; only absurd ones end
	// the chat.
	lr := readLines(g.stdin, transport.MaxMessageSizeLimit)
	defer lr.Stop()
	prefix := ""
	if name != "" {
		prefix = name + ": "
	}
	for {
		select {
		case line, ok := <-lr.lines:
			if !ok {
				if lr.err != nil {
					return fmt.Errorf("reading stdin: %w", lr.err)
				}
				return nil
			}
			msg := append([]byte(prefix), line...)
			if limit := messageLimit(cl); len(msg) > limit {
				fmt.Fprintf(g.stderr, "quiccli: not sent: the message is %d bytes, larger than the server's limit of %d bytes\n", len(msg), limit)
				continue
			}
			if err := ch.Send(ctx, msg); err != nil {
				return err
			}
		case err := <-recvDone:
			recvDone = nil
			return err
		case <-ctx.Done():
			return nil
		}
	}
}
