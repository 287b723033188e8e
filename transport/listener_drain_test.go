package transport

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Drain hands over every connection whose HELLO the listener answered
// (their clients' Dial returned) and Accept has not returned, and from
// then on refuses new connections with GOING_AWAY before answering, so
// that a client's Dial never returns a connection that nobody will serve.
func TestDrainHandsOverAnsweredConnectionsAndRefusesNewOnesBeforeAnswering(t *testing.T) {
	ln := listen(t, nil)
	answered := []*Conn{dialTest(t, ln, nil), dialTest(t, ln, nil)}

	drained := ln.Drain()
	require.Len(t, drained, len(answered), "both connections Dial returned are handed over")
	ids := map[SessionID]bool{}
	for _, c := range drained {
		ids[c.SessionID()] = true
		require.NoError(t, c.Context().Err(), "handed over open")
		t.Cleanup(func() { _ = c.CloseWithError(CodeNoError, "") })
	}
	for _, c := range answered {
		require.True(t, ids[c.SessionID()])
	}

	ctx := testCtx(t)
	_, err := Dial(ctx, ln.Addr().String(), testTLS(t).client, nil)
	require.ErrorIs(t, err, CodeGoingAway, "refused before its HELLO was answered: Dial fails")
	require.Empty(t, ln.Drain(), "Drain is idempotent")
	actx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = ln.Accept(actx)
	require.ErrorIs(t, err, context.Canceled, "nothing is left for Accept")
	st := ln.Stats()
	require.Equal(t, uint64(2), st.Accepted)
	require.Equal(t, uint64(1), st.RefusedDraining)
}

func TestDrainedListenerRefusesAResumeWithoutAskingOnResume(t *testing.T) {
	book := newSessionBook()
	ln := resumeListener(t, book, nil)
	tok := newSession(t, ln, book)
	for _, c := range ln.Drain() {
		t.Cleanup(func() { _ = c.CloseWithError(CodeNoError, "") })
	}
	_, err := dialResume(t, ln, tok)
	require.ErrorIs(t, err, CodeGoingAway, "refused as draining")
	require.Zero(t, book.callCount(), "OnResume is not asked for a resume the listener refuses")
	require.Equal(t, uint64(1), ln.Stats().RefusedDraining)
}
