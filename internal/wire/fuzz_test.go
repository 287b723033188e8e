package wire

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzMessageDecoder feeds arbitrary bytes to the message frame decoder the
// way a channel reader does: it must never panic, never report a payload over
// the limit, and re-encoding a decoded frame must give back the same bytes.
func FuzzMessageDecoder(f *testing.F) {
	f.Add(AppendMessage(nil, 0, []byte("hello")))
	f.Add(AppendMessage(nil, FlagReplaySafe, make([]byte, 300)))
	f.Add([]byte{FrameMessage, 0, 0x80})
	f.Add([]byte{FrameAck, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 4096
		for len(b) > 0 {
			flags, size, n, err := ParseMessageHeader(b, limit)
			if err != nil {
				var tl *TooLargeError
				var me *MalformedError
				if !errors.Is(err, ErrShort) && !errors.As(err, &tl) && !errors.As(err, &me) {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			if size > limit {
				t.Fatalf("size %d over limit", size)
			}
			if len(b) < n+size {
				return
			}
			re := AppendMessage(nil, flags, b[n:n+size])
			if len(re) > n+size {
				t.Fatalf("re-encoding grew: %d > %d", len(re), n+size)
			}
			b = b[n+size:]
		}
	})
}

// FuzzControlDecoder feeds arbitrary bytes to the control frame decoder: no
// panics, typed errors only, and whatever decodes must re-encode and decode to
// the same frame.
func FuzzControlDecoder(f *testing.F) {
	f.Add(AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, SessionID: make([]byte, 16), MaxMessageSize: 1 << 20, PendingCap: 1000}}))
	f.Add(AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, MaxMessageSize: 1 << 20, PendingCap: 1000, PendingBytes: 8 << 20, SendBuffer: 64 << 10}}))
	f.Add(AppendControl(nil, Control{Type: ControlGoAway, Code: 5, Reason: "bye"}))
	f.Add(AppendControl(nil, Control{Type: ControlSlowDown}))
	f.Add(AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, MaxMessageSize: 1 << 20, PendingCap: 1000, Acks: true}}))
	f.Add(AppendAck(nil, []AckEntry{{Stream: 4, Count: 256}, {Stream: 8, Count: 1 << 30}}))
	f.Add([]byte{byte(ControlAck), 1, 4})
	f.Add([]byte{0x40, 0x40, 0})
	f.Add(AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, SessionID: make([]byte, 16), MaxMessageSize: 1 << 20, PendingCap: 1000, Acks: true, ResumeToken: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}}))
	f.Add(AppendControl(nil, Control{Type: ControlResumeState, Final: true, Entries: []ResumeEntry{{Name: "chat", Received: 12}, {Name: "ünï", Received: 1 << 40}}}))
	f.Add(AppendControl(nil, Control{Type: ControlResumeState, Entries: []ResumeEntry{{Name: "a", Received: 0}}}))
	f.Add([]byte{byte(ControlResumeState), 3, 2, 1, 'a'})
	f.Add(AppendControl(nil, Control{Type: ControlPing, Opaque: 42}))
	f.Add(AppendControl(nil, Control{Type: ControlPong, Opaque: 1<<64 - 1}))
	f.Add([]byte{byte(ControlPing), 7, 0, 0, 0, 0, 0, 0, 1})
	f.Add(AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, SessionID: make([]byte, 16), MaxMessageSize: 1 << 20, PendingCap: 1000, Acks: true, Headers: true, Ping: true, Mode: "relay"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, n, err := ParseControl(b)
		if err != nil {
			var me *MalformedError
			if !errors.Is(err, ErrShort) && !errors.As(err, &me) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		c2, _, err := ParseControl(AppendControl(nil, c))
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if !reflect.DeepEqual(c2, c) {
			t.Fatalf("round trip changed the frame: %+v != %+v", c2, c)
		}
	})
}
