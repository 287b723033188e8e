package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzHelloDecoder feeds HELLO frames, mutated, to the control frame decoder:
// no panics, typed errors only, a decoded HELLO keeps within the limits the
// decoder promises, re-encodes to a frame that decodes to the same HELLO, and
// every proper prefix of a frame that decodes reports ErrShort, so that a
// reader that waits for more bytes never acts on half a HELLO.
func FuzzHelloDecoder(f *testing.F) {
	id := bytes.Repeat([]byte{0xab}, 16)
	for _, h := range []Hello{
		{Version: Version, SessionID: id, MaxMessageSize: 1 << 20, PendingCap: 1000},
		{Version: Version, MaxMessageSize: 16 << 20, PendingCap: 1 << 16},
		{Version: 2, SessionID: bytes.Repeat([]byte{1}, MaxSessionIDLen), MaxMessageSize: 1<<62 - 1, PendingCap: 1<<62 - 1},
		{Version: Version, SessionID: id, MaxMessageSize: 1 << 20, PendingCap: 1000, Acks: true, ResumeToken: bytes.Repeat([]byte{7}, 17)},
		{Version: Version, SessionID: id, MaxMessageSize: 1 << 20, PendingCap: 1000, Acks: true, ResumeToken: bytes.Repeat([]byte{9}, MaxResumeTokenLen)},
		{Version: Version, SessionID: id, MaxMessageSize: 1 << 20, PendingCap: 1000, Acks: true, Headers: true, Ping: true, Mode: "echo"},
		{Version: Version, MaxMessageSize: 1 << 20, PendingCap: 1000, Ping: true, Mode: string(bytes.Repeat([]byte{'~'}, MaxModeLen))},
	} {
		f.Add(AppendControl(nil, Control{Type: ControlHello, Hello: h}))
	}
	// A HELLO with extension bytes after the fields version 1 knows.
	ext := AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: Version, MaxMessageSize: 4096, PendingCap: 10}})
	ext[1] += 3
	f.Add(append(ext, 0x40, 0x64, 0x07))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, n, err := ParseControl(b)
		if err != nil {
			var me *MalformedError
			if !errors.Is(err, ErrShort) && !errors.As(err, &me) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		for _, k := range []int{0, n / 2, n - 1} {
			if _, _, err := ParseControl(b[:k]); !errors.Is(err, ErrShort) {
				t.Fatalf("prefix of %d of a %d-byte frame: %v, want ErrShort", k, n, err)
			}
		}
		if c.Type != ControlHello {
			return
		}
		checkHello(t, c.Hello)
		c2, n2, err := ParseControl(AppendControl(nil, c))
		if err != nil {
			t.Fatalf("re-encoded HELLO does not decode: %v", err)
		}
		if n2 > n {
			t.Fatalf("re-encoding grew the frame from %d to %d bytes", n, n2)
		}
		if !reflect.DeepEqual(c2.Hello, c.Hello) {
			t.Fatalf("round trip changed the HELLO: %+v != %+v", c2.Hello, c.Hello)
		}
	})
}

func checkHello(t *testing.T, h Hello) {
	t.Helper()
	if len(h.SessionID) > MaxSessionIDLen {
		t.Fatalf("session ID of %d bytes over %d", len(h.SessionID), MaxSessionIDLen)
	}
	if len(h.ResumeToken) > MaxResumeTokenLen {
		t.Fatalf("resume token of %d bytes over %d", len(h.ResumeToken), MaxResumeTokenLen)
	}
	if h.Mode != "" {
		if err := ValidateMode(h.Mode); err != nil {
			t.Fatalf("decoded mode %q: %v", h.Mode, err)
		}
	}
}

// FuzzChannelHeader feeds arbitrary bytes to the channel preamble decoder,
// both whole and the way a stream reader sees them (step bytes at a time,
// parsing again after each read until the result is not ErrShort): both must
// agree, a decoded name is a valid channel name, and it re-encodes to exactly
// the bytes it was decoded from.
func FuzzChannelHeader(f *testing.F) {
	f.Add(AppendChannelHeader(nil, "chat"), uint8(1))
	f.Add(AppendChannelHeader(nil, string(bytes.Repeat([]byte("n"), MaxNameLen))), uint8(7))
	f.Add(append(AppendChannelHeader(nil, "ünïcödé"), 0, 0, 5, 'h', 'e', 'l', 'l', 'o'), uint8(3))
	f.Add([]byte{StreamChannel, 0}, uint8(1))
	f.Add([]byte{StreamChannel, 2, 0xff, 0xfe}, uint8(2))
	f.Add([]byte{StreamControl, 0x01, 0x00}, uint8(1))
	f.Add([]byte{StreamChannel, 10, 'a'}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		name, n, err := parsePreamble(b)
		if err != nil {
			var me *MalformedError
			if !errors.Is(err, ErrShort) && !errors.As(err, &me) {
				t.Fatalf("untyped error %v", err)
			}
		} else {
			if n <= 0 || n > len(b) {
				t.Fatalf("consumed %d of %d bytes", n, len(b))
			}
			if verr := ValidateName(name); verr != nil || !utf8.ValidString(name) {
				t.Fatalf("decoded name %q is not a valid channel name: %v", name, verr)
			}
			if re := AppendChannelHeader(nil, name); !bytes.Equal(re, b[:n]) {
				t.Fatalf("re-encoding %q gave % x, decoded from % x", name, re, b[:n])
			}
		}
		iname, in, ierr := parseIncrementally(b, 1+int(step%32))
		if iname != name || in != n || (ierr == nil) != (err == nil) || errors.Is(ierr, ErrShort) != errors.Is(err, ErrShort) {
			t.Fatalf("read %d bytes at a time: (%q, %d, %v); whole: (%q, %d, %v)", 1+step%32, iname, in, ierr, name, n, err)
		}
	})
}

// parsePreamble decodes a channel stream's first bytes as a channel reader
// does: the stream type byte, then the header.
func parsePreamble(b []byte) (string, int, error) {
	if len(b) == 0 {
		return "", 0, ErrShort
	}
	if b[0] != StreamChannel {
		return "", 0, &MalformedError{What: "channel header", Reason: "not a channel stream"}
	}
	name, n, err := ParseChannelHeader(b[1:])
	if err != nil {
		return "", 0, err
	}
	return name, 1 + n, nil
}

// parseIncrementally mirrors the transport's header read loop: it sees b
// growing by step bytes per read and parses again after each one.
func parseIncrementally(b []byte, step int) (string, int, error) {
	for have := min(step, len(b)); ; have = min(have+step, len(b)) {
		name, n, err := parsePreamble(b[:have])
		if !errors.Is(err, ErrShort) || have == len(b) {
			return name, n, err
		}
	}
}
