package cluster

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/quicmsg/quicmsg/transport"
)

// Forward publishes m, published on this node, to NATS. It does not wait
// for the network: while NATS is unreachable nats.go buffers up to
// Config.ReconnectBufSize bytes. A message that NATS cannot take is
// counted in Stats.Dropped, logged, and reported as a *ForwardError (with
// a *TooLargeError cause past max_payload).
//
// Until the first connection to NATS (nats.RetryOnFailedConnect) nothing
// is buffered: Forward fails with ErrNotConnectedYet (DropNATSDown).
//
// Messages go on the main connection, whose echo is off: NATS never hands
// them back to this node's plain subscriptions, only to its queue
// subscriptions (on the queue connection). A message's headers travel as
// NATS headers with HeaderOrigin added; a message without headers goes
// without any, which spares every receiving node from parsing them.
//
// A request (m has transport.HeaderReplyTo) that reached no local
// subscription (routed is 0) goes with a NATS reply subject of this
// node's, so that when no node has a subscriber for it the NATS server
// says so and the requester gets the relay's "no responders" reply. One
// that reached a local subscription goes without: it has a responder.
func (b *Backplane) Forward(m *transport.Message, routed int) error {
	if b.ctx.Err() != nil {
		return b.refuse(m.Subject, DropClosed, ErrClosed)
	}
	if err := checkCarried(m); err != nil {
		return b.refuse(m.Subject, DropInvalid, err)
	}
	if !b.joined() {
		return b.refuse(m.Subject, DropNATSDown, ErrNotConnectedYet)
	}
	msg, err := b.natsMsg(m, routed)
	if err != nil {
		return b.refuse(m.Subject, DropInvalid, err)
	}
	if msg.Header == nil {
		err = b.nc.Publish(msg.Subject, msg.Data)
	} else {
		err = b.nc.PublishMsg(&msg)
	}
	if err == nil {
		b.published.Add(1)
		b.noteBuffered()
		return nil
	}
	reason := reasonOf(err)
	if reason == DropTooLarge {
		err = &TooLargeError{Size: int64(len(m.Data) + headerSize(msg.Header)), Limit: b.nc.MaxPayload()}
	}
	return b.refuse(m.Subject, reason, err)
}

// natsMsg converts m for NATS (see Forward): no NATS headers when m has
// none, else m's and HeaderOrigin; the reply subject of a request that
// reached no local subscription.
func (b *Backplane) natsMsg(m *transport.Message, routed int) (nats.Msg, error) {
	msg := nats.Msg{Subject: m.Subject, Data: m.Data}
	if len(m.Header) > 0 {
		msg.Header = make(nats.Header, len(m.Header)+1)
		for _, f := range m.Header {
			if strings.ContainsAny(f.Value, "\r\n") {
				return msg, fmt.Errorf("header %q: the value holds a line break, which NATS headers cannot carry", f.Key)
			}
			if f.Key != HeaderOrigin {
				msg.Header[f.Key] = append(msg.Header[f.Key], f.Value)
			}
		}
		msg.Header[HeaderOrigin] = []string{b.cfg.NodeID}
	}
	if rt := m.ReplyTo(); rt != "" && routed == 0 && b.attached.Load() {
		if err := checkRequest(m); err != nil {
			return msg, err
		}
		msg.Reply = b.noRespSubject(rt, m.ID())
	}
	return msg, checkControlLine(msg.Subject, msg.Reply)
}

func reasonOf(err error) DropReason {
	switch {
	case errors.Is(err, nats.ErrReconnectBufExceeded):
		return DropNATSDown
	case errors.Is(err, nats.ErrMaxPayload):
		return DropTooLarge
	case errors.Is(err, nats.ErrBadSubject):
		return DropInvalid
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining):
		return DropClosed
	}
	return DropError
}

// headerSize is the size of h as NATS encodes it.
func headerSize(h nats.Header) int {
	if len(h) == 0 {
		return 0 // the message goes without headers
	}
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n
}

// refuse counts and logs a message that did not leave this node and
// returns its ForwardError.
func (b *Backplane) refuse(subject string, reason DropReason, err error) error {
	b.drop(reason, subject, err)
	return &ForwardError{Subject: subject, Reason: reason, Err: err}
}

// drop counts a dropped message and logs it, at most once per
// DropLogInterval per reason.
func (b *Backplane) drop(reason DropReason, subject string, err error) {
	b.dropped[slices.Index(dropReasons[:], reason)].Add(1)
	b.logDrop(reason, subject, err)
}

func (b *Backplane) logDrop(reason DropReason, subject string, err error) {
	i := slices.Index(dropReasons[:], reason)
	now := time.Now().UnixNano()
	last := b.lastLog[i].Load()
	if now-last < int64(DropLogInterval) || !b.lastLog[i].CompareAndSwap(last, now) {
		return
	}
	b.log.Warn("cluster: message dropped", "reason", string(reason), "subject", subject, "err", err,
		"dropped_total", b.Stats().Dropped[reason])
}

// toMessage converts a message from NATS. Headers come in the order of
// their keys (NATS keeps the order of the values of one key, not across
// keys); HeaderOrigin is left out.
func toMessage(msg *nats.Msg) transport.Message {
	m := transport.Message{Subject: msg.Subject, Data: msg.Data}
	if len(msg.Header) == 0 {
		return m
	}
	keys := make([]string, 0, len(msg.Header))
	for k := range msg.Header {
		if k != HeaderOrigin {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range msg.Header[k] {
			m.Header.Add(k, v)
		}
	}
	return m
}

// noRespPrefix is the prefix of the NATS reply subjects of this node's
// requests.
func (b *Backplane) noRespPrefix() string { return "_QM.NR." + b.cfg.NodeID + "." }

// noResponders turns the NATS server's "no responders" status for a
// request of this node into the relay's reply to the requester: the
// reply subject's last token holds the request's reply-to and msg-id.
// Replies from responders go to the reply-to header, never here.
func (b *Backplane) noResponders(msg *nats.Msg) {
	if !b.enter() {
		return
	}
	defer b.leave()
	if msg.Header.Get("Status") != "503" {
		return
	}
	tok := msg.Subject[strings.LastIndexByte(msg.Subject, '.')+1:]
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	replyTo, id, ok := strings.Cut(string(raw), "\x00")
	if err != nil || !ok {
		b.log.Debug("NATS no responders status for an unknown reply subject", "subject", msg.Subject)
		return
	}
	b.noResp503.Add(1)
	reply := &transport.Message{Subject: replyTo}
	reply.Header.Add(transport.HeaderStatus, transport.StatusNoResponders)
	reply.Header.Add(transport.HeaderInReplyTo, id)
	_, _ = b.relay.Publish(b.ctx, nil, reply)
}
