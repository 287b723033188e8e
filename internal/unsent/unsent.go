// Package unsent holds what the session and client packages share about
// the messages they keep while a channel has no connection to write to:
// how a kept message (a transport.UnsentMessage) is made from what the
// caller sent, how much it counts against a byte bound, and how it is
// written once a connection is there, so that a message keeps its subject
// and headers, and a gap notice stays a gap notice, across a detach and a
// resume.
package unsent

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/quicmsg/quicmsg/transport"
)

// GapCharge is what a kept gap notice counts against a byte bound: it has
// no payload, but a bound counted in bytes must still bound how many are
// kept.
const GapCharge = 16

// Of returns m, to be sent on the channel named channel, as a kept
// message. It shares m's memory: Own copies it before it is kept. A
// Subject equal to the channel's name is dropped, so that the message is
// plain (written as Send writes it) when it has no other header.
func Of(channel string, m *transport.Message) transport.UnsentMessage {
	u := transport.UnsentMessage{Data: m.Data, ReplaySafe: m.ReplaySafe, Header: m.Header}
	if m.Subject != channel {
		u.Subject = m.Subject
	}
	return u
}

// Own returns u with its own copy of the payload and header list, so that
// the caller of a send may reuse its message once the send returns.
func Own(u transport.UnsentMessage) transport.UnsentMessage {
	u.Data = append([]byte(nil), u.Data...)
	u.Header = slices.Clone(u.Header)
	if u.Gap != nil {
		g := *u.Gap
		u.Gap = &g
	}
	return u
}

// Size returns what u counts against a byte bound: its payload, its
// subject and its headers' keys and values, or GapCharge for a gap notice.
func Size(u transport.UnsentMessage) int {
	if u.Gap != nil {
		return GapCharge
	}
	n := len(u.Data) + len(u.Subject)
	for _, f := range u.Header {
		n += len(f.Key) + len(f.Value)
	}
	return n
}

// NeedsHeaders reports whether u can only be written to a peer that
// offered the HEADERS extension (transport.Conn.HeadersEnabled).
func NeedsHeaders(u transport.UnsentMessage) bool {
	return u.Gap != nil || u.Subject != "" || len(u.Header) > 0
}

// Check returns why u cannot be kept for the channel named channel, whose
// last connection's peer supported headers or not: a publish to a
// wildcard subject (transport.ValidateSubject), headers or a gap notice
// for a peer without them (transport.ErrHeadersUnsupported), a gap notice
// SendGap would refuse (transport.ErrInvalidGap). It checks what can be known without a connection; the
// write checks the rest.
func Check(channel string, u transport.UnsentMessage, headers bool) error {
	switch {
	case u.Gap != nil && (u.Gap.Missed == 0 || u.Gap.Missed >= 1<<62 || uint64(u.Gap.Reason) >= 1<<62):
		return fmt.Errorf("channel %q: %w: Missed %d must be 1..2^62-1 and Reason %d below 2^62", channel, transport.ErrInvalidGap, u.Gap.Missed, uint64(u.Gap.Reason))
	case NeedsHeaders(u) && !headers:
		return fmt.Errorf("channel %q: %w", channel, transport.ErrHeadersUnsupported)
	case u.Gap != nil:
		return nil
	}
	return transport.ValidateSubject(subjectOf(channel, u))
}

func subjectOf(channel string, u transport.UnsentMessage) string {
	if u.Subject != "" {
		return u.Subject
	}
	return channel
}

// Send writes u on ch: a gap notice with SendGap, a message with subject
// or headers with SendMsg (TrySendMsg when !block), a plain one as Send,
// SendReplaySafe or TrySend write it, byte for byte as before headers
// existed. A gap notice is not written without waiting: it fails with an
// error matching transport.ErrWouldBlock then.
func Send(ctx context.Context, ch *transport.Channel, u transport.UnsentMessage, block bool) error {
	switch {
	case u.Gap != nil && !block:
		return fmt.Errorf("channel %q: a gap notice waits to be written first, by a send that may wait: %w", ch.Name(), transport.ErrWouldBlock)
	case u.Gap != nil:
		return ch.SendGap(ctx, *u.Gap)
	case NeedsHeaders(u):
		m := &transport.Message{Subject: u.Subject, Header: u.Header, Data: u.Data, ReplaySafe: u.ReplaySafe}
		if !block {
			return ch.TrySendMsg(m)
		}
		return ch.SendMsg(ctx, m)
	case !block:
		return ch.TrySend(u.Data)
	case u.ReplaySafe:
		return ch.SendReplaySafe(ctx, u.Data)
	}
	return ch.Send(ctx, u.Data)
}

// Refused reports whether err, from writing a kept message on a live
// channel, refuses that message alone, while the channel goes on: the
// peer takes no message that large, or no headers, or the message breaks
// a header or subject rule that Check does not check. The caller counts
// the message as lost instead of writing it again.
func Refused(err error) bool {
	var he *transport.HeaderError
	var se *transport.SubjectError
	return errors.Is(err, transport.CodeMessageTooLarge) || errors.Is(err, transport.ErrHeadersUnsupported) ||
		errors.As(err, &he) || errors.As(err, &se)
}
