package transport

import (
	"errors"
	"fmt"
	"strings"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// Subjects. A channel name is a subject: tokens separated by '.'. In a
// subscription pattern, a token that is exactly "*" matches one token and
// one that is exactly ">" matches one or more trailing tokens, as in NATS.
// A name without wildcard tokens is literal and matched exactly.

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

// Error names the subject and the fault.
func (e *SubjectError) Error() string {
	return fmt.Sprintf("transport: subject %q: %s", e.Subject, e.Reason)
}

// Unwrap returns ErrWildcardSubject or ErrInvalidSubject.
func (e *SubjectError) Unwrap() error { return e.Err }

// IsWildcard reports whether subject has a "*" or ">" token.
func IsWildcard(subject string) bool {
	for {
		tok, rest, more := strings.Cut(subject, ".")
		if tok == "*" || tok == ">" {
			return true
		}
		if !more {
			return false
		}
		subject = rest
	}
}

// ValidateSubject checks a subject messages are published to: a valid
// channel name without wildcard tokens. It returns a [*SubjectError]
// matching ErrInvalidSubject or ErrWildcardSubject.
func ValidateSubject(subject string) error {
	if err := validName(subject); err != nil {
		return err
	}
	// Most subjects have neither wildcard byte: no need to cut them.
	// IndexByte, not ContainsAny: a relay validates every message it
	// publishes, and ContainsAny builds its byte set on each call (4 % of
	// quicsrv's CPU relaying one-way 64 B messages).
	if (strings.IndexByte(subject, '*') >= 0 || strings.IndexByte(subject, '>') >= 0) && IsWildcard(subject) {
		return wildcardError(subject)
	}
	return nil
}

// ValidatePattern checks a subscription: a valid channel name; if it holds
// wildcard tokens, no token is empty and ">" is only the last one. It
// returns a [*SubjectError] matching ErrInvalidSubject.
func ValidatePattern(pattern string) error {
	if err := validName(pattern); err != nil || !IsWildcard(pattern) {
		return err
	}
	for p := pattern; ; {
		tok, rest, more := strings.Cut(p, ".")
		switch {
		case tok == "":
			return &SubjectError{Subject: pattern, Reason: "a pattern with wildcards has an empty token", Err: ErrInvalidSubject}
		case tok == ">" && more:
			return &SubjectError{Subject: pattern, Reason: `">" is not the last token`, Err: ErrInvalidSubject}
		case !more:
			return nil
		}
		p = rest
	}
}

// MatchSubject reports whether the concrete subject matches pattern with
// NATS's semantics ("*" one token, ">" one or more trailing tokens). A
// pattern without wildcard tokens matches only itself.
func MatchSubject(pattern, subject string) bool {
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		st, srest, smore := strings.Cut(subject, ".")
		switch {
		case pt == ">" && !pmore:
			return true
		case pt != "*" && pt != st, pmore != smore:
			return false
		case !pmore:
			return true
		}
		pattern, subject = prest, srest
	}
}

func validName(s string) error {
	if err := wire.ValidateName(s); err != nil {
		var me *wire.MalformedError
		errors.As(err, &me)
		return &SubjectError{Subject: s, Reason: "channel name is " + me.Reason, Err: ErrInvalidSubject}
	}
	return nil
}

func wildcardError(subject string) error {
	return &SubjectError{Subject: subject, Reason: `holds a wildcard token ("*" or ">"): it can be subscribed to, not published to`, Err: ErrWildcardSubject}
}
