package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/quicmsg/quicmsg/transport"
)

// ResumeFailedError reports a session the server would not resume after a
// connection loss: its resume window had passed, the server had restarted,
// the token was refused, or one side's resume state claimed what the other
// never sent. The messages that had been written to the lost connection
// without the server acknowledging them may or may not have been
// delivered: they are listed here, in order per channel name, and are not
// sent again. What the connection never wrote, and what waited in the
// reconnect buffer, goes out on the new session that the client opens at
// once. It comes in an [EventResumeFailed] event; its messages are counted
// in Stats.MessagesUnacked and, like every message whose delivery is
// unknown, in Stats.MessagesInDoubt.
type ResumeFailedError struct {
	Err     error                                // why: a *transport.ResumeError
	Unacked map[string][]transport.UnsentMessage // per channel name, in the order sent; the Data must not be modified
}

// Messages returns how many unacknowledged messages e lists.
func (e *ResumeFailedError) Messages() int {
	n := 0
	for _, m := range e.Unacked {
		n += len(m)
	}
	return n
}

func (e *ResumeFailedError) Error() string {
	return fmt.Sprintf("client: session not resumed, a new one begins; %d unacknowledged messages (on %d channels) may not have been delivered and are not sent again: %v",
		e.Messages(), len(e.Unacked), e.Err)
}

func (e *ResumeFailedError) Unwrap() error { return e.Err }

// keepToken records, once conn has ended, the token that resumes its
// session, and reports whether the session can be resumed: resumption is
// not disabled, and the server acknowledged messages and issued a token.
// The caller holds handoff.
func (c *Client) keepToken(conn *transport.Conn) bool {
	c.token = nil
	if c.cfg.DisableResume || !conn.AcksEnabled() {
		return false
	}
	tok, ok := conn.ResumeToken()
	if !ok {
		return false
	}
	c.token = &tok
	return true
}

// keepCount records the received count of ch, closed while the client is
// reconnecting, for the resume state: the server may still count messages
// on it as delivered. The caller holds handoff.
func (c *Client) keepCount(ch *Channel) {
	if c.token == nil || c.Conn() != nil {
		return
	}
	if c.gone == nil {
		c.gone = make(map[string]uint64)
	}
	c.gone[ch.name] = ch.recvd.Load()
}

// connect makes one connection to addr for the reconnect loop. It resumes
// the session when it can; when the server refuses (other than because
// the session is still attached, which is retried), it reports the
// refusal and opens a new session at once.
func (c *Client) connect(ctx context.Context, addr string) (conn *transport.Conn, resumed bool, err error) {
	c.handoff.Lock()
	tok := c.token
	c.handoff.Unlock()
	if tok != nil {
		conn, err = c.resume(ctx, addr, *tok)
		var re *transport.ResumeError
		switch {
		case err == nil:
			return conn, true, nil
		case !errors.As(err, &re) || errors.Is(err, transport.ErrSessionAttached):
			return nil, false, err
		}
		c.handoff.Lock()
		c.startOver(re)
		c.handoff.Unlock()
	}
	conn, err = c.dialOnce(ctx, addr, c.earlyNames())
	if err != nil {
		return nil, false, err
	}
	select {
	case <-conn.Ready():
		c.headers.Store(conn.HeadersEnabled())
	default:
		// 0-RTT: learnt once the server's HELLO is in (drainBuf).
	}
	c.handoff.Lock()
	c.startOver(nil)
	c.handoff.Unlock()
	return conn, false, nil
}

