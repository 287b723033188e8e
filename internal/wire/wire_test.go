package wire

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/quic-go/quic-go/quicvarint"
	"github.com/stretchr/testify/require"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 63, 64, 16383, 16384, 1 << 20} {
		payload := bytes.Repeat([]byte{0xab}, size)
		b := AppendMessage(nil, FlagReplaySafe, payload)
		require.Len(t, b, MessageLen(size))
		flags, n, hdr, err := ParseMessageHeader(b, 1<<20)
		require.NoError(t, err)
		require.Equal(t, FlagReplaySafe, flags)
		require.Equal(t, size, n)
		require.Equal(t, payload, b[hdr:hdr+n])
		for cut := 0; cut < hdr; cut++ {
			_, _, _, err := ParseMessageHeader(b[:cut], 1<<20)
			require.ErrorIs(t, err, ErrShort)
		}
	}
}

func TestMessageTooLargeNamesLimit(t *testing.T) {
	b := AppendMessage(nil, 0, make([]byte, 2000))
	_, _, _, err := ParseMessageHeader(b, 1000)
	var tl *TooLargeError
	require.ErrorAs(t, err, &tl)
	require.Equal(t, uint64(2000), tl.Size)
	require.Equal(t, 1000, tl.Limit)
	require.Contains(t, err.Error(), "limit of 1000 bytes")
}

func TestMessageUnknownTypeAndFlags(t *testing.T) {
	var me *MalformedError
	_, _, _, err := ParseMessageHeader([]byte{0x7f, 0, 1, 0}, 10)
	require.ErrorAs(t, err, &me)
	require.Contains(t, err.Error(), "unknown frame type 0x7f")
	_, _, _, err = ParseMessageHeader([]byte{FrameMessage, 0x80, 1, 0}, 10)
	require.ErrorAs(t, err, &me)
	require.Contains(t, err.Error(), "unknown flags 0x80")
}

func TestChannelHeader(t *testing.T) {
	b := AppendChannelHeader(nil, "chat/room-1")
	require.Equal(t, StreamChannel, b[0])
	name, n, err := ParseChannelHeader(b[1:])
	require.NoError(t, err)
	require.Equal(t, "chat/room-1", name)
	require.Equal(t, len(b)-1, n)

	_, _, err = ParseChannelHeader(b[1:4])
	require.ErrorIs(t, err, ErrShort)

	var me *MalformedError
	_, _, err = ParseChannelHeader([]byte{0})
	require.ErrorAs(t, err, &me)
	_, _, err = ParseChannelHeader([]byte{2, 0xff, 0xfe})
	require.ErrorAs(t, err, &me)
}

func TestValidateName(t *testing.T) {
	require.NoError(t, ValidateName("a"))
	require.NoError(t, ValidateName(strings.Repeat("x", 255)))
	require.Error(t, ValidateName(""))
	require.ErrorContains(t, ValidateName(strings.Repeat("x", 256)), "256 bytes, the limit is 255")
	require.ErrorContains(t, ValidateName("\xff"), "UTF-8")
}

func TestControlRoundTrip(t *testing.T) {
	frames := []Control{
		{Type: ControlHello, Hello: Hello{Version: 1, SessionID: []byte("0123456789abcdef"), MaxMessageSize: 1 << 20, PendingCap: 1000}},
		{Type: ControlHello, Hello: Hello{Version: 1, MaxMessageSize: 1 << 20, PendingCap: 1000, PendingBytes: 8 << 20, SendBuffer: 64 << 10}},
		{Type: ControlSlowDown},
		{Type: ControlResume},
		{Type: ControlGoAway, Code: 5, Opened: 3, Reason: "server shutting down"},
	}
	var b []byte
	for _, f := range frames {
		b = AppendControl(b, f)
	}
	for _, want := range frames {
		got, n, err := ParseControl(b)
		require.NoError(t, err)
		if want.Hello.SessionID == nil {
			want.Hello.SessionID = nil
		}
		require.Equal(t, want.Type, got.Type)
		require.Equal(t, want.Code, got.Code)
		require.Equal(t, want.Opened, got.Opened)
		require.Equal(t, want.Reason, got.Reason)
		if want.Type == ControlHello {
			require.Equal(t, want.Hello, got.Hello)
		}
		b = b[n:]
	}
	require.Empty(t, b)
}

