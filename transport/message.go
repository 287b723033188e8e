package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// outFrame is a frame to queue on a channel: a message, with a header
// block when flags has wire.FlagHeaders, or a gap notice (wire.FlagGap).
type outFrame struct {
	flags    byte
	data     []byte
	subject  string // the subject field of the header block; "" for none
	hdr      Header // the other fields
	blockLen int    // the header block's size, without its length prefix
	gap      Gap
}

// payloadLen is the frame's Length.
func (f *outFrame) payloadLen() int {
	switch {
	case f.flags&wire.FlagGap != 0:
		return wire.VarintSize(f.gap.Missed) + wire.VarintSize(uint64(f.gap.Reason))
	case f.flags&wire.FlagHeaders != 0:
		return wire.VarintSize(uint64(f.blockLen)) + f.blockLen + len(f.data)
	}
	return len(f.data)
}

// appendTo appends the frame, whose payload is size bytes.
func (f *outFrame) appendTo(b []byte, size int) []byte {
	switch {
	case f.flags&wire.FlagGap != 0:
		return wire.AppendGap(b, f.gap.Missed, uint64(f.gap.Reason))
	case f.flags&wire.FlagHeaders == 0:
		return wire.AppendMessage(b, f.flags, f.data)
	}
	b = wire.AppendFrameHeader(b, f.flags, size)
	b = appendHeaderBlock(b, f.blockLen, f.subject, f.hdr)
	return append(b, f.data...)
}

// msgFrame checks m and returns the frame that carries it on ch: a plain
// message frame when m has no header and no subject other than ch's name.
func (ch *Channel) msgFrame(m *Message) (outFrame, error) {
	f := outFrame{data: m.Data}
	if m.ReplaySafe {
		f.flags = wire.FlagReplaySafe
	}
	if m.Subject != "" && m.Subject != ch.name {
		if err := ValidateSubject(m.Subject); err != nil {
			return f, err
		}
		f.subject = m.Subject
	} else if ch.wildcard {
		return f, wildcardError(ch.name)
	}
	if f.subject == "" && len(m.Header) == 0 {
		return f, nil
	}
	n, err := headerBlockLen(f.subject, m.Header)
	if err != nil {
		return f, err
	}
	f.flags |= wire.FlagHeaders
	f.hdr, f.blockLen = m.Header, n
	return f, nil
}

// SendMsg sends m on the channel as Send does: its Data, and, when m has
// headers or a Subject other than the channel's name, its header block
// (which needs a peer that offered the HEADERS extension, else it fails
// with ErrHeadersUnsupported; after DialEarly it waits for the peer's
// HELLO to know). A message without either is sent exactly as Send sends
// it. It fails with a [*SubjectError] for a Subject that is not a concrete
// subject, or when the channel's name is a wildcard pattern and m has no
// concrete Subject, and with a [*HeaderError] for headers that break a
// rule or a limit; the channel stays usable. It does not modify m nor keep
// it after returning. Safe for concurrent use.
func (ch *Channel) SendMsg(ctx context.Context, m *Message) error {
	return ch.sendMsg(ctx, m, true)
}

// TrySendMsg is SendMsg without waiting, as TrySend; before the peer's
// HELLO arrived (after DialEarly), a message with headers fails with
// ErrWouldBlock.
func (ch *Channel) TrySendMsg(m *Message) error {
	return ch.sendMsg(context.Background(), m, false)
}

func (ch *Channel) sendMsg(ctx context.Context, m *Message, block bool) error {
	f, err := ch.msgFrame(m)
	if err != nil {
		return err
	}
	return ch.enqueue(ctx, &f, block)
}

// SendGap sends a gap notice: the peer's Receive returns a *GapError at
// this point of the channel. It counts as a message in the channel's order
// and acknowledgements, and waits as Send does. It fails with
// ErrHeadersUnsupported when the peer did not offer the HEADERS extension,
// and with ErrInvalidGap for a notice of no message.
func (ch *Channel) SendGap(ctx context.Context, g Gap) error {
	if err := g.check(); err != nil {
		return err
	}
	return ch.enqueue(ctx, &outFrame{flags: wire.FlagGap, gap: g}, true)
}

// Message returns the message u holds, to send again with SendMsg; nil
// for a gap notice (send u.Gap with SendGap).
func (u UnsentMessage) Message() *Message {
	if u.Gap != nil {
		return nil
	}
	return &Message{Subject: u.Subject, Header: u.Header, Data: u.Data, ReplaySafe: u.ReplaySafe}
}

