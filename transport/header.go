package transport

import (
	"errors"
	"fmt"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// Well-known header keys. Keys are case-sensitive; these are lowercase.
const (
	// HeaderSubject carries a message's concrete subject when it differs
	// from the name of the channel it travels on. It is not exposed in
	// Message.Header: it is Message.Subject.
	HeaderSubject = wire.HeaderSubject
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
	MaxHeaderBytes = wire.MaxHeaderBytes
	// MaxHeaderFields is the most header fields one message carries.
	MaxHeaderFields = wire.MaxHeaderFields
)

// HeaderField is one key/value pair.
type HeaderField struct {
	Key, Value string
}

// Header is a message's headers, in order. A key may appear more than once.
// A key is 1 to 255 bytes of visible ASCII (0x21 to 0x7e) other than ':';
// a value is any bytes.
type Header []HeaderField

// Get returns the value of the first field with key, or "".
func (h Header) Get(key string) string {
	for _, f := range h {
		if f.Key == key {
			return f.Value
		}
	}
	return ""
}

// Values returns the values of every field with key, in order.
func (h Header) Values(key string) []string {
	var vs []string
	for _, f := range h {
		if f.Key == key {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// Add appends a field.
func (h *Header) Add(key, value string) { *h = append(*h, HeaderField{key, value}) }

// Set replaces every field with key by one with value (in the place of the
// first), or appends it.
func (h *Header) Set(key, value string) {
	for i, f := range *h {
		if f.Key == key {
			(*h)[i].Value = value
			rest := (*h)[i+1:]
			rest.Del(key)
			*h = (*h)[:i+1+len(rest)]
			return
		}
	}
	h.Add(key, value)
}

// Del removes every field with key.
func (h *Header) Del(key string) {
	out := (*h)[:0]
	for _, f := range *h {
		if f.Key != key {
			out = append(out, f)
		}
	}
	clear((*h)[len(out):])
	*h = out
}

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
func (m *Message) ReplyTo() string { return m.Header.Get(HeaderReplyTo) }

// ID returns the HeaderMsgID header.
func (m *Message) ID() string { return m.Header.Get(HeaderMsgID) }

// HeaderError reports headers that break a limit or a rule (key syntax,
// MaxHeaderBytes, MaxHeaderFields, a reserved key).
type HeaderError struct {
	Key    string // the offending key, if one
	Reason string
}

// Error names the key, if one, and the rule broken.
func (e *HeaderError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("transport: header %q: %s", e.Key, e.Reason)
	}
	return "transport: headers: " + e.Reason
}

// headerBlockLen checks the header block of subject (none if "") and h,
// and returns its size without the length prefix.
func headerBlockLen(subject string, h Header) (int, error) {
	fields := len(h)
	n := 0
	if subject != "" {
		fields++
		n = wire.HeaderFieldLen(HeaderSubject, subject)
	}
	if fields > MaxHeaderFields {
		return 0, &HeaderError{Reason: fmt.Sprintf("%d fields (the subject counts as one) exceed the limit of %d", fields, MaxHeaderFields)}
	}
	for _, f := range h {
		if f.Key == HeaderSubject {
			return 0, &HeaderError{Key: f.Key, Reason: "reserved: set Message.Subject instead"}
		}
		if err := wire.CheckHeaderKey(f.Key); err != nil {
			var me *wire.MalformedError
			errors.As(err, &me)
			return 0, &HeaderError{Key: f.Key, Reason: me.Reason}
		}
		n += wire.HeaderFieldLen(f.Key, f.Value)
	}
	if n > MaxHeaderBytes {
		return 0, &HeaderError{Reason: fmt.Sprintf("header block of %d bytes exceeds the limit of %d", n, MaxHeaderBytes)}
	}
	return n, nil
}

// appendHeaderBlock appends the block of subject (none if "") and h,
// whose size headerBlockLen returned, with its length prefix.
func appendHeaderBlock(b []byte, blockLen int, subject string, h Header) []byte {
	b = wire.AppendVarint(b, uint64(blockLen))
	if subject != "" {
		b = wire.AppendHeaderField(b, HeaderSubject, subject)
	}
	for _, f := range h {
		b = wire.AppendHeaderField(b, f.Key, f.Value)
	}
	return b
}

// msgMeta collects the subject and headers of the message being
// received, as the header block parser visits them.
type msgMeta struct {
	subject string
	header  Header
}

func (m *msgMeta) visit(key, value []byte) {
	if string(key) == HeaderSubject {
		m.subject = string(value)
		return
	}
	if m.header == nil {
		m.header = make(Header, 0, 4)
	}
	m.header = append(m.header, HeaderField{knownKey(key), string(value)})
}

// knownKey returns key as a string, without allocating for the
// well-known keys.
func knownKey(key []byte) string {
	switch string(key) {
	case HeaderReplyTo:
		return HeaderReplyTo
	case HeaderMsgID:
		return HeaderMsgID
	case HeaderInReplyTo:
		return HeaderInReplyTo
	case HeaderTraceparent:
		return HeaderTraceparent
	case HeaderStatus:
		return HeaderStatus
	}
	return string(key)
}

// splitHeaders decodes a HEADERS payload p into m and returns the body.
func splitHeaders(p []byte, m *msgMeta) ([]byte, error) {
	n, err := wire.HeaderBlockSize(p, len(p))
	if err != nil {
		return nil, err
	}
	if err := wire.ParseHeaderBlock(p[wire.VarintLen(p):n], m.visit); err != nil {
		return nil, err
	}
	return p[n:], nil
}
