package wire

import (
	"fmt"

	"github.com/quic-go/quic-go/quicvarint"
)

// Header limits, checked by the sender and by [ParseHeaderBlock].
const (
	// MaxHeaderFields is the most fields one header block holds.
	MaxHeaderFields = 64
	// MaxHeaderBytes is the largest header block in bytes, without its
	// length prefix.
	MaxHeaderBytes = 8192
	// MaxHeaderKeyLen is the longest header key in bytes.
	MaxHeaderKeyLen = 255
)

// HeaderSubject is the header key that carries a message's subject when
// it differs from the name of the channel it travels on.
const HeaderSubject = "subject"

// HeaderFieldLen is the encoded size of one header field.
func HeaderFieldLen(key, value string) int {
	return quicvarint.Len(uint64(len(key))) + len(key) + quicvarint.Len(uint64(len(value))) + len(value)
}

// AppendHeaderField appends one field of a header block: Key Length (i),
// Key, Value Length (i), Value. The key must be valid (see [CheckHeaderKey]).
func AppendHeaderField(b []byte, key, value string) []byte {
	b = quicvarint.Append(b, uint64(len(key)))
	b = append(b, key...)
	b = quicvarint.Append(b, uint64(len(value)))
	return append(b, value...)
}

// CheckHeaderKey reports whether key can be a header key: 1 to
// MaxHeaderKeyLen bytes of visible ASCII (0x21 to 0x7e) other than ':'.
func CheckHeaderKey(key string) error { return checkKey(key) }

func checkKey[T string | []byte](key T) error {
	if len(key) == 0 || len(key) > MaxHeaderKeyLen {
		return malformedHeaders("key of %d bytes is outside 1..%d", len(key), MaxHeaderKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e || c == ':' {
			return malformedHeaders("key %q holds byte 0x%02x: keys are visible ASCII other than ':'", key, c)
		}
	}
	return nil
}

// HeaderBlockSize decodes the Header Block Length at the start of p, the
// payload (or its first bytes) of a HEADERS message of size bytes, and
// returns how many bytes the length and the block take. It reports
// [ErrShort] while p holds less than that, and a [*MalformedError] for an
// empty block, one over MaxHeaderBytes or one longer than the payload.
func HeaderBlockSize(p []byte, size int) (int, error) {
	if len(p) > size {
		// What follows belongs to the next frame.
		p = p[:size]
	}
	l, n, err := quicvarint.Parse(p)
	switch {
	case err != nil && len(p) >= size:
		return 0, malformedHeaders("header block length is cut off by the end of the payload")
	case err != nil:
		return 0, ErrShort
	case l == 0:
		return 0, malformedHeaders("empty header block (the HEADERS flag must be left out instead)")
	case l > MaxHeaderBytes:
		return 0, malformedHeaders("header block of %d bytes exceeds %d", l, MaxHeaderBytes)
	case l > uint64(size-n):
		return 0, malformedHeaders("header block of %d bytes is longer than the %d bytes of payload after its length", l, size-n)
	case len(p) < n+int(l):
		return 0, ErrShort
	}
	return n + int(l), nil
}

// ParseHeaderBlock checks the header block b (without its length prefix)
// and calls visit, if not nil, with each field in order; the slices alias
// b. A block with no field, more than MaxHeaderFields fields, an invalid
// key (see [CheckHeaderKey]), a field cut off by the end of the block or
// HeaderSubject given twice is a [*MalformedError] naming the rule. It
// allocates nothing.
func ParseHeaderBlock(b []byte, visit func(key, value []byte)) error {
	if len(b) == 0 {
		return malformedHeaders("empty header block (the HEADERS flag must be left out instead)")
	}
	if len(b) > MaxHeaderBytes {
		return malformedHeaders("header block of %d bytes exceeds %d", len(b), MaxHeaderBytes)
	}
	fields, subjects := 0, 0
	for len(b) > 0 {
		if fields == MaxHeaderFields {
			return malformedHeaders("more than %d fields", MaxHeaderFields)
		}
		key, value, n, err := parseHeaderField(b)
		if err != nil {
			return err
		}
		if string(key) == HeaderSubject {
			if subjects++; subjects > 1 {
				return malformedHeaders("key %q given twice", HeaderSubject)
			}
		}
		if visit != nil {
			visit(key, value)
		}
		b = b[n:]
		fields++
	}
	return nil
}

// parseHeaderField decodes the field at the start of b.
func parseHeaderField(b []byte) (key, value []byte, n int, err error) {
	kl, n1, err := quicvarint.Parse(b)
	if err != nil || kl > uint64(len(b)-n1) {
		return nil, nil, 0, malformedHeaders("field %s cut off by the end of the block", "key")
	}
	key = b[n1 : n1+int(kl)]
	if err := checkKey(key); err != nil {
		return nil, nil, 0, err
	}
	rest := b[n1+int(kl):]
	vl, n2, err := quicvarint.Parse(rest)
	if err != nil || vl > uint64(len(rest)-n2) {
		return nil, nil, 0, malformedHeaders("field %s cut off by the end of the block", "value")
	}
	value = rest[n2 : n2+int(vl)]
	return key, value, n1 + int(kl) + n2 + int(vl), nil
}

func malformedHeaders(format string, args ...any) error {
	return &MalformedError{What: "header block", Reason: fmt.Sprintf(format, args...)}
}
