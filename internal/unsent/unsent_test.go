package unsent

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quicmsg/quicmsg/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A message whose subject is its channel's name is kept plain, so that it
// is written byte for byte as Send writes it; Own copies what the caller
// may reuse.
func TestOfKeepsPlainMessagesPlainAndOwnCopies(t *testing.T) {
	m := &transport.Message{Subject: "orders", Data: []byte("x")}
	u := Of("orders", m)
	require.False(t, NeedsHeaders(u))
	require.Equal(t, 1, Size(u))

	m = &transport.Message{Subject: "orders.eu", Header: transport.Header{{Key: "k", Value: "vv"}}, Data: []byte("abc")}
	u = Own(Of("orders", m))
	require.True(t, NeedsHeaders(u))
	require.Equal(t, 3+len("orders.eu")+1+2, Size(u))
	m.Data[0], m.Header[0].Value = 'z', "changed"
	require.Equal(t, "abc", string(u.Data))
	require.Equal(t, "vv", u.Header[0].Value)

	g := Own(transport.UnsentMessage{Gap: &transport.Gap{Missed: 1}})
	require.Equal(t, GapCharge, Size(g))
}

// Check refuses what the peer of the last connection would refuse, with
// the transport's errors.
func TestCheckRefusesWhatTheWriteWould(t *testing.T) {
	plain := transport.UnsentMessage{Data: []byte("x")}
	require.NoError(t, Check("orders", plain, false))
	require.ErrorIs(t, Check("orders.*", plain, true), transport.ErrWildcardSubject)
	require.ErrorIs(t, Check("orders", transport.UnsentMessage{Subject: "a.>"}, true), transport.ErrWildcardSubject)
	require.NoError(t, Check("orders.*", transport.UnsentMessage{Subject: "orders.eu"}, true))
	require.ErrorIs(t, Check("orders", transport.UnsentMessage{Subject: "orders.eu"}, false), transport.ErrHeadersUnsupported)
	require.ErrorIs(t, Check("orders", transport.UnsentMessage{Gap: &transport.Gap{Missed: 2}}, false), transport.ErrHeadersUnsupported)
	require.ErrorIs(t, Check("orders", transport.UnsentMessage{Gap: &transport.Gap{}}, true), transport.ErrInvalidGap)
	require.NoError(t, Check("orders.*", transport.UnsentMessage{Gap: &transport.Gap{Missed: 2}}, true))
	require.True(t, Refused(&transport.HeaderError{Key: "a:b", Reason: "bad"}))
	require.False(t, Refused(transport.ErrClosed))
}
