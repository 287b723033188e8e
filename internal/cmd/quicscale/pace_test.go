package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/transport"
)

func TestPacerHalvesTheWindowOncePerStallAndGrowsItBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := newPacer(8, time.Second)
		var tickets []ticket
		for range 8 {
			tk, err := p.acquire(ctx)
			require.NoError(t, err)
			tickets = append(tickets, tk)
		}
		// All eight were caught by the same stall: the window is cut once.
		for _, tk := range tickets {
			p.release(tk, 2*time.Second, false)
		}
		require.Equal(t, paceStats{limit: 4, lowest: 4, backoffs: 1}, p.stats())

		// A set-up that started after the cut and failed congested cuts again.
		tk, err := p.acquire(ctx)
		require.NoError(t, err)
		p.release(tk, time.Millisecond, true)
		require.Equal(t, paceStats{limit: 2, lowest: 2, backoffs: 2}, p.stats())

		// A window's worth of fast set-ups widens it by one, up to the maximum.
		for range 100 {
			tk, err := p.acquire(ctx)
			require.NoError(t, err)
			p.release(tk, time.Millisecond, false)
		}
		require.Equal(t, paceStats{limit: 8, lowest: 2, backoffs: 2}, p.stats())
	})
}

func TestPacerHoldsSetUpsBackDuringItsPauseAndAtTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := newPacer(2, time.Second)
		a, err := p.acquire(ctx)
		require.NoError(t, err)
		b, err := p.acquire(ctx)
		require.NoError(t, err)

		got := make(chan time.Time, 1)
		go func() {
			tk, err := p.acquire(ctx)
			if err == nil {
				got <- tk.start
			}
		}()
		synctest.Wait()
		require.Empty(t, got, "a third set-up waits while two run")

		// The first one was slow: the window goes to 1, with one still
		// running, and new set-ups pause for minPause.
		cut := time.Now()
		p.release(a, 2*time.Second, false)
		synctest.Wait()
		require.Empty(t, got, "the window is full")
		p.release(b, time.Millisecond, false)
		start := <-got
		require.GreaterOrEqual(t, start.Sub(cut), minPause, "the pause after the cut is kept")
	})
}

func TestPacerAcquireEndsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(1, time.Second)
		_, err := p.acquire(context.Background())
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err = p.acquire(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestRetryableTellsCongestionFromRefusals(t *testing.T) {
	closed := &quic.TransportError{Remote: true, ErrorCode: quic.ApplicationErrorErrorCode}
	refused := &quic.TransportError{Remote: true, ErrorCode: quic.ConnectionRefused}
	// What a client whose handshake completed sees when quicsrv's listener
	// closes it for a HELLO that came too late.
	helloTimeout := &transport.DialError{Err: &transport.ConnError{Remote: true, Code: transport.CodeProtocolError,
		Reason: "no HELLO within the handshake timeout of 5s"}}
	noAnswer := &transport.DialError{Addr: "127.0.0.1:1", Kind: transport.ErrNoAnswer, Err: errors.New("timeout")}
	for _, c := range []struct {
		err    error
		reason int
		ok     bool
	}{
		{fmt.Errorf("session 3: %w", closed), retryClosed, true},
		{fmt.Errorf("session 3: %w", helloTimeout), retryClosed, true},
		{fmt.Errorf("session 3: %w", &transport.DialError{Err: &transport.ConnError{Remote: true, Code: transport.CodeTooManySessions}}), 0, false},
		{&transport.ConnError{Remote: true, Code: transport.CodeProtocolError}, 0, false},
		{fmt.Errorf("session 3: %w", refused), retryRefused, true},
		{fmt.Errorf("session 3: %w", noAnswer), retryTimeout, true},
		{fmt.Errorf("session 3: echo: receive: %w", context.DeadlineExceeded), retryTimeout, true},
		{fmt.Errorf("session 3: %w", &quic.ApplicationError{Remote: true, ErrorCode: quic.ApplicationErrorCode(transport.CodeTooManySessions)}), 0, false},
		{&quic.TransportError{Remote: false, ErrorCode: quic.ApplicationErrorErrorCode}, 0, false},
		{errors.New("certificate not trusted"), 0, false},
	} {
		reason, ok := retryable(c.err)
		require.Equal(t, c.ok, ok, "%v", c.err)
		require.Equal(t, c.reason, reason, "%v", c.err)
	}
}