func TestControlRejectsUnknownAndOversized(t *testing.T) {
	var me *MalformedError
	_, _, err := ParseControl([]byte{0x3f, 0})
	require.ErrorAs(t, err, &me)
	require.Contains(t, err.Error(), "unknown control frame type 0x3f")

	_, _, err = ParseControl([]byte{0x01, 0x80, 0x00, 0x20, 0x00}) // length 8192
	require.ErrorAs(t, err, &me)

	_, _, err = ParseControl([]byte{byte(ControlSlowDown), 1, 0})
	require.ErrorAs(t, err, &me)

	_, _, err = ParseControl([]byte{byte(ControlHello), 1, 1})
	require.ErrorAs(t, err, &me)
	require.True(t, errors.As(err, &me))
}

func TestHelloSkipsUnknownExtensions(t *testing.T) {
	b := AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 2, MaxMessageSize: 10, PendingCap: 3, PendingBytes: 1 << 20}})
	// Grow the payload by an extension of a later version: ID 0x30, 2 bytes.
	b[1] += 4
	b = append(b, 0x30, 2, 0xaa, 0xbb)
	c, n, err := ParseControl(b)
	require.NoError(t, err)
	require.Equal(t, len(b), n)
	require.Equal(t, uint64(2), c.Hello.Version)
	require.Equal(t, uint64(3), c.Hello.PendingCap)
	require.Equal(t, uint64(1<<20), c.Hello.PendingBytes)
}

// An old peer sends HELLO without extensions; a new one decodes it with the
// budgets unset, and the old decoder, which stops after Pending Cap, reads a
// new HELLO's fixed fields unchanged.
func TestHelloWithoutExtensionsStillDecodes(t *testing.T) {
	old := []byte{byte(ControlHello), 5, 1, 0, 0x0a, 0x40, 100}
	c, n, err := ParseControl(old)
	require.NoError(t, err)
	require.Equal(t, len(old), n)
	require.Equal(t, Hello{Version: 1, MaxMessageSize: 10, PendingCap: 100}, c.Hello)

	b := AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, MaxMessageSize: 10, PendingCap: 100, PendingBytes: 7, SendBuffer: 9}})
	require.Equal(t, old[2:], b[2:2+5], "the fixed fields come first, as before")
}

func TestHelloRejectsMalformedExtensions(t *testing.T) {
	base := AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, MaxMessageSize: 10, PendingCap: 3}})
	for name, ext := range map[string][]byte{
		"truncated length":   {0x01},
		"value past the end": {0x01, 4, 1},
		"two integers":       {0x01, 2, 1, 2},
		"given twice":        {0x01, 1, 5, 0x01, 1, 6},
		"truncated send buf": {0x02, 1},
	} {
		b := append([]byte(nil), base...)
		b[1] += byte(len(ext))
		b = append(b, ext...)
		_, _, err := ParseControl(b)
		var me *MalformedError
		require.ErrorAs(t, err, &me, name)
		require.Contains(t, err.Error(), "HELLO extension", name)
	}
}

func TestHelloResumeTokenAndAcksRoundTrip(t *testing.T) {
	h := Hello{Version: 1, SessionID: []byte("0123456789abcdef"), MaxMessageSize: 10, PendingCap: 3,
		Acks: true, ResumeToken: bytes.Repeat([]byte{0xee}, MaxResumeTokenLen)}
	c, n, err := ParseControl(AppendControl(nil, Control{Type: ControlHello, Hello: h}))
	require.NoError(t, err)
	require.Positive(t, n)
	require.Equal(t, h, c.Hello)
}

