package transport

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestIdleConnHoldsNoHandshakeCallback checks that an accepted connection
// gave back its place in the per-address handshake gate and holds no
// callback on its QUIC context for it: the release is unregistered (and
// the registration dropped, since the token stays reachable from the
// connection's context) once the handshake completed, instead of waiting
// for the connection's end.
func TestIdleConnHoldsNoHandshakeCallback(t *testing.T) {
	_, server, _ := pair(t, nil, nil)
	tok, ok := server.qc.Context().Value(handshakeTokenKey{}).(*handshakeToken)
	require.True(t, ok, "a listener's connection holds a handshake token")
	require.True(t, tok.released.Load(), "the place in the gate is given back at Accept")
	require.Nil(t, tok.stop, "the release was unregistered from the connection's context, and the registration dropped")
	// The connection still works and ends as before.
	require.NoError(t, server.Context().Err())
}

// TestConnSizeClass checks that a connection's own struct, which every idle
// connection holds, stays within the 1152-byte allocation size class: the
// TLS state read after the handshake is kept behind a pointer, allocated
// only when read.
func TestConnSizeClass(t *testing.T) {
	require.LessOrEqual(t, unsafe.Sizeof(Conn{}), uintptr(1152))
	_, server, _ := pair(t, nil, nil)
	require.Nil(t, server.state, "an idle connection has not read its TLS state")
	st := server.ConnectionState()
	require.True(t, st.TLS.HandshakeComplete)
}
