package transport

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMatchSubjectHasNATSSemantics(t *testing.T) {
	for _, tc := range []struct {
		pattern, subject string
		want             bool
	}{
		{"orders", "orders", true},
		{"orders", "orders.1", false},
		{"orders.*", "orders.1", true},
		{"orders.*", "orders", false},
		{"orders.*", "orders.1.2", false},
		{"orders.>", "orders.1", true},
		{"orders.>", "orders.1.2.3", true},
		{"orders.>", "orders", false},
		{">", "a", true},
		{">", "a.b", true},
		{"*", "a", true},
		{"*", "a.b", false},
		{"*.b.*", "a.b.c", true},
		{"*.b.*", "a.x.c", false},
		{"a.*.c.>", "a.b.c.d.e", true},
		{"a.*.c.>", "a.b.c", false},
		{"a.b", "a.c", false},
		{"a.b*", "a.bc", false},    // "b*" is a literal token
		{"a.b*", "a.b*", true},     // and matches only itself
		{"café.*", "café.x", true}, // tokens are bytes of UTF-8
	} {
		require.Equal(t, tc.want, MatchSubject(tc.pattern, tc.subject), "%q ~ %q", tc.pattern, tc.subject)
	}
}

func TestSubjectValidation(t *testing.T) {
	for _, s := range []string{"*", ">", "a.*", "a.>", "*.b", "a.*.c"} {
		require.True(t, IsWildcard(s), s)
		require.ErrorIs(t, ValidateSubject(s), ErrWildcardSubject, s)
		require.NoError(t, ValidatePattern(s), s)
	}
	for _, s := range []string{"a", "a.b", "a*", "a.b>", "a..b", ".a", "a.", "**"} {
		require.False(t, IsWildcard(s), s)
		require.NoError(t, ValidateSubject(s), "literal names are valid subjects: %q", s)
		require.NoError(t, ValidatePattern(s), "literal names are valid patterns: %q", s)
	}
	for _, s := range []string{"a.>.b", ">.a", "a..*", "*.", ".>", ""} {
		err := ValidatePattern(s)
		require.ErrorIs(t, err, ErrInvalidSubject, s)
		var se *SubjectError
		require.ErrorAs(t, err, &se)
		require.Equal(t, s, se.Subject)
	}
	err := ValidateSubject("orders.*")
	require.EqualError(t, err, `transport: subject "orders.*": holds a wildcard token ("*" or ">"): it can be subscribed to, not published to`)
	require.ErrorIs(t, ValidateSubject(string(make([]byte, 256))), ErrInvalidSubject)
	require.ErrorIs(t, ValidateSubject("\xff"), ErrInvalidSubject)
}

func TestHeaderMethods(t *testing.T) {
	var h Header
	h.Add("a", "1")
	h.Add("b", "2")
	h.Add("a", "3")
	require.Equal(t, "1", h.Get("a"))
	require.Equal(t, "", h.Get("c"))
	require.Equal(t, []string{"1", "3"}, h.Values("a"))
	h.Set("a", "x")
	require.Equal(t, Header{{"a", "x"}, {"b", "2"}}, h)
	h.Set("c", "4")
	require.Equal(t, Header{{"a", "x"}, {"b", "2"}, {"c", "4"}}, h)
	h.Del("b")
	require.Equal(t, Header{{"a", "x"}, {"c", "4"}}, h)
	m := &Message{Header: Header{{HeaderReplyTo, "_INBOX.x"}, {HeaderMsgID, "7"}}}
	require.Equal(t, "_INBOX.x", m.ReplyTo())
	require.Equal(t, "7", m.ID())
}

func TestGapErrorAndReasons(t *testing.T) {
	err := error(&GapError{Channel: "logs", Gap: Gap{Missed: 3, Reason: GapSlowConsumer}})
	require.ErrorIs(t, err, ErrGap)
	require.EqualError(t, err, `transport: channel "logs": 3 messages missed (slow_consumer)`)
	require.Equal(t, "disconnect", GapDisconnect.String())
	require.Equal(t, "backplane", GapBackplane.String())
	require.Equal(t, "reason(9)", GapReason(9).String())
	require.EqualError(t, &HeaderError{Key: "a b", Reason: "bad"}, `transport: header "a b": bad`)
	require.EqualError(t, &HeaderError{Reason: "too many"}, `transport: headers: too many`)
}