func TestHelloRejectsMalformedResumeExtensions(t *testing.T) {
	base := AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, MaxMessageSize: 10, PendingCap: 3}})
	for name, tc := range map[string]struct {
		ext  []byte
		want string
	}{
		"empty token":     {[]byte{0x04, 0}, "RESUME_TOKEN of 0 bytes is outside 1..64"},
		"token too long":  {append([]byte{0x04, 0x40, 65}, make([]byte, 65)...), "RESUME_TOKEN of 65 bytes is outside 1..64"},
		"token twice":     {[]byte{0x04, 1, 9, 0x04, 1, 9}, "0x4 is given twice"},
		"acks revision 0": {[]byte{0x03, 1, 0}, "ACKS gives revision 0"},
		"acks not an int": {[]byte{0x03, 2, 1, 1}, "does not hold exactly one integer"},
	} {
		p := append(append([]byte(nil), base[2:]...), tc.ext...)
		b := quicvarint.Append([]byte{byte(ControlHello)}, uint64(len(p)))
		_, _, err := ParseControl(append(b, p...))
		var me *MalformedError
		require.ErrorAs(t, err, &me, name)
		require.Contains(t, err.Error(), tc.want, name)
	}
}

// A state larger than one frame's payload is split over frames of at most
// MaxControlPayload bytes, the last one final, and decodes to the same
// entries in order.
func TestResumeStateSplitsOverFrames(t *testing.T) {
	var entries []ResumeEntry
	for i := range 40 {
		entries = append(entries, ResumeEntry{Name: strings.Repeat(string(rune('A'+i)), MaxNameLen), Received: uint64(i) << 40})
	}
	b := AppendResumeState(nil, entries)
	var got []ResumeEntry
	frames := 0
	for len(b) > 0 {
		c, n, err := ParseControl(b)
		require.NoError(t, err)
		require.Equal(t, ControlResumeState, c.Type)
		frames++
		got = append(got, c.Entries...)
		b = b[n:]
		require.Equal(t, len(b) == 0, c.Final, "only the last frame is final")
	}
	require.Equal(t, entries, got)
	require.Equal(t, 3, frames, "40 entries of 264 bytes need three 4096-byte payloads")

	c, _, err := ParseControl(AppendResumeState(nil, nil))
	require.NoError(t, err)
	require.True(t, c.Final)
	require.Empty(t, c.Entries)
}

func TestResumeStateRejectsMalformed(t *testing.T) {
	for name, tc := range map[string]struct {
		payload []byte
		want    string
	}{
		"empty":             {nil, "RESUME_STATE is empty"},
		"final byte 2":      {[]byte{2}, "Final byte 0x02 is neither 0 nor 1"},
		"not final, empty":  {[]byte{0}, "names no channel"},
		"empty name":        {[]byte{1, 0, 5}, "entry 0: channel name is empty"},
		"name past the end": {[]byte{1, 5, 'a'}, "entry 0: channel name"},
		"bad UTF-8":         {[]byte{1, 1, 0xff, 0}, "not UTF-8"},
		"no count":          {[]byte{1, 1, 'a', 0, 1, 'b'}, `entry 1 (channel "b") is truncated`},
	} {
		b := append([]byte{byte(ControlResumeState), byte(len(tc.payload))}, tc.payload...)
		_, _, err := ParseControl(b)
		var me *MalformedError
		require.ErrorAs(t, err, &me, name)
		require.Contains(t, err.Error(), tc.want, name)
	}
}

func TestPingPongRoundTrip(t *testing.T) {
	for _, f := range []Control{
		{Type: ControlPing, Opaque: 0},
		{Type: ControlPing, Opaque: 1<<64 - 1},
		{Type: ControlPong, Opaque: 0x0102030405060708},
	} {
		b := AppendControl(nil, f)
		require.Len(t, b, 2+PingLen, f.Type.String())
		got, n, err := ParseControl(b)
		require.NoError(t, err)
		require.Equal(t, len(b), n)
		require.Equal(t, f, got)
		_, _, err = ParseControl(b[:len(b)-1])
		require.ErrorIs(t, err, ErrShort, "a PING cut short waits for more")
	}
	require.Equal(t, "PING", ControlPing.String())
	require.Equal(t, "PONG", ControlPong.String())
}

func TestPingPongRejectsOtherLengths(t *testing.T) {
	for _, p := range [][]byte{nil, make([]byte, 7), make([]byte, 9)} {
		for _, typ := range []ControlType{ControlPing, ControlPong} {
			b := quicvarint.Append([]byte{byte(typ)}, uint64(len(p)))
			_, _, err := ParseControl(append(b, p...))
			var me *MalformedError
			require.ErrorAs(t, err, &me)
			require.Contains(t, err.Error(), fmt.Sprintf("%s carries %d bytes, want 8", typ, len(p)))
		}
	}
}

