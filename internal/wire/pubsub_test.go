package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/quic-go/quic-go/quicvarint"
	"github.com/stretchr/testify/require"
)

type field struct{ k, v string }

// headerPayload encodes a HEADERS payload: the block of fields, then body.
func headerPayload(fields []field, body string) []byte {
	var blk []byte
	for _, f := range fields {
		blk = AppendHeaderField(blk, f.k, f.v)
	}
	p := quicvarint.Append(nil, uint64(len(blk)))
	return append(append(p, blk...), body...)
}

// parseHeaderPayload decodes a whole HEADERS payload.
func parseHeaderPayload(p []byte) ([]field, []byte, error) {
	n, err := HeaderBlockSize(p, len(p))
	if err != nil {
		return nil, nil, err
	}
	var fs []field
	_, vn, _ := quicvarint.Parse(p)
	err = ParseHeaderBlock(p[vn:n], func(k, v []byte) { fs = append(fs, field{string(k), string(v)}) })
	return fs, p[n:], err
}

func requireMalformed(t *testing.T, err error, what, reason string) {
	t.Helper()
	var me *MalformedError
	require.ErrorAs(t, err, &me)
	require.Equal(t, what, me.What)
	require.Contains(t, me.Reason, reason)
}

func TestHeaderBlockRoundTrip(t *testing.T) {
	fs := []field{{"subject", "orders.1"}, {"msg-id", "7"}, {"x", ""}, {"x", "\x00\xff"}}
	got, body, err := parseHeaderPayload(headerPayload(fs, "body"))
	require.NoError(t, err)
	require.Equal(t, fs, got, "order and repeated keys kept")
	require.Equal(t, "body", string(body))
}

func TestHeaderBlockRules(t *testing.T) {
	many := make([]field, MaxHeaderFields+1)
	for i := range many {
		many[i] = field{"k", "v"}
	}
	for _, tc := range []struct {
		name   string
		p      []byte
		reason string
	}{
		{"empty block", []byte{0, 'b'}, "empty header block"},
		{"too many fields", headerPayload(many, ""), "more than 64 fields"},
		{"block too large", headerPayload([]field{{"k", strings.Repeat("v", MaxHeaderBytes)}}, ""), "exceeds 8192"},
		{"empty key", headerPayload([]field{{"", "v"}}, ""), "key of 0 bytes"},
		{"key with colon", headerPayload([]field{{"a:b", "v"}}, ""), "visible ASCII other than ':'"},
		{"key with space", headerPayload([]field{{"a b", "v"}}, ""), "visible ASCII"},
		{"key too long", headerPayload([]field{{strings.Repeat("k", 256), "v"}}, ""), "outside 1..255"},
		{"subject twice", headerPayload([]field{{"subject", "a"}, {"subject", "b"}}, ""), `"subject" given twice`},
		{"block longer than payload", []byte{5, 1, 'k', 0}, "longer than the 3 bytes"},
		{"value cut off", []byte{4, 1, 'k', 5, 'v'}, "value cut off"},
		{"key cut off", []byte{2, 3, 'k'}, "key cut off"},
		{"no length", []byte{}, "cut off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseHeaderPayload(tc.p)
			requireMalformed(t, err, "header block", tc.reason)
		})
	}
}

func TestHeaderBlockSizeWaitsForTheWholeBlock(t *testing.T) {
	p := headerPayload([]field{{"k", "value"}}, "body")
	for i := range len(p) - 4 {
		_, err := HeaderBlockSize(p[:i], len(p))
		require.ErrorIs(t, err, ErrShort, "prefix of %d bytes", i)
	}
	n, err := HeaderBlockSize(p, len(p))
	require.NoError(t, err)
	require.Equal(t, len(p)-4, n)
}

// The header block length is read within the frame's payload, never
// from the bytes of the frame after it.
func TestHeaderBlockLengthStaysInsideThePayload(t *testing.T) {
	// A payload of one byte that starts a two-byte varint, then the next
	// frame's bytes.
	_, err := HeaderBlockSize([]byte{0x40, 0x01, 1, 'k', 0}, 1)
	requireMalformed(t, err, "header block", "cut off by the end of the payload")
	_, err = HeaderBlockSize([]byte{0x02, 1, 'k', 0, 0}, 2)
	requireMalformed(t, err, "header block", "longer than the 1 bytes of payload")
}

func TestGapRoundTripAndRules(t *testing.T) {
	b := AppendGap(nil, 1<<40, 2)
	require.Len(t, b, GapLen(1<<40, 2))
	flags, size, n, err := ParseMessageHeader(b, 1<<20)
	require.NoError(t, err)
	require.Equal(t, FlagGap, flags)
	missed, reason, err := ParseGap(b[n : n+size])
	require.NoError(t, err)
	require.Equal(t, uint64(1<<40), missed)
	require.Equal(t, uint64(2), reason)

	_, _, err = ParseGap([]byte{0, 1})
	requireMalformed(t, err, "gap notice", "Missed is 0")
	_, _, err = ParseGap([]byte{1, 1, 0})
	requireMalformed(t, err, "gap notice", "1 bytes after Reason")
	_, _, err = ParseGap([]byte{1})
	requireMalformed(t, err, "gap notice", "Reason is cut off")
	_, _, err = ParseGap(nil)
	requireMalformed(t, err, "gap notice", "Missed is cut off")
	for _, f := range []byte{FlagGap | FlagHeaders, FlagGap | FlagReplaySafe} {
		_, _, _, err = ParseMessageHeader([]byte{FrameMessage, f, 2, 1, 1}, 1<<20)
		requireMalformed(t, err, "gap notice", "GAP combined")
	}
	_, _, _, err = ParseMessageHeader([]byte{FrameMessage, FlagGap, 17}, 1<<20)
	requireMalformed(t, err, "gap notice", "exceeds 16")
	_, _, _, err = ParseMessageHeader([]byte{FrameMessage, 0x08, 0}, 1<<20)
	requireMalformed(t, err, "message frame", "unknown flags 0x08")
}

