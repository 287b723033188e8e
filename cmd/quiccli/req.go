package main

import (
	"context"
	"errors"
	"flag"

	"github.com/quicmsg/quicmsg/transport"
)

const reqAbout = `Sends DATA (empty when omitted) as a request to SUBJECT and prints the
reply, as listen prints a message, like nats req. The request carries a
reply-to header naming this connection's inbox and a msg-id; a responder
(quiccli reply, or any program calling Channel.Reply) answers it. Waits
for the reply up to -timeout. When nothing subscribes to SUBJECT on a
relay server, fails at once with "no responders".

Example:
  quiccli req time.now ''
  quiccli req -H traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 orders.lookup 42`

func cmdReq(ctx context.Context, g *globals, args []string) error {
	var headers headerFlag
	var showHeaders bool
	pos, err := g.parseCommand("req", "SUBJECT [DATA]", reqAbout, args, func(fs *flag.FlagSet) {
		fs.Var(&headers, "H", "add header `KEY=VALUE` to the request (repeatable)")
		fs.BoolVar(&showHeaders, "headers", false, "print the reply's headers")
	})
	if err != nil {
		return err
	}
	if len(pos) == 0 || len(pos) > 2 {
		return usageError("req needs a SUBJECT and at most one DATA: quiccli req SUBJECT [DATA]")
	}
	subject, data := pos[0], ""
	if len(pos) == 2 {
		data = pos[1]
	}
	if err := checkSubject(subject); err != nil {
		return err
	}
	conf, err := g.tlsConfig()
	if err != nil {
		return err
	}
	conn, err := g.dialConn(ctx, conf)
	if err != nil {
		return err
	}
	defer conn.Close()
	rctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	reply, err := conn.Request(rctx, subject, &transport.Message{Header: headers.h, Data: []byte(data)})
	if err != nil {
		return g.describeRequest(ctx, subject, err)
	}
	shown := *reply
	shown.Subject = subject
	p := &printer{w: g.stdout, json: g.json, headers: showHeaders}
	p.printMsg(subject, &shown)
	return p.writeFailed()
}

// checkSubject rejects a subject that messages cannot be published to.
func checkSubject(subject string) error {
	if err := checkChannelName(subject); err != nil {
		return err
	}
	if err := transport.ValidateSubject(subject); err != nil {
		return usageError("%v", err)
	}
	return nil
}

// describeRequest explains why a request got no reply.
func (g *globals) describeRequest(ctx context.Context, subject string, err error) error {
	switch {
	case ctx.Err() != nil:
		return interrupted(err, "while waiting for the reply to the request on %q", subject)
	case errors.Is(err, transport.ErrNoResponders):
		return explain(exitError, err, "no responders: nothing at %s subscribes to %q", g.addr, subject)
	case errors.Is(err, context.DeadlineExceeded):
		return explain(exitError, err, "no reply to the request on %q within %s (-timeout)", subject, g.timeout)
	}
	return g.describe(err)
}
