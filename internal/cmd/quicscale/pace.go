package main

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/transport"
)

// Bounds of the pacer's pause after a slow or failed set-up.
const (
	minPause = 250 * time.Millisecond
	maxPause = 4 * time.Second
)

// pacer bounds how many set-ups run at once and adapts the bound to how the
// server copes: a set-up slower than slow, or one that failed in a way a
// retry may cure, halves the window (down to 1) and stops new set-ups for a
// pause that doubles while set-ups stay slow; every window's worth of fast
// set-ups in a row widens it by one, up to max. Only set-ups that started
// after the last cut count against the window again, so that one stall of
// the server halves it once, not once per set-up it caught, and a set-up
// from before the cut does not widen it again. Safe for
// concurrent use.
type pacer struct {
	max  int
	slow time.Duration

	mu       sync.Mutex
	limit    int       // set-ups allowed at once now
	running  int       // set-ups under way
	fast     int       // fast set-ups in a row since the window last changed
	epoch    int       // times the window was halved: a set-up that started before a cut does not cut again
	until    time.Time // no set-up starts before this
	pause    time.Duration
	lowest   int           // the narrowest the window has been
	backoffs int           // times the window was halved
	changed  chan struct{} // closed and replaced whenever a set-up may start
}

func newPacer(max int, slow time.Duration) *pacer {
	return &pacer{max: max, slow: slow, limit: max, lowest: max, pause: minPause, changed: make(chan struct{})}
}

// ticket is a set-up under way: when it started, and the pacer's epoch then.
type ticket struct {
	start time.Time
	epoch int
}

// acquire waits until a set-up may start, or ctx ends, and returns the
// set-up's ticket to pass to release.
func (p *pacer) acquire(ctx context.Context) (ticket, error) {
	for {
		p.mu.Lock()
		now := time.Now()
		wait := p.until.Sub(now)
		if wait <= 0 && p.running < p.limit {
			p.running++
			t := ticket{start: now, epoch: p.epoch}
			p.mu.Unlock()
			return t, nil
		}
		changed := p.changed
		p.mu.Unlock()
		if err := waitFor(ctx, changed, wait); err != nil {
			return ticket{}, err
		}
	}
}

// waitFor waits until changed is closed, wait has passed (when positive)
// or ctx ends.
func waitFor(ctx context.Context, changed <-chan struct{}, wait time.Duration) error {
	var timer <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-changed:
	case <-timer:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// release ends the set-up of t, which took took; congested tells whether
// it failed in a way that says the server is overwhelmed (see retryable).
func (p *pacer) release(t ticket, took time.Duration, congested bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	defer p.wake()
	if t.epoch != p.epoch {
		return // started before the last cut: says nothing of the server now
	}
	if !congested && took < p.slow {
		p.pause = minPause
		p.fast++
		if p.fast >= p.limit && p.limit < p.max {
			p.limit++
			p.fast = 0
		}
		return
	}
	p.limit = max(1, p.limit/2)
	p.lowest = min(p.lowest, p.limit)
	p.fast = 0
	p.backoffs++
	p.epoch++
	p.until = time.Now().Add(p.pause)
	p.pause = min(2*p.pause, maxPause)
}

// wake lets the set-ups waiting in acquire look again. p.mu is held.
func (p *pacer) wake() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// paceStats is what the pacer did.
type paceStats struct {
	limit, lowest, backoffs int
}

func (p *pacer) stats() paceStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return paceStats{limit: p.limit, lowest: p.lowest, backoffs: p.backoffs}
}

// Why a set-up is tried again (see retryable).
const (
	retryTimeout = iota // no answer in time: the dial's or the echo's bound
	retryClosed         // the server closed the connection during its handshake
	retryRefused        // the server refused the handshake (its per-address cap)
	retryReasons
)

// retryNames name the retry reasons in the report.
var retryNames = [retryReasons]string{
	retryTimeout: "timed out",
	retryClosed:  "closed by the server during the handshake",
	retryRefused: "refused by the server",
}

// retryable tells whether a failed set-up may be tried again, and why: it
// timed out (the server, or this process, did not keep up), the server
// closed the connection during the dial for want of a HELLO in time
// (quicsrv's listener closes it with CodeProtocolError when the HELLO
// has not arrived within its handshake timeout; before the client's own
// handshake completes, QUIC carries that close as a bare
// APPLICATION_ERROR), or the server refused it with CONNECTION_REFUSED.
// Any other refusal, such as the server's session limit, is not retried.
func retryable(err error) (int, bool) {
	var te *quic.TransportError
	var ne net.Error
	var de *transport.DialError
	var ce *transport.ConnError
	switch {
	case errors.As(err, &te) && te.Remote && te.ErrorCode == quic.ApplicationErrorErrorCode,
		errors.As(err, &de) && errors.As(err, &ce) && ce.Remote && ce.Code == transport.CodeProtocolError:
		return retryClosed, true
	case errors.As(err, &te) && te.Remote && te.ErrorCode == quic.ConnectionRefused:
		return retryRefused, true
	case errors.Is(err, transport.ErrNoAnswer), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return retryTimeout, true
	}
	return 0, false
}
