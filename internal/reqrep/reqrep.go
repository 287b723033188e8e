// Package reqrep is the requester side of request/reply, shared by
// transport.Conn and client.Client: an inbox subject per connection or
// client, a message ID per request, and the dispatch of each reply, by the
// request's ID it carries in its in-reply-to header, to the request that
// waits for it.
//
// It is generic in the message type so that the transport package, which
// it cannot import, can use it.
package reqrep

import (
	"context"
	"crypto/rand"
	"strconv"
	"sync"
	"sync/atomic"
)

// InboxPrefix starts every inbox subject.
const InboxPrefix = "_INBOX."

// StatusNoResponders is the status header value of the reply a server
// sends when no one subscribes to a request's subject (the value of
// transport.StatusNoResponders).
const StatusNoResponders = "503"

// inboxTokenLen is the length of an inbox's random token: 22 base62
// characters hold about 131 bits.
const inboxTokenLen = 22

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewInbox returns a fresh inbox subject: InboxPrefix and 22 random base62
// characters, unguessable, so that no one else subscribes to it by chance.
func NewInbox() string {
	b := make([]byte, 0, len(InboxPrefix)+inboxTokenLen)
	b = append(b, InboxPrefix...)
	var r [1]byte
	for len(b) < cap(b) {
		_, _ = rand.Read(r[:]) // crypto/rand.Read never fails
		// 248 = 4*62: rejecting the rest keeps the characters uniform.
		if r[0] < 248 {
			b = append(b, base62[r[0]%62])
		}
	}
	return string(b)
}

// result is what a waiting request receives: a reply or an error.
type result[M any] struct {
	msg M
	err error
}

// Config says how a Requester reads its messages.
type Config[M any] struct {
	// NoResponders is the error of a request whose reply has status
	// StatusNoResponders.
	NoResponders error
	// Fields returns a reply's in-reply-to and status headers.
	Fields func(m M) (inReplyTo, status string)
	// Unmatched, if not nil, counts the replies no request waited for. It
	// belongs to the caller, which may share it among Requesters.
	Unmatched *atomic.Uint64
}

// Requester correlates the requests of one inbox with their replies. Its
// waiter map holds one entry per request in flight: it is bounded by the
// callers, each of which waits for its own request and removes its entry
// when it stops waiting. All methods are safe for concurrent use.
type Requester[M any] struct {
	inbox string
	cfg   Config[M]

	mu      sync.Mutex
	next    uint64                    // the last ID given out
	waiters map[string]chan result[M] // by request ID; each channel has room for one result
	err     error                     // set by Fail: every request fails with it

	unmatched atomic.Uint64
}

// New returns a Requester for a fresh inbox (NewInbox).
func New[M any](cfg Config[M]) *Requester[M] {
	return &Requester[M]{
		inbox:   NewInbox(),
		cfg:     cfg,
		waiters: make(map[string]chan result[M]),
	}
}

// Inbox returns the subject replies are sent to.
func (r *Requester[M]) Inbox() string { return r.inbox }

// Unmatched returns how many replies were discarded because no request
// waited for them (it gave up, or the ID was never given out).
func (r *Requester[M]) Unmatched() uint64 { return r.unmatched.Load() }

// InFlight returns how many requests wait for their reply.
func (r *Requester[M]) InFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiters)
}

// Call is one request waiting for its reply.
type Call[M any] struct {
	r  *Requester[M]
	id string
	ch chan result[M]
}

// Begin gives out the next message ID (a decimal counter) and registers
// a waiter for its reply. The caller sends the request with that ID and
// must call Call.Done when it stops waiting. Begin fails with the error
// given to Fail once that was called.
func (r *Requester[M]) Begin() (*Call[M], error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	r.next++
	c := &Call[M]{r: r, id: strconv.FormatUint(r.next, 10), ch: make(chan result[M], 1)}
	r.waiters[c.id] = c.ch
	return c, nil
}

// ID returns the request's message ID.
func (c *Call[M]) ID() string { return c.id }

// Wait waits for the reply, until ctx ends (then it returns ctx's error).
// A reply with status StatusNoResponders returns Config.NoResponders;
// after Fail, Wait returns Fail's error.
func (c *Call[M]) Wait(ctx context.Context) (M, error) {
	select {
	case res := <-c.ch:
		return res.msg, res.err
	case <-ctx.Done():
		var zero M
		return zero, ctx.Err()
	}
}

// Done removes the call's waiter: a reply that arrives later is counted
// as unmatched and discarded. Done is idempotent.
func (c *Call[M]) Done() {
	c.r.mu.Lock()
	if c.r.waiters[c.id] == c.ch {
		delete(c.r.waiters, c.id)
	}
	c.r.mu.Unlock()
}

// Request sends a request with send, which is given the request's
// message ID, and waits for its reply until ctx ends (see Call.Wait).
func (r *Requester[M]) Request(ctx context.Context, send func(id string) error) (M, error) {
	var zero M
	c, err := r.Begin()
	if err != nil {
		return zero, err
	}
	defer c.Done()
	if err := send(c.ID()); err != nil {
		return zero, err
	}
	return c.Wait(ctx)
}

// Read hands every message recv returns to Dispatch, until recv fails
// with an error that skip does not accept; then it fails the requests
// (Fail) with failure(err) and returns.
func (r *Requester[M]) Read(recv func() (M, error), skip func(error) bool, failure func(error) error) {
	for {
		m, err := recv()
		switch {
		case err == nil:
			r.Dispatch(m)
		case !skip(err):
			r.Fail(failure(err))
			return
		}
	}
}

// Dispatch hands m, a message that arrived on the inbox, to the request
// whose ID is its in-reply-to, and reports whether one waited for it; if
// none did, m is counted as unmatched. With status StatusNoResponders the
// request fails with Config.NoResponders.
func (r *Requester[M]) Dispatch(m M) bool {
	inReplyTo, status := r.cfg.Fields(m)
	r.mu.Lock()
	ch, ok := r.waiters[inReplyTo]
	delete(r.waiters, inReplyTo)
	r.mu.Unlock()
	if !ok {
		r.unmatched.Add(1)
		if r.cfg.Unmatched != nil {
			r.cfg.Unmatched.Add(1)
		}
		return false
	}
	res := result[M]{msg: m}
	if status == StatusNoResponders {
		var zero M
		res = result[M]{msg: zero, err: r.cfg.NoResponders}
	}
	ch <- res // room for one, and the waiter was removed: never blocks
	return true
}

// Fail ends every request in flight, and every later Begin, with err: the
// inbox can no longer receive (its connection or client closed). Only the
// first call's err is kept.
func (r *Requester[M]) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	for id, ch := range r.waiters {
		delete(r.waiters, id)
		ch <- result[M]{err: r.err}
	}
}
