package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"github.com/quicmsg/quicmsg/client"
	"github.com/quicmsg/quicmsg/transport"
)

const sendAbout = `Sends each MESSAGE argument as one message on CHANNEL, or, without MESSAGE
arguments, each line of stdin (without its line ending). -f FILE sends the
whole file as one message, byte for byte (-f - : all of stdin). -count N
sends each message N times. Exits 0 once every message was handed to the
server: written, and the connection closed gracefully after the server
read everything. A message starting with "-" needs "--" before it:
quiccli send chat -- -5 degrees. -H KEY=VALUE adds a header to every
message (repeatable).

Example:
  quiccli send chat hello world
  tail -f app.log | quiccli send logs
  quiccli send -f photo.jpg uploads
  quiccli send -count 1000 load.test ping
  quiccli send -H traceparent=00-4bf9...-01 orders.eu.new '{"id":1}'`

// sendResult is send's -json output.
type sendResult struct {
	Channel  string `json:"channel"`
	Messages int    `json:"messages"`
	Bytes    int    `json:"bytes"`

	header transport.Header // added to every message (-H); without it, plain Send
	count  int              // times each message is sent (-count)
}

// sendInput is where send's messages come from.
type sendInput struct {
	args []string // MESSAGE arguments, one message each
	file string   // -f: the whole file as one message; "-" is stdin
}

func cmdSend(ctx context.Context, g *globals, args []string) error {
	var headers headerFlag
	var in sendInput
	count := 1
	pos, err := g.parseCommand("send", "CHANNEL [MESSAGE...]", sendAbout, args, func(fs *flag.FlagSet) {
		fs.Var(&headers, "H", "add header `KEY=VALUE` to every message (repeatable)")
		fs.StringVar(&in.file, "f", "", "send the contents of `FILE` as one message, byte for byte (- for all of stdin)")
		fs.IntVar(&count, "count", 1, "send each message `N` times")
	})
	if err != nil {
		return err
	}
	name, err := checkSendArgs(pos, &in, count)
	if err != nil {
		return err
	}
	cl, err := g.dialClient(ctx)
	if err != nil {
		return err
	}
	res := sendResult{Channel: name, header: headers.h, count: count}
	sendErr := g.sendAll(ctx, cl, name, in, &res)
	if sendErr == nil || ctx.Err() != nil || errors.Is(sendErr, errLineTooLong) {
		// Hand over what was accepted before the end of input, an
		// interrupt or an over-long line.
		g.waitSent(ctx, cl)
	}
	if err := g.closeSend(ctx, cl, res, sendErr); err != nil {
		return err
	}
	if g.json {
		return writeJSON(g.stdout, res)
	}
	_, err = fmt.Fprintf(g.stdout, "sent %s (%d bytes) on %s to %s\n", plural(res.Messages, "message"), res.Bytes, shortName(name), g.addr)
	return err
}

// closeSend closes the client and returns what makes send fail: why
// sending stopped (sendErr) or the client closed, or messages left in doubt
// by a lost connection. It returns nil when every message was delivered.
func (g *globals) closeSend(ctx context.Context, cl *client.Client, res sendResult, sendErr error) error {
	closeErr := cl.Close()
	inDoubt := cl.Stats().MessagesInDoubt
	switch {
	case errors.Is(sendErr, client.ErrClosed) && closeErr != nil:
		return g.describe(closeErr) // why the client closed
	case sendErr != nil && ctx.Err() != nil:
		return interrupted(sendErr, "%d messages were sent on %q before the interrupt", res.Messages, res.Channel)
	case sendErr != nil:
		return g.describe(sendErr)
	case closeErr != nil:
		return g.describe(closeErr)
	case inDoubt > 0:
		return explain(exitError, nil, "the connection to %s was lost after %d messages had been written to it; they may or may not have arrived", g.addr, inDoubt)
	}
	return nil
}

// checkSendArgs checks send's positional arguments, -f and -count, and
// returns the channel name; the MESSAGE arguments go into in.
func checkSendArgs(pos []string, in *sendInput, count int) (string, error) {
	switch {
	case len(pos) == 0:
		return "", usageError("send needs a CHANNEL: quiccli send CHANNEL [MESSAGE...]")
	case count < 1:
		return "", usageError("-count must be at least 1, not %d", count)
	case in.file != "" && len(pos) > 1:
		return "", usageError("-f sends a file as the message: give either -f or MESSAGE arguments, not both")
	}
	in.args = pos[1:]
	return pos[0], checkSubject(pos[0])
}

