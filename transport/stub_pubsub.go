package transport

// Contract for issue 11 (headers, gap notices, subjects, channel options,
// request/reply). Bodies are placeholders; the owners replace this file with
// real implementations in headers.go, gap.go, subject.go, request.go.

import (
	"context"
	"errors"
)

// Well-known header keys. Keys are case-sensitive; these are lowercase.
const (
	// HeaderSubject carries a message's concrete subject when it differs
	// from the name of the channel it travels on. It is not exposed in
	// Message.Header: it is Message.Subject.
	HeaderSubject = "subject"
	// HeaderReplyTo is the subject a reply goes to.
	HeaderReplyTo = "reply-to"
	// HeaderMsgID identifies a message; requests carry one.
	HeaderMsgID = "msg-id"
	// HeaderInReplyTo is the msg-id of the request a reply answers.
	HeaderInReplyTo = "in-reply-to"
	// HeaderTraceparent carries a W3C trace context.
	HeaderTraceparent = "traceparent"
	// HeaderStatus carries a status code from the server, such as
	// StatusNoResponders.
	HeaderStatus = "status"
)

// StatusNoResponders is the HeaderStatus value of the reply the relay sends
// when a request's subject has no subscriber.
const StatusNoResponders = "503"

// Header limits.
const (
	// MaxHeaderBytes is the largest encoded header block of one message.
	MaxHeaderBytes = 8192
	// MaxHeaderFields is the most header fields one message carries.
	MaxHeaderFields = 64
)

// HeaderField is one key/value pair.
type HeaderField struct {
	Key, Value string
}

// Header is a message's headers, in order. A key may appear more than once.
type Header []HeaderField

// Get returns the value of the first field with key, or "".
func (h Header) Get(key string) string { panic("contract") }

// Values returns the values of every field with key, in order.
func (h Header) Values(key string) []string { panic("contract") }

// Add appends a field.
func (h *Header) Add(key, value string) { panic("contract") }

// Set replaces every field with key by one with value (in the place of the
// first), or appends it.
func (h *Header) Set(key, value string) { panic("contract") }

// Del removes every field with key.
func (h *Header) Del(key string) { panic("contract") }

// Message is a message with its headers.
type Message struct {
	// Subject, on receive, is the message's concrete subject: the
	// HeaderSubject header when present, else the channel's name. On send,
	// a Subject that is non-empty and differs from the channel's name
	// publishes the message to that subject (carried in HeaderSubject); it
	// must be a concrete subject (no wildcard tokens).
	Subject string
	// Header holds the other headers, in order. HeaderSubject is not
	// allowed here (use Subject).
	Header Header
	// Data is the payload.
	Data []byte
	// ReplaySafe marks the message safe to process twice (send only); see
	// Channel.SendReplaySafe.
	ReplaySafe bool
}

// ReplyTo returns the HeaderReplyTo header.
func (m *Message) ReplyTo() string { panic("contract") }

// ID returns the HeaderMsgID header.
func (m *Message) ID() string { panic("contract") }

// GapReason says why messages were skipped.
type GapReason uint64

const (
	// GapSlowConsumer: the relay dropped messages because the
	// subscriber's queue was full (slow consumer policy "drop").
	GapSlowConsumer GapReason = 1
	// GapDisconnect: the relay discarded the subscriber's queue as it
	// disconnected it as a slow consumer.
	GapDisconnect GapReason = 2
	// GapBackplane: messages were lost between cluster nodes.
	GapBackplane GapReason = 3
)

// String returns "slow_consumer", "disconnect", "backplane" or
// "reason(N)".
func (r GapReason) String() string { panic("contract") }

// Gap is a notice, in order on a channel, that the sender skipped Missed
// messages at that point.
type Gap struct {
	Missed uint64
	Reason GapReason
}

// ErrGap matches every *GapError.
var ErrGap = errors.New("transport: messages missed")

// GapError is what Receive and ReceiveMsg return at the point of a gap
// notice. The channel stays usable: the next call returns the message
// after the gap.
type GapError struct {
	Channel string
	Gap
}

func (e *GapError) Error() string        { panic("contract") }
func (e *GapError) Is(target error) bool { return target == ErrGap }

// ErrHeadersUnsupported is returned when sending headers, a gap notice or
// channel options to a peer that did not offer the HEADERS extension.
var ErrHeadersUnsupported = errors.New("transport: the peer does not support headers")

// ErrWildcardSubject: a message cannot be published to a subject that holds
// a wildcard token ("*" or ">").
var ErrWildcardSubject = errors.New("transport: cannot publish to a wildcard subject")

// ErrInvalidSubject: a subject or subscription pattern is malformed.
var ErrInvalidSubject = errors.New("transport: invalid subject")

// SubjectError names the subject and the fault. It matches
// ErrWildcardSubject or ErrInvalidSubject.
type SubjectError struct {
	Subject string
	Reason  string
	Err     error
}

func (e *SubjectError) Error() string { panic("contract") }
func (e *SubjectError) Unwrap() error { return e.Err }

// HeaderError reports headers that break a limit or a rule (key syntax,
// MaxHeaderBytes, MaxHeaderFields, a reserved key).
type HeaderError struct {
	Key    string // the offending key, if one
	Reason string
}

func (e *HeaderError) Error() string { panic("contract") }

// IsWildcard reports whether subject has a "*" or ">" token.
func IsWildcard(subject string) bool { panic("contract") }

// ValidateSubject checks a subject messages are published to: a valid
// channel name without wildcard tokens.
func ValidateSubject(subject string) error { panic("contract") }

// ValidatePattern checks a subscription: a valid channel name; if it holds
// wildcard tokens, no token is empty and ">" is only the last one.
func ValidatePattern(pattern string) error { panic("contract") }

// MatchSubject reports whether the concrete subject matches pattern with
// NATS's semantics ("*" one token, ">" one or more trailing tokens).
func MatchSubject(pattern, subject string) bool { panic("contract") }

// ChannelOptions are carried in the channel header when non-zero.
type ChannelOptions struct {
	// Group is a queue group: subscribers of the same pattern in the same
	// group share its messages, each delivered to one member.
	Group string
}

// OpenChannelWith is OpenChannel with options.
func (c *Conn) OpenChannelWith(ctx context.Context, name string, opts ChannelOptions) (*Channel, error) {
	panic("contract")
}

// Options returns the options the channel was opened with (by either side).
func (ch *Channel) Options() ChannelOptions { panic("contract") }

// HeadersEnabled reports whether both sides offered the HEADERS extension.
func (c *Conn) HeadersEnabled() bool { panic("contract") }

// SendMsg sends m on the channel as Send does. It does not modify m nor
// keep it after returning.
func (ch *Channel) SendMsg(ctx context.Context, m *Message) error { panic("contract") }

// TrySendMsg is SendMsg without waiting, as TrySend.
func (ch *Channel) TrySendMsg(m *Message) error { panic("contract") }

// SendGap sends a gap notice: the peer's Receive returns a *GapError at
// this point of the channel.
func (ch *Channel) SendGap(ctx context.Context, g Gap) error { panic("contract") }

// ReceiveMsg returns the next message with its headers; at a gap notice it
// returns a *GapError.
func (ch *Channel) ReceiveMsg(ctx context.Context) (*Message, error) { panic("contract") }

// ShutdownWithError sends what the channels hold, waits (until ctx ends)
// for the peer to acknowledge it when acknowledgements are on, then closes
// the connection with code and reason.
func (c *Conn) ShutdownWithError(ctx context.Context, code ErrorCode, reason string) error {
	panic("contract")
}
