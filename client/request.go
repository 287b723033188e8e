package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/quicmsg/quicmsg/internal/reqrep"
	"github.com/quicmsg/quicmsg/transport"
)

// requests is the requester side of a Client: the inbox, a client Channel
// opened by the first Request (so it is reopened on every connection), and
// the requests that wait for their reply on it. One goroutine (readInbox,
// counted in Client.wg) reads the inbox and hands each reply to its
// request; it ends when the client closes (or the inbox fails), and then
// fails the requests still waiting.
type requests struct {
	// mu is held across opening the inbox, so that concurrent first
	// Requests open one; each waits for it only until its own ctx ends.
	// It guards inbox and rq.
	mu    reqrep.CtxMutex
	inbox *Channel
	rq    *reqrep.Requester[*transport.Message]

	unmatched atomic.Uint64 // replies no request waited for, over every inbox
}

// Request sends m to subject and waits for the reply until ctx ends, as
// [transport.Conn.Request] does, over an inbox channel of the client
// ("_INBOX." and 22 random characters) that survives reconnects: a request
// sent while the client reconnects waits in the reconnect buffer, and one
// in flight across a reconnect keeps waiting for its reply (which the
// resumed session delivers) until ctx ends. Any number of requests may be
// in flight; replies are matched by msg-id, and one that comes after its
// request gave up is discarded and counted (Client.UnmatchedReplies).
//
// Request does not modify m; m.Subject is ignored. It fails with
// transport.ErrNoResponders when the server reports that no one
// subscribes to subject, with a *transport.SubjectError when subject is
// not a concrete subject, with ctx's error when ctx ends first, and with
// ErrClosed when the client closes first. Request is safe for concurrent
// use.
func (c *Client) Request(ctx context.Context, subject string, m *transport.Message) (*transport.Message, error) {
	if err := transport.ValidateSubject(subject); err != nil {
		return nil, err
	}
	inbox, rq, err := c.openInbox(ctx)
	if err != nil {
		return nil, err
	}
	return rq.Request(ctx, func(id string) error {
		return inbox.SendMsg(ctx, transport.RequestMessage(subject, inbox.Name(), id, m))
	})
}

// Reply sends resp to req's reply-to subject on this channel, with
// transport.HeaderInReplyTo set to req's msg-id (see
// [transport.Channel.Reply]); a responder replies on the channel it
// received the request on. It fails with transport.ErrNoReplyTo when req
// has no reply-to, else as SendMsg.
func (ch *Channel) Reply(ctx context.Context, req, resp *transport.Message) error {
	out, err := transport.ReplyMessage(req, resp)
	if err != nil {
		return err
	}
	return ch.SendMsg(ctx, out)
}

// UnmatchedReplies returns how many messages arrived on the client's
// inbox that no request waited for: replies to requests that had given up
// (their ctx ended), duplicates, and strays.
func (c *Client) UnmatchedReplies() uint64 { return c.req.unmatched.Load() }

// openInbox returns the client's inbox and its requester, opening the
// inbox and starting its reader on first use.
func (c *Client) openInbox(ctx context.Context) (*Channel, *reqrep.Requester[*transport.Message], error) {
	r := &c.req
	if err := r.mu.Lock(ctx); err != nil {
		return nil, nil, err
	}
	defer r.mu.Unlock()
	if r.inbox != nil {
		return r.inbox, r.rq, nil
	}
	rq := reqrep.New(reqrep.Config[*transport.Message]{NoResponders: transport.ErrNoResponders, Fields: replyFields, Unmatched: &r.unmatched})
	inbox, err := c.Channel(ctx, rq.Inbox())
	if err != nil {
		return nil, nil, fmt.Errorf("client: opening the request inbox: %w", err)
	}
	c.mu.Lock()
	alive := c.status != StatusClosed
	if alive {
		c.wg.Add(1) // before Shutdown waits for wg: it marks the client closed first, under c.mu
	}
	c.mu.Unlock()
	if !alive {
		return nil, nil, ErrClosed
	}
	r.inbox, r.rq = inbox, rq
	go c.readInbox(inbox, rq)
	return inbox, rq, nil
}

// replyFields returns what a requester matches a reply by.
func replyFields(m *transport.Message) (inReplyTo, status string) {
	return m.InReplyTo(), m.Header.Get(transport.HeaderStatus)
}

// readInbox reads the inbox and hands each reply to its request, until the
// client closes or the inbox fails; then it fails the requests still
// waiting and lets a later Request open a new inbox. Gap notices are
// skipped: the requests whose replies were lost wait until their ctx ends.
func (c *Client) readInbox(inbox *Channel, rq *reqrep.Requester[*transport.Message]) {
	defer c.wg.Done()
	rq.Read(func() (*transport.Message, error) { return inbox.ReceiveMsg(c.ctx) },
		func(err error) bool { return errors.Is(err, transport.ErrGap) },
		func(err error) error { return c.inboxEnded(inbox, err) })
}

// inboxEnded forgets the inbox that ended with err and returns the error
// its requests fail with.
func (c *Client) inboxEnded(inbox *Channel, err error) error {
	r := &c.req
	_ = r.mu.Lock(context.Background()) // never fails: no deadline
	if r.inbox == inbox {
		r.inbox, r.rq = nil, nil
	}
	r.mu.Unlock()
	if c.ctx.Err() != nil {
		err = ErrClosed
	} else {
		_ = inbox.Close()
	}
	return fmt.Errorf("client: the request inbox %s ended before the reply came: %w", inbox.Name(), err)
}