// sendAll sends what in names, or each line of stdin when it names
// nothing, on the client's channel name, counting them in res.
func (g *globals) sendAll(ctx context.Context, cl *client.Client, name string, in sendInput, res *sendResult) error {
	ch, err := cl.Channel(ctx, name)
	if err != nil {
		return err
	}
	limit := messageLimit(cl)
	switch {
	case in.file != "":
		data, err := g.readMessageFile(in.file, limit, res.Channel)
		if err != nil {
			return err
		}
		return res.send(ctx, ch, data)
	case len(in.args) > 0:
		return sendArgs(ctx, ch, limit, in.args, res)
	}
	return g.sendLines(ctx, ch, limit, res)
}

// readMessageFile reads the file -f names ("-": stdin) whole, up to limit
// bytes; a longer one is refused before anything is sent.
func (g *globals) readMessageFile(path string, limit int, channel string) ([]byte, error) {
	r, what := g.stdin, "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, explain(exitUsage, err, "-f: %v", err)
		}
		defer f.Close()
		r, what = f, path
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("-f: reading %s: %w", what, err)
	}
	if len(data) > limit {
		return nil, explain(exitError, &transport.MessageTooLargeError{Channel: channel, Size: len(data), Limit: limit},
			"-f: %s is larger than the server's limit of %d bytes (quicsrv -max-message-size); nothing was sent", what, limit)
	}
	return data, nil
}

// sendArgs sends msgs on ch, or none of them if one is over limit.
func sendArgs(ctx context.Context, ch *client.Channel, limit int, msgs []string, res *sendResult) error {
	for i, m := range msgs {
		if len(m) > limit {
			return explain(exitError, &transport.MessageTooLargeError{Channel: res.Channel, Size: len(m), Limit: limit},
				"message %d is %d bytes, larger than the server's limit of %d bytes (quicsrv -max-message-size); nothing was sent", i+1, len(m), limit)
		}
	}
	for _, m := range msgs {
		if err := res.send(ctx, ch, []byte(m)); err != nil {
			return err
		}
	}
	return nil
}

// sendLines sends each line of stdin on ch until its end or a line over
// limit.
func (g *globals) sendLines(ctx context.Context, ch *client.Channel, limit int, res *sendResult) error {
	if isTerminal(g.stdin) {
		fmt.Fprintf(g.stderr, "quiccli: sending each line typed on %s; end with Ctrl-D\n", shortName(res.Channel))
	}
	lr := readLines(g.stdin, limit)
	defer lr.Stop()
	for {
		select {
		case line, ok := <-lr.lines:
			if !ok {
				return stdinEnded(lr.err, limit, res.Messages)
			}
			if err := res.send(ctx, ch, line); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stdinEnded returns what ends sending lines: nil at the end of stdin, or
// the read error, explained for a line over limit.
func stdinEnded(err error, limit, sent int) error {
	switch {
	case errors.Is(err, errLineTooLong):
		return explain(exitError, err, "%v, more than the server's limit of %d bytes (quicsrv -max-message-size); the %d lines before it were sent", err, limit, sent)
	case err != nil:
		return fmt.Errorf("reading stdin: %w", err)
	}
	return nil
}

// send sends msg on ch -count times and counts each.
func (res *sendResult) send(ctx context.Context, ch *client.Channel, msg []byte) error {
	for range max(res.count, 1) {
		var err error
		if len(res.header) > 0 {
			err = ch.SendMsg(ctx, &transport.Message{Header: res.header, Data: msg})
		} else {
			err = ch.Send(ctx, msg)
		}
		if err != nil {
			return err
		}
		res.Messages++
		res.Bytes += len(msg)
	}
	return nil
}

// waitSent waits, up to -timeout, until the client is connected and nothing
// waits in its reconnect buffer, so that Close can hand everything to the
// server instead of reporting it undelivered.
func (g *globals) waitSent(ctx context.Context, cl *client.Client) {
	waitUntil(ctx, g.timeout, 10*time.Millisecond, func() bool {
		return cl.Status() == client.StatusClosed ||
			cl.Status() == client.StatusConnected && cl.Stats().BufferedMessages == 0
	})
}

// waitUntil checks cond every poll until it holds, timeout passed or ctx
// ended. It is for conditions that give no signal when they change.
func waitUntil(ctx context.Context, timeout, poll time.Duration, cond func() bool) {
	if cond() {
		return
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// plural returns "1 message", "2 messages".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// checkChannelName rejects a name the protocol does not allow.
func checkChannelName(name string) error {
	if name == "" || len(name) > 255 || !utf8.ValidString(name) {
		return usageError("channel name %q: want 1 to 255 bytes of UTF-8", name)
	}
	return nil
}