// ReceiveMsg returns the next message with its headers; at a gap notice it
// returns a *GapError and the channel stays usable. Subject is the
// message's subject header, or the channel's name when it has none; Header
// is nil for a message without headers. Errors are those of Receive.
func (ch *Channel) ReceiveMsg(ctx context.Context) (*Message, error) {
	m := &Message{}
	if err := ch.ReceiveInto(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// ReceiveInto is ReceiveMsg into m, which the caller may reuse: a receive
// loop that keeps one Message saves an allocation per message. Every field
// of m is overwritten; m.Data is a new slice the caller owns (the old one
// is not reused: handlers may keep it). On an error m is left as it was.
// It panics if m is nil, before it takes a message.
//
// It is receive written out (m is set only when it succeeds), not a call of
// it: a loop around ReceiveInto on an idle channel waits one frame less
// deep, and keeps a smaller stack (see receive).
func (ch *Channel) ReceiveInto(ctx context.Context, m *Message) error {
	if m == nil {
		panic("transport: ReceiveInto with a nil *Message")
	}
	rx := &ch.rx
	rx.mu.Lock()
	if err := rx.err; err != nil {
		rx.mu.Unlock()
		return err
	}
	rx.in.ctx = ctx
	var werr error
	if rx.large == nil && len(rx.sr.buffered()) == 0 {
		werr = rx.sr.fill(1) // readNext's first read, on an empty buffer
	}
	_, err := ch.receiveNext(m, werr)
	rx.mu.Unlock()
	return err
}

// HeadersEnabled reports whether both sides offered the HEADERS extension:
// then messages may carry headers and subjects, gap notices and channel
// options. Before Ready is closed (after DialEarly), false.
func (c *Conn) HeadersEnabled() bool { return c.headersOn.Load() }

// waitHeaders reports, once the HELLO exchange is complete, whether frames
// that need the HEADERS extension may be sent; before it is, it waits
// (with block) or fails with ErrWouldBlock.
func (c *Conn) waitHeaders(ctx context.Context, block bool) error {
	select {
	case <-c.ready:
	default:
		if !block {
			return ErrWouldBlock
		}
		select {
		case <-c.ready:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return context.Cause(c.ctx)
		}
	}
	if !c.headersOn.Load() {
		return ErrHeadersUnsupported
	}
	return nil
}

// ErrHeadersUnsupported is returned when sending headers, a gap notice or
// channel options to a peer that did not offer the HEADERS extension.
var ErrHeadersUnsupported = errors.New("transport: the peer does not support headers")

// ErrInvalidGroup is returned by OpenChannelWith for a queue group name
// that is not 1 to 255 bytes of visible ASCII other than '.', '*', '>'.
var ErrInvalidGroup = errors.New("transport: invalid queue group name")

// ChannelOptions are carried in the channel header when non-zero.
type ChannelOptions struct {
	// Group is a queue group: subscribers of the same pattern in the same
	// group share its messages, each delivered to one member.
	Group string
	// Priority is the channel's send priority on its connection, applied
	// by both ends; the zero Priority keeps the default (see [Priority]).
	Priority Priority
}

// OpenChannelWith is OpenChannel with options. Zero options open the
// channel as OpenChannel does. A Group needs a peer that offered the
// HEADERS extension (else ErrHeadersUnsupported; after DialEarly it waits
// for the peer's HELLO to know); a Priority alone does not: to such a peer
// the channel is opened with a plain header and only this side applies
// the priority. An invalid Group fails with an error wrapping
// ErrInvalidGroup, an urgency out of range with one wrapping
// ErrInvalidPriority.
func (c *Conn) OpenChannelWith(ctx context.Context, name string, opts ChannelOptions) (*Channel, error) {
	if opts == (ChannelOptions{}) {
		return c.OpenChannel(ctx, name)
	}
	if err := c.checkOptions(name, opts); err != nil {
		return nil, err
	}
	err := c.waitHeaders(ctx, true)
	sendOpts := true
	if errors.Is(err, ErrHeadersUnsupported) && opts.Group == "" {
		err, sendOpts = nil, false
	}
	if err != nil {
		return nil, err
	}
	if c.earlyData {
		if err := c.waitHandshake(ctx, true); err != nil {
			return nil, err
		}
	}
	return c.openChannel(ctx, name, opts, sendOpts)
}

// checkOptions validates the name and options of a channel to open.
func (c *Conn) checkOptions(name string, opts ChannelOptions) error {
	if err := wire.ValidateName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	if opts.Group != "" {
		if err := wire.ValidateGroup(opts.Group); err != nil {
			var me *wire.MalformedError
			errors.As(err, &me)
			return fmt.Errorf("%w: %s", ErrInvalidGroup, me.Reason)
		}
	}
	return opts.Priority.validate()
}

// Options returns the options the channel was opened with (by either side).
func (ch *Channel) Options() ChannelOptions { return ch.opts }
