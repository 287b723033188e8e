package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/quicmsg/quicmsg/client"
	"github.com/quicmsg/quicmsg/transport"
)

const replyAbout = `Answers every request received on SUBJECT (a subscription: wildcards are
allowed), like nats reply: with RESPONSE, or, without it, with the request's
own data (echo). With -command, runs the command with sh -c for each
request, with the request's data on its stdin and QUICCLI_SUBJECT set to the
request's subject; its stdout is the reply (its stderr goes to quiccli's).
Each request answered is printed as listen prints a message. Runs until
interrupted or -count requests were answered. Messages without a reply-to
header are not requests: they are reported on stderr and skipped.

Example:
  quiccli reply time.now "$(date)"
  quiccli reply -group workers -command 'tr a-z A-Z' 'text.>'`

// responder answers the requests of one channel.
type responder struct {
	g       *globals
	fixed   *string // the RESPONSE argument; nil: echo
	command string  // run per request when not empty
	limit   int     // the largest reply the server accepts
	count   int     // stop after this many replies; 0: never
	p       *printer
}

func cmdReply(ctx context.Context, g *globals, args []string) error {
	r := &responder{g: g}
	var group string
	var showHeaders bool
	pos, err := g.parseCommand("reply", "SUBJECT [RESPONSE]", replyAbout, args, func(fs *flag.FlagSet) {
		fs.StringVar(&r.command, "command", "", "run `CMD` with sh -c per request: the request on stdin, the reply from stdout")
		fs.StringVar(&group, "group", "", "join queue group `NAME`: each request goes to one responder of the group")
		fs.IntVar(&r.count, "count", 0, "exit after answering `N` requests (0: until interrupted)")
		fs.BoolVar(&showHeaders, "headers", false, "print each request's headers")
	})
	if err != nil {
		return err
	}
	names, err := replyArgs(pos, r, group)
	if err != nil {
		return err
	}
	cl, chs, err := g.subscribe(ctx, names, group)
	if err != nil {
		return err
	}
	r.limit = messageLimit(cl)
	r.p = &printer{w: g.stdout, json: g.json, prefix: anyWildcard(names), headers: showHeaders}
	serveErr := r.serve(ctx, chs[0])
	closeErr := cl.Close()
	switch {
	case serveErr == nil, ctx.Err() != nil:
		return nil
	case errors.Is(serveErr, client.ErrClosed) && closeErr != nil:
		return g.describe(closeErr)
	}
	return g.describe(serveErr)
}

// replyArgs checks reply's arguments into r and returns the channel.
func replyArgs(pos []string, r *responder, group string) ([]string, error) {
	if len(pos) == 0 || len(pos) > 2 {
		return nil, usageError("reply needs a SUBJECT and at most one RESPONSE: quiccli reply SUBJECT [RESPONSE]")
	}
	if len(pos) == 2 {
		if r.command != "" {
			return nil, usageError("RESPONSE and -command exclude each other")
		}
		r.fixed = &pos[1]
	}
	if r.count < 0 {
		return nil, usageError("-count must not be negative")
	}
	return listenArgs(pos[:1], 0, group)
}

// serve answers the requests on ch until ctx ends, count requests were
// answered, or receiving fails.
func (r *responder) serve(ctx context.Context, ch *client.Channel) error {
	for answered := 0; r.count == 0 || answered < r.count; {
		m, err := ch.ReceiveMsg(ctx)
		var gap *transport.GapError
		switch {
		case errors.As(err, &gap):
			fmt.Fprintf(r.g.stderr, "quiccli: %s: %s missed (%s)\n", ch.Name(), plural(int(gap.Missed), "request"), strings.ReplaceAll(gap.Reason.String(), "_", " "))
			continue
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, io.EOF):
			return fmt.Errorf("the server closed channel %q", ch.Name())
		case err != nil:
			return err
		}
		if m.ReplyTo() == "" {
			fmt.Fprintf(r.g.stderr, "quiccli: %s: a message without reply-to is not a request; not answered\n", m.Subject)
			continue
		}
		if r.answer(ctx, ch, m) {
			answered++
		}
	}
	return nil
}

// answer replies to the request m on ch, and reports whether it did. A
// reply that cannot be made is reported on stderr; the requester then
// waits until its timeout.
func (r *responder) answer(ctx context.Context, ch *client.Channel, m *transport.Message) bool {
	data, err := r.replyData(ctx, m)
	if err == nil {
		err = ch.Reply(ctx, m, &transport.Message{Data: data})
	}
	if err != nil {
		fmt.Fprintf(r.g.stderr, "quiccli: %s: request %s not answered: %v\n", m.Subject, m.ID(), r.g.describe(err))
		return false
	}
	r.p.printMsg(ch.Name(), m)
	return true
}

// replyData returns the reply to m: RESPONSE, the output of -command, or
// m's data.
func (r *responder) replyData(ctx context.Context, m *transport.Message) ([]byte, error) {
	switch {
	case r.fixed != nil:
		return []byte(*r.fixed), nil
	case r.command == "":
		return m.Data, nil
	}
	cctx, cancel := context.WithTimeout(ctx, r.g.timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "sh", "-c", r.command)
	cmd.Stdin = bytes.NewReader(m.Data)
	out := &cappedBuffer{limit: r.limit}
	cmd.Stdout = out
	cmd.Stderr = r.g.stderr
	cmd.Env = append(os.Environ(), "QUICCLI_SUBJECT="+m.Subject)
	err := cmd.Run()
	switch {
	case out.over:
		return nil, fmt.Errorf("the output of -command is larger than the server's limit of %d bytes", r.limit)
	case cctx.Err() != nil:
		return nil, fmt.Errorf("-command did not finish within %s (-timeout)", r.g.timeout)
	case err != nil:
		return nil, fmt.Errorf("-command failed: %w", err)
	}
	return out.b.Bytes(), nil
}

// cappedBuffer keeps at most limit bytes, and notes that more came.
type cappedBuffer struct {
	b     bytes.Buffer
	limit int
	over  bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.b.Len()+len(p) > c.limit {
		c.over = true
		return 0, fmt.Errorf("output over %d bytes", c.limit)
	}
	return c.b.Write(p)
}