// resume dials addr presenting tok, exchanges the resume state with the
// server and settles every channel's held messages by the server's
// counts. Refusals, by the server or by this side, are a
// *transport.ResumeError. The dial is a full handshake (no 0-RTT): the
// messages sent again must go before anything new.
func (c *Client) resume(ctx context.Context, addr string, tok transport.ResumeToken) (*transport.Conn, error) {
	conn, err := c.dialResume(ctx, addr, tok)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.exchangeTimeout())
	defer cancel()
	// A server that finds this side's state impossible closes the
	// connection: the error is then a *transport.ResumeError.
	peer, err := conn.PeerResumeState(ctx)
	if err == nil {
		err = c.settleResume(conn, peer)
	}
	if err == nil {
		c.headers.Store(conn.HeadersEnabled())
	}
	if err != nil {
		_ = conn.CloseWithError(transport.CodeNoError, "")
		return nil, err
	}
	return conn, nil
}

// dialResume dials addr asking to resume tok's session and sends the
// client's resume state.
func (c *Client) dialResume(ctx context.Context, addr string, tok transport.ResumeToken) (*transport.Conn, error) {
	tc := c.cfg.Transport
	tc.Resume = &tok
	// A server that refuses, or answers with a new session, makes this a
	// *transport.ResumeError.
	conn, err := transport.Dial(ctx, addr, c.tls, &tc)
	if err != nil {
		return nil, err
	}
	c.handoff.Lock()
	// The server issued the session's next token with its HELLO: the one
	// presented is spent.
	if next, ok := conn.ResumeToken(); ok {
		c.token = &next
	}
	recv := c.receivedCounts()
	c.handoff.Unlock()
	if err := conn.SendResumeState(recv); err != nil {
		_ = conn.CloseWithError(transport.CodeNoError, "")
		return nil, err
	}
	return conn, nil
}

// receivedCounts returns how many messages each channel received over the
// session, for the resume state. Every channel's rx is retired, so the
// counts are final. The caller holds handoff.
func (c *Client) receivedCounts() map[string]uint64 {
	recv := maps.Clone(c.gone)
	if recv == nil {
		recv = make(map[string]uint64)
	}
	for _, ch := range c.channelList() {
		recv[ch.name] = ch.recvd.Load()
	}
	return recv
}

// settleResume checks the server's resume state against what each channel
// wrote and, if every claim is possible, puts back what the server has not
// received, to be sent first on conn. An impossible claim closes conn with
// CodeResumeClaim and is returned as a *transport.ResumeError.
func (c *Client) settleResume(conn *transport.Conn, peer map[string]uint64) error {
	c.handoff.Lock()
	defer c.handoff.Unlock()
	if c.ctx.Err() != nil {
		return ErrClosed
	}
	chans := c.channelList()
	slices.SortFunc(chans, func(a, b *Channel) int { return strings.Compare(a.name, b.name) })
	for _, ch := range chans {
		if err := ch.checkClaim(peer[ch.name]); err != nil {
			_ = conn.RejectResume(err.Error())
			return &transport.ResumeError{ID: conn.SessionID(), Err: transport.ErrResumeClaim, Detail: err.Error()}
		}
	}
	for _, ch := range chans {
		ch.resume(peer[ch.name])
	}
	c.gone = nil
	return nil
}

// startOver begins a new session: every channel's counts restart, and
// what was held for a resume is reported, when why (the refusal) is set,
// in an EventResumeFailed. The caller holds handoff.
func (c *Client) startOver(why *transport.ResumeError) {
	c.token, c.gone = nil, nil
	unacked := make(map[string][]transport.UnsentMessage)
	n := 0
	for _, ch := range c.channelList() {
		if held := ch.startOver(); len(held) > 0 {
			unacked[ch.name] = held
			n += len(held)
		}
	}
	c.inDoubt.Add(uint64(n))
	if why == nil {
		return // nothing is held without a resume to wait for
	}
	c.unacked.Add(uint64(n))
	c.emit(Event{Type: EventResumeFailed, Addr: c.addrs[c.currentAddr()], Err: &ResumeFailedError{Err: why, Unacked: unacked}})
}

// exchangeTimeout bounds the resume state exchange, which takes one round
// trip after the HELLO exchange.
func (c *Client) exchangeTimeout() time.Duration {
	return cmp.Or(c.cfg.Transport.HandshakeTimeout, transport.DefaultHandshakeTimeout)
}