func TestChannelHeaderWithOptions(t *testing.T) {
	b := AppendChannelHeaderWith(nil, "orders.>", ChannelOptions{Group: "workers"})
	require.Equal(t, StreamChannelOpts, b[0])
	name, o, n, err := ParseStreamHeader(b)
	require.NoError(t, err)
	require.Equal(t, "orders.>", name)
	require.Equal(t, "workers", o.Group)
	require.Equal(t, len(b), n)
	for i := range b {
		_, _, _, err := ParseStreamHeader(b[:i])
		require.ErrorIs(t, err, ErrShort, "prefix of %d bytes", i)
	}

	plain := AppendChannelHeaderWith(nil, "orders", ChannelOptions{})
	require.Equal(t, AppendChannelHeader(nil, "orders"), plain, "no options: the plain header")

	// Unknown options are skipped.
	opts := []byte{0x3f, 2, 'x', 'y', 0x01, 1, 'g'}
	o, n, err = ParseChannelOptions(append([]byte{byte(len(opts))}, opts...))
	require.NoError(t, err)
	require.Equal(t, "g", o.Group)
	require.Equal(t, 1+len(opts), n)
}

func TestChannelHeaderWithPriority(t *testing.T) {
	for _, o := range []ChannelOptions{
		{Priority: Priority{Set: true}},
		{Priority: Priority{Set: true, Urgency: 7, Incremental: true}},
		{Group: "workers", Priority: Priority{Set: true, Urgency: 1}},
	} {
		b := AppendChannelHeaderWith(nil, "orders", o)
		require.Equal(t, StreamChannelOpts, b[0])
		name, got, n, err := ParseStreamHeader(b)
		require.NoError(t, err)
		require.Equal(t, "orders", name)
		require.Equal(t, o, got)
		require.Equal(t, len(b), n)
	}
	// The exact bytes: urgency in the low bits, 0x08 incremental.
	b := AppendChannelHeaderWith(nil, "a", ChannelOptions{Priority: Priority{Set: true, Urgency: 5, Incremental: true}})
	require.Equal(t, []byte{StreamChannelOpts, 1, 'a', 3, 0x02, 1, 0x0d}, b)
}

func TestChannelOptionsRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []byte
		reason string
	}{
		{"group twice", []byte{1, 1, 'a', 1, 1, 'b'}, "GROUP given twice"},
		{"empty group", []byte{1, 0}, "group name of 0 bytes"},
		{"group with dot", []byte{1, 3, 'a', '.', 'b'}, "'.', '*', '>'"},
		{"group with star", []byte{1, 1, '*'}, "'.', '*', '>'"},
		{"group with space", []byte{1, 1, ' '}, "visible ASCII"},
		{"truncated option", []byte{1, 5, 'a'}, "option 0x1 is cut off"},
		{"truncated id", []byte{0x40}, "option ID is cut off"},
		{"priority twice", []byte{2, 1, 0, 2, 1, 1}, "PRIORITY given twice"},
		{"priority of 2 bytes", []byte{2, 2, 0, 0}, "PRIORITY of 2 bytes"},
		{"empty priority", []byte{2, 0}, "PRIORITY of 0 bytes"},
		{"priority reserved bits", []byte{2, 1, 0x10}, "sets bits other than the urgency (0..7)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseChannelOptions(append([]byte{byte(len(tc.opts))}, tc.opts...))
			requireMalformed(t, err, "channel options", tc.reason)
		})
	}
	big := quicvarint.Append(nil, MaxChannelOptionsLen+1)
	_, _, err := ParseChannelOptions(big)
	requireMalformed(t, err, "channel options", "exceed 1024")
	_, _, _, err = ParseStreamHeader([]byte{0x03, 1, 'a'})
	requireMalformed(t, err, "channel header", "stream type 0x03")
}

func TestHelloHeadersExtension(t *testing.T) {
	h := Hello{Version: 1, MaxMessageSize: 1 << 20, PendingCap: 10, Headers: true}
	c, _, err := ParseControl(AppendControl(nil, Control{Type: ControlHello, Hello: h}))
	require.NoError(t, err)
	require.True(t, c.Hello.Headers)
	h.Headers = false
	c, _, err = ParseControl(AppendControl(nil, Control{Type: ControlHello, Hello: h}))
	require.NoError(t, err)
	require.False(t, c.Hello.Headers)
}

// errTyped fails t for an error that is neither ErrShort, a
// *MalformedError nor a *TooLargeError.
func errTyped(t *testing.T, err error) {
	t.Helper()
	var me *MalformedError
	var tl *TooLargeError
	if !errors.Is(err, ErrShort) && !errors.As(err, &me) && !errors.As(err, &tl) {
		t.Fatalf("untyped error %v", err)
	}
}
