package transport

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/quicmsg/quicmsg/internal/reqrep"
)

// ErrNoResponders is returned by Request when the server reports that no
// one subscribes to the subject.
var ErrNoResponders = errors.New("transport: no responders")

// ErrNoReplyTo is returned by Reply for a request without a
// HeaderReplyTo header: there is nowhere to send the reply.
var ErrNoReplyTo = errors.New("transport: the message has no reply-to header to reply to")

// requests is the requester side of a Conn: the inbox channel, opened by
// the first Request, and the requests that wait for their reply on it.
// One goroutine per inbox (readInbox, counted in Conn.wg) reads it and
// hands each reply to its request; it ends with the inbox or the
// connection, and then fails the requests still waiting. A later Request
// opens a new inbox.
type requests struct {
	// mu is held across opening the inbox, so that concurrent first
	// Requests open one; each waits for it only until its own ctx ends.
	// It guards inbox and rq.
	mu    reqrep.CtxMutex
	inbox *Channel
	rq    *reqrep.Requester[*Message]

	unmatched atomic.Uint64 // replies no request waited for, over every inbox
}

// Request sends m to subject with a reply-to and a msg-id header, and
// waits until the reply arrives or ctx ends. The first Request opens the
// connection's inbox, a channel named "_INBOX." and 22 random characters,
// and sends every request on it with Message.Subject = subject: a relay
// publishes it to subject and delivers replies to the inbox; a server
// without a relay gets the request on the inbox channel and replies on it.
// Any number of requests may be in flight on one connection; replies are
// matched by msg-id, and one that comes after its request gave up is
// discarded and counted (Conn.UnmatchedReplies).
//
// Request does not modify m; m.Subject is ignored, and m's HeaderReplyTo
// and HeaderMsgID are replaced. It fails with ErrNoResponders when the
// server reports that no one subscribes to subject, with a *SubjectError
// when subject is not a concrete subject, with ctx's error when ctx ends
// first, and with the connection's error when it ends first. Request is
// safe for concurrent use.
func (c *Conn) Request(ctx context.Context, subject string, m *Message) (*Message, error) {
	if err := ValidateSubject(subject); err != nil {
		return nil, err
	}
	inbox, rq, err := c.openInbox(ctx)
	if err != nil {
		return nil, err
	}
	return rq.Request(ctx, func(id string) error {
		return inbox.SendMsg(ctx, RequestMessage(subject, inbox.Name(), id, m))
	})
}

// RequestMessage returns the request Request sends: m's data and headers
// with Subject = subject, HeaderReplyTo = replyTo and HeaderMsgID = id
// (replacing any m had). It does not modify m; a nil m is an empty message.
func RequestMessage(subject, replyTo, id string, m *Message) *Message {
	req := &Message{Subject: subject}
	if m != nil {
		req.Data, req.ReplaySafe = m.Data, m.ReplaySafe
		req.Header = append(Header(nil), m.Header...)
	}
	req.Header.Set(HeaderReplyTo, replyTo)
	req.Header.Set(HeaderMsgID, id)
	return req
}

// ReplyMessage returns the reply to req that Reply sends: resp's data and
// headers with Subject = req's reply-to and HeaderInReplyTo = req's
// msg-id. It does not modify resp (a nil resp is an empty reply); it fails
// with ErrNoReplyTo when req has no reply-to.
func ReplyMessage(req, resp *Message) (*Message, error) {
	to := req.ReplyTo()
	if to == "" {
		return nil, ErrNoReplyTo
	}
	out := &Message{Subject: to}
	if resp != nil {
		out.Data, out.ReplaySafe = resp.Data, resp.ReplaySafe
		out.Header = append(Header(nil), resp.Header...)
	}
	out.Header.Set(HeaderInReplyTo, req.ID())
	return out, nil
}

// Reply sends resp to req's reply-to subject on ch, with HeaderInReplyTo
// set to req's msg-id: a responder replies on the channel it received the
// request on. It does not modify req or resp. It fails with ErrNoReplyTo
// when req has no reply-to, else as SendMsg.
func (ch *Channel) Reply(ctx context.Context, req *Message, resp *Message) error {
	out, err := ReplyMessage(req, resp)
	if err != nil {
		return err
	}
	return ch.SendMsg(ctx, out)
}

// UnmatchedReplies returns how many messages arrived on the connection's
// inbox that no request waited for: replies to requests that had given up
// (their ctx ended), duplicates, and strays.
func (c *Conn) UnmatchedReplies() uint64 { return c.req.unmatched.Load() }

// openInbox returns the connection's inbox and its requester, opening the
// inbox and starting its reader on first use.
func (c *Conn) openInbox(ctx context.Context) (*Channel, *reqrep.Requester[*Message], error) {
	r := &c.req
	if err := r.mu.Lock(ctx); err != nil {
		return nil, nil, err
	}
	defer r.mu.Unlock()
	if r.inbox != nil {
		return r.inbox, r.rq, nil
	}
	rq := reqrep.New(reqrep.Config[*Message]{NoResponders: ErrNoResponders, Fields: replyFields, Unmatched: &r.unmatched})
	inbox, err := c.OpenChannel(ctx, rq.Inbox())
	if err != nil {
		return nil, nil, fmt.Errorf("transport: opening the request inbox: %w", err)
	}
	c.mu.Lock()
	alive := c.ctx.Err() == nil && !c.cs.closing
	if alive {
		c.wg.Add(1) // before the close waits for wg: it begins under c.mu
	}
	c.mu.Unlock()
	if !alive {
		inbox.Reset(CodeChannelClosed)
		return nil, nil, ErrClosed
	}
	r.inbox, r.rq = inbox, rq
	go c.readInbox(inbox, rq)
	return inbox, rq, nil
}

// InReplyTo returns the HeaderInReplyTo header: on a reply, the msg-id of
// the request it answers.
func (m *Message) InReplyTo() string { return m.Header.Get(HeaderInReplyTo) }

// replyFields returns what a requester matches a reply by.
func replyFields(m *Message) (inReplyTo, status string) {
	return m.InReplyTo(), m.Header.Get(HeaderStatus)
}

// readInbox reads the inbox and hands each reply to its request, until the
// inbox or the connection ends; then it fails the requests still waiting
// and lets a later Request open a new inbox. Gap notices are skipped: the
// requests whose replies were lost wait until their ctx ends.
func (c *Conn) readInbox(inbox *Channel, rq *reqrep.Requester[*Message]) {
	defer c.wg.Done()
	rq.Read(func() (*Message, error) { return inbox.ReceiveMsg(c.ctx) },
		func(err error) bool { return errors.Is(err, ErrGap) },
		func(err error) error { return c.inboxEnded(inbox, err) })
}

// inboxEnded forgets the inbox that ended with err and returns the error
// its requests fail with.
func (c *Conn) inboxEnded(inbox *Channel, err error) error {
	r := &c.req
	_ = r.mu.Lock(context.Background()) // never fails: no deadline
	if r.inbox == inbox {
		r.inbox, r.rq = nil, nil
	}
	r.mu.Unlock()
	c.mu.Lock()
	closing := c.cs.closing
	c.mu.Unlock()
	cerr := c.err()
	if cerr != nil {
		err = cerr
	}
	// While the connection closes, its close takes the inbox down with the
	// other channels (writing what they hold first).
	if !closing && cerr == nil {
		inbox.Reset(CodeChannelClosed)
	}
	return fmt.Errorf("transport: the request inbox %s ended before the reply came: %w", inbox.Name(), err)
}