func TestHelloPingAndModeRoundTrip(t *testing.T) {
	for _, h := range []Hello{
		{Version: 1, SessionID: []byte("0123456789abcdef"), MaxMessageSize: 10, PendingCap: 3, Ping: true, Mode: "relay"},
		{Version: 1, MaxMessageSize: 10, PendingCap: 3, Ping: true},
		{Version: 1, MaxMessageSize: 10, PendingCap: 3, Acks: true, Headers: true, Mode: strings.Repeat("m", MaxModeLen)},
	} {
		c, _, err := ParseControl(AppendControl(nil, Control{Type: ControlHello, Hello: h}))
		require.NoError(t, err)
		require.Equal(t, h, c.Hello)
	}
}

// A peer that predates PING and MODE skips them as unknown extensions:
// the fixed fields and the extensions it knows decode unchanged.
func TestHelloPingAndModeSkippedByOlderDecoder(t *testing.T) {
	h := Hello{Version: 1, MaxMessageSize: 10, PendingCap: 3, PendingBytes: 7, Acks: true, Ping: true, Mode: "echo"}
	b := AppendControl(nil, Control{Type: ControlHello, Hello: h})
	c, _, err := ParseControl(b)
	require.NoError(t, err)
	// What an older decoder makes of it: the same HELLO without the two.
	old := c.Hello
	old.Ping, old.Mode = false, ""
	withoutNew := AppendControl(nil, Control{Type: ControlHello, Hello: old})
	require.Equal(t, withoutNew[2:], b[2:len(withoutNew)], "PING and MODE come after every older extension")
}

func TestHelloRejectsMalformedExtensionsAndIgnoresABadMode(t *testing.T) {
	base := AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, MaxMessageSize: 10, PendingCap: 3}})
	hello := func(ext []byte) []byte {
		p := append(append([]byte(nil), base[2:]...), ext...)
		b := quicvarint.Append([]byte{byte(ControlHello)}, uint64(len(p)))
		return append(b, p...)
	}
	for name, tc := range map[string]struct {
		ext  []byte
		want string
	}{
		"twice":          {[]byte{0x07, 1, 'a', 0x07, 1, 'b'}, "0x7 is given twice"},
		"ping twice":     {[]byte{0x06, 0, 0x06, 0}, "0x6 is given twice"},
		"mode truncated": {[]byte{0x07, 5, 'a'}, "0x7 is truncated"},
	} {
		_, _, err := ParseControl(hello(tc.ext))
		var me *MalformedError
		require.ErrorAs(t, err, &me, name)
		require.Contains(t, err.Error(), tc.want, name)
	}
	// MODE is informational: a value outside today's rules is ignored,
	// so that a later release may widen them without breaking this one.
	for name, ext := range map[string][]byte{
		"empty":     {0x07, 0},
		"too long":  append([]byte{0x07, 0x40, 65}, bytes.Repeat([]byte{'m'}, 65)...),
		"space":     {0x07, 2, 'a', ' '},
		"not ascii": {0x07, 2, 0xc3, 0xa9},
	} {
		f, _, err := ParseControl(hello(ext))
		require.NoError(t, err, name)
		require.Empty(t, f.Hello.Mode, name)
	}
}

func TestHelloPingIgnoresValue(t *testing.T) {
	base := AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, MaxMessageSize: 10, PendingCap: 3}})
	p := append(append([]byte(nil), base[2:]...), 0x06, 2, 0xaa, 0xbb)
	b := quicvarint.Append([]byte{byte(ControlHello)}, uint64(len(p)))
	c, _, err := ParseControl(append(b, p...))
	require.NoError(t, err)
	require.True(t, c.Hello.Ping, "a later revision may give PING a value")
}

func TestValidateMode(t *testing.T) {
	require.NoError(t, ValidateMode("relay"))
	require.NoError(t, ValidateMode("my-app/v2"))
	require.Error(t, ValidateMode(""))
	require.Error(t, ValidateMode("with space"))
	require.Error(t, ValidateMode(strings.Repeat("x", MaxModeLen+1)))
}
