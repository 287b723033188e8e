package main

import (
	"strings"

	"github.com/quicmsg/quicmsg/transport"
)

// headerFlag collects -H key=value flags, in order.
type headerFlag struct {
	h transport.Header
}

func (f *headerFlag) String() string {
	if f == nil {
		return ""
	}
	parts := make([]string, len(f.h))
	for i, hf := range f.h {
		parts[i] = hf.Key + "=" + hf.Value
	}
	return strings.Join(parts, ",")
}

// Set adds one key=value header; the value may be empty, the key may not.
func (f *headerFlag) Set(s string) error {
	key, value, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return usageError("-H %q: want KEY=VALUE", s)
	}
	if key == transport.HeaderSubject {
		return usageError("-H %q: the subject is not a header; it is the channel or SUBJECT argument", s)
	}
	f.h.Add(key, value)
	return nil
}
