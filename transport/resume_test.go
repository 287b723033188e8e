package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// sessionBook is the OnResume of the tests: the sessions a server knows,
// with each one's current token generation, as a session layer keeps them.
type sessionBook struct {
	mu     sync.Mutex
	gens   map[SessionID]uint64
	calls  int
	refuse error // returned by every call when set
}

func newSessionBook() *sessionBook { return &sessionBook{gens: make(map[SessionID]uint64)} }

func (b *sessionBook) add(id SessionID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gens[id] = 0
}

func (b *sessionBook) onResume(req ResumeRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if b.refuse != nil {
		return b.refuse
	}
	gen, ok := b.gens[req.ID]
	switch {
	case !ok:
		return ErrResumeExpired
	case req.Generation != gen:
		return fmt.Errorf("%w: generation %d presented, %d current", ErrResumeTokenReplayed, req.Generation, gen)
	}
	b.gens[req.ID] = gen + 1
	return nil
}

func (b *sessionBook) refuseWith(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refuse = err
}

func (b *sessionBook) callCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// resumeListener listens with book as OnResume and key as ResumeKey.
func resumeListener(t *testing.T, book *sessionBook, key *ResumeKey) *Listener {
	t.Helper()
	cfg := &Config{ResumeKey: key}
	if book != nil {
		cfg.OnResume = book.onResume
	}
	return listen(t, cfg)
}

// newSession dials a fresh session on ln, enters it in book and returns
// its token; both connections are closed when the test ends.
func newSession(t *testing.T, ln *Listener, book *sessionBook) ResumeToken {
	t.Helper()
	c := dialTest(t, ln, nil)
	s, err := ln.Accept(testCtx(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.CloseWithError(CodeNoError, "") })
	require.False(t, c.Resumed())
	require.Zero(t, s.ResumeGeneration())
	tok, ok := c.ResumeToken()
	require.True(t, ok, "a server with acknowledgements issues a token with a new session")
	require.Equal(t, s.SessionID(), tok.ID)
	if book != nil {
		book.add(tok.ID)
	}
	return tok
}

// dialResume dials ln asking to resume tok's session.
func dialResume(t *testing.T, ln *Listener, tok ResumeToken) (*Conn, error) {
	t.Helper()
	c, err := Dial(testCtx(t), ln.Addr().String(), testTLS(t).client, &Config{Resume: &tok})
	if err == nil {
		t.Cleanup(func() { _ = c.CloseWithError(CodeNoError, "") })
	}
	return c, err
}

// resumePair resumes tok's session on ln and returns both ends.
func resumePair(t *testing.T, ln *Listener, tok ResumeToken) (client, server *Conn) {
	t.Helper()
	client, err := dialResume(t, ln, tok)
	require.NoError(t, err)
	server, err = ln.Accept(testCtx(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.CloseWithError(CodeNoError, "") })
	return client, server
}

// resumedPair starts a session on a listener of its own and resumes it on
// a second connection, whose ends it returns.
func resumedPair(t *testing.T) (client, server *Conn) {
	t.Helper()
	book := newSessionBook()
	ln := resumeListener(t, book, nil)
	return resumePair(t, ln, newSession(t, ln, book))
}

// requireRefused checks that err is a *ResumeError for id wrapping want,
// matching its code and net.ErrClosed.
func requireRefused(t *testing.T, err error, id SessionID, want error, code ErrorCode) *ResumeError {
	t.Helper()
	var re *ResumeError
	require.ErrorAs(t, err, &re)
	require.Equal(t, id, re.ID)
	require.ErrorIs(t, err, want)
	require.ErrorIs(t, err, code)
	require.ErrorIs(t, err, net.ErrClosed)
	require.True(t, strings.HasPrefix(err.Error(), "transport: resume of session "+id.String()+" refused: "+strings.TrimPrefix(want.Error(), "transport: ")), err.Error())
	return re
}

func TestResumeAcceptedIssuesNextTokenAndOldOneIsReplayed(t *testing.T) {
	book := newSessionBook()
	ln := resumeListener(t, book, nil)
	tok0 := newSession(t, ln, book)

	c, s := resumePair(t, ln, tok0)
	require.True(t, c.Resumed())
	require.True(t, s.Resumed())
	require.Equal(t, tok0.ID, c.SessionID())
	require.Equal(t, tok0.ID, s.SessionID())
	require.Equal(t, uint64(1), s.ResumeGeneration())
	tok1, ok := c.ResumeToken()
	require.True(t, ok)
	require.Equal(t, tok0.ID, tok1.ID)
	require.NotEqual(t, tok0.Token, tok1.Token)
	srvTok, ok := s.ResumeToken()
	require.True(t, ok)
	require.Equal(t, tok1, srvTok, "the server's connection reports the token it issued")

	// The resumed connection carries messages as any other.
	ch, err := c.OpenChannel(testCtx(t), "chat")
	require.NoError(t, err)
	require.NoError(t, ch.Send(testCtx(t), []byte("again")))
	sch, err := s.AcceptChannel(testCtx(t))
	require.NoError(t, err)
	m, err := sch.Receive(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, "again", string(m))

	// The first token was used: the book refuses it as replayed.
	_, err = dialResume(t, ln, tok0)
	re := requireRefused(t, err, tok0.ID, ErrResumeTokenReplayed, CodeResumeReplayed)
	require.Equal(t, "generation 0 presented, 1 current", re.Detail)
	require.Equal(t, "transport: resume of session "+tok0.ID.String()+
		" refused: resume token already used: a later token was issued to the session: generation 0 presented, 1 current", err.Error())

	_, s2 := resumePair(t, ln, tok1)
	require.Equal(t, uint64(2), s2.ResumeGeneration())
	waitRefusals(t, ln, 1)
	st := ln.Stats()
	require.Equal(t, uint64(3), st.Accepted)
	require.Equal(t, uint64(2), st.Resumed)
	require.Zero(t, st.HandshakeFailures)
}

// waitRefusals waits until ln counted n refused resumes: the handshake
// goroutine counts one after it closed the connection.
func waitRefusals(t *testing.T, ln *Listener, n uint64) {
	t.Helper()
	require.Eventually(t, func() bool { return ln.Stats().ResumesRefused == n }, 10*time.Second, time.Millisecond)
}

func TestResumeTokenWithWrongMACIsInvalidWithoutAskingOnResume(t *testing.T) {
	book := newSessionBook()
	ln := resumeListener(t, book, nil)
	tok := newSession(t, ln, book)
	bad := ResumeToken{ID: tok.ID, Token: append([]byte(nil), tok.Token...)}
	bad.Token[len(bad.Token)-1] ^= 0x01

	_, err := dialResume(t, ln, bad)
	requireRefused(t, err, tok.ID, ErrResumeTokenInvalid, CodeResumeInvalid)
	require.Zero(t, book.callCount(), "OnResume is not asked about a token that fails its MAC")
	waitRefusals(t, ln, 1)
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	_, err = ln.Accept(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a refused resume never comes out of Accept")
}

func TestResumeWithAnotherSessionsTokenIsInvalid(t *testing.T) {
	book := newSessionBook()
	ln := resumeListener(t, book, nil)
	a := newSession(t, ln, book)
	b := newSession(t, ln, book)

	_, err := dialResume(t, ln, ResumeToken{ID: b.ID, Token: a.Token})
	requireRefused(t, err, b.ID, ErrResumeTokenInvalid, CodeResumeInvalid)
	require.Zero(t, book.callCount())
}

func TestResumeRefusedByOnResumeReachesTheClient(t *testing.T) {
	for _, tc := range []struct {
		refuse error
		want   error
		code   ErrorCode
		detail string
	}{
		{ErrResumeExpired, ErrResumeExpired, CodeResumeExpired, ""},
		{ErrResumeTokenReplayed, ErrResumeTokenReplayed, CodeResumeReplayed, ""},
		{ErrSessionAttached, ErrSessionAttached, CodeSessionAttached, ""},
		{ErrResumeTokenInvalid, ErrResumeTokenInvalid, CodeResumeInvalid, ""},
		{fmt.Errorf("%w: its connection from 10.0.0.1 is alive", ErrSessionAttached), ErrSessionAttached, CodeSessionAttached, "its connection from 10.0.0.1 is alive"},
		{errors.New("store unavailable"), ErrResumeExpired, CodeResumeExpired, "store unavailable"},
	} {
		t.Run(tc.refuse.Error(), func(t *testing.T) {
			book := newSessionBook()
			ln := resumeListener(t, book, nil)
			tok := newSession(t, ln, book)
			book.refuseWith(tc.refuse)
			_, err := dialResume(t, ln, tok)
			re := requireRefused(t, err, tok.ID, tc.want, tc.code)
			require.Equal(t, tc.detail, re.Detail)
			require.Equal(t, 1, book.callCount())
		})
	}
}

// A server that resumes no sessions issues no resume token: the client's
// next connection then begins a new session at once (with 0-RTT if it can)
// instead of first making a full handshake for a resume that is refused.
func TestServerWithoutOnResumeIssuesNoToken(t *testing.T) {
	ln := resumeListener(t, nil, nil)
	c := dialTest(t, ln, nil)
	s, err := ln.Accept(testCtx(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.CloseWithError(CodeNoError, "") })
	require.True(t, c.AcksEnabled())
	_, ok := c.ResumeToken()
	require.False(t, ok, "no token from a server without Config.OnResume")
}

// A token from a server that resumed sessions, presented after it came
// back with the same key but without resumption.
func TestResumeWithoutOnResumeIsExpired(t *testing.T) {
	key := &ResumeKey{4, 5, 6}
	book := newSessionBook()
	tok := newSession(t, resumeListener(t, book, key), book)
	ln := resumeListener(t, nil, key)
	_, err := dialResume(t, ln, tok)
	re := requireRefused(t, err, tok.ID, ErrResumeExpired, CodeResumeExpired)
	require.Equal(t, "this server keeps no sessions to resume", re.Detail)
}

// A restarted server: with a new random key its old tokens fail their
// MAC; with the key kept, the session is simply unknown.
func TestResumeAfterServerRestart(t *testing.T) {
	t.Run("new key", func(t *testing.T) {
		book := newSessionBook()
		tok := newSession(t, resumeListener(t, book, nil), book)
		_, err := dialResume(t, resumeListener(t, book, nil), tok)
		requireRefused(t, err, tok.ID, ErrResumeTokenInvalid, CodeResumeInvalid)
	})
	t.Run("key kept", func(t *testing.T) {
		key := &ResumeKey{1, 2, 3}
		old := newSessionBook()
		tok := newSession(t, resumeListener(t, old, key), old)
		_, err := dialResume(t, resumeListener(t, newSessionBook(), key), tok)
		requireRefused(t, err, tok.ID, ErrResumeExpired, CodeResumeExpired)
	})
}

func TestResumeTokenOnlyWithAcks(t *testing.T) {
	ln := listen(t, &Config{DisableAcks: true})
	c := dialTest(t, ln, nil)
	_, ok := c.ResumeToken()
	require.False(t, ok, "a server without acknowledgements issues no token")

	ln2 := listen(t, nil)
	c2 := dialTest(t, ln2, &Config{DisableAcks: true})
	_, ok = c2.ResumeToken()
	require.False(t, ok, "a client without acknowledgements gets no token")
	s2, err := ln2.Accept(testCtx(t))
	require.NoError(t, err)
	defer s2.CloseWithError(CodeNoError, "")
	_, ok = s2.ResumeToken()
	require.False(t, ok)

	_, err = Dial(testCtx(t), ln2.Addr().String(), testTLS(t).client, &Config{DisableAcks: true, Resume: &ResumeToken{Token: []byte{1}}})
	require.ErrorContains(t, err, "Config.Resume needs acknowledgements")
	_, err = Dial(testCtx(t), ln2.Addr().String(), testTLS(t).client, &Config{Resume: &ResumeToken{}})
	require.ErrorContains(t, err, "Config.Resume.Token of 0 bytes is outside 1..64")

	// A server that does not acknowledge cannot resume.
	_, err = Dial(testCtx(t), ln.Addr().String(), testTLS(t).client, &Config{Resume: &ResumeToken{Token: []byte{1}}})
	requireRefused(t, err, SessionID{}, ErrResumeExpired, CodeResumeExpired)
}

// A HELLO that asks to resume must carry ACKS and a 16-byte session ID.
func TestResumeMalformedHelloIsProtocolError(t *testing.T) {
	ln := resumeListener(t, newSessionBook(), nil)
	id := make([]byte, 16)
	for name, tc := range map[string]struct {
		hello wire.Hello
		want  string
	}{
		"no ACKS":    {wire.Hello{SessionID: id, ResumeToken: []byte{1}}, "HELLO carries RESUME_TOKEN without ACKS"},
		"short ID":   {wire.Hello{SessionID: id[:5], Acks: true, ResumeToken: []byte{1}}, "session ID of 5 bytes, want the 16-byte ID"},
		"without ID": {wire.Hello{Acks: true, ResumeToken: []byte{1}}, "session ID of 0 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.hello.Version, tc.hello.MaxMessageSize, tc.hello.PendingCap = wire.Version, 1<<20, 10
			err := rawHello(t, ln, tc.hello)
			var ae *quic.ApplicationError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, quic.ApplicationErrorCode(CodeProtocolError), ae.ErrorCode)
			require.Contains(t, ae.ErrorMessage, tc.want)
		})
	}
	// Counted once the handshake goroutine is past the close.
	require.Eventually(t, func() bool { return ln.Stats().HandshakeFailures == 3 }, 10*time.Second, time.Millisecond)
}

// rawHello sends h as a client's HELLO over plain QUIC and returns how the
// server answered: the error that ended the control stream.
func rawHello(t *testing.T, ln *Listener, h wire.Hello) error {
	t.Helper()
	tc, err := clientTLS(testTLS(t).client)
	require.NoError(t, err)
	qc, err := quic.DialAddr(testCtx(t), ln.Addr().String(), tc, &quic.Config{})
	require.NoError(t, err)
	defer qc.CloseWithError(0, "")
	s, err := qc.OpenStreamSync(testCtx(t))
	require.NoError(t, err)
	_, err = s.Write(wire.AppendControl([]byte{wire.StreamControl}, wire.Control{Type: wire.ControlHello, Hello: h}))
	require.NoError(t, err)
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = s.Read(make([]byte, 256))
	return err
}

// A DialEarly client learns of a refusal from WaitReady and its Context.
func TestResumeRefusedAfterDialEarly(t *testing.T) {
	ln := resumeListener(t, newSessionBook(), nil)
	tok := newSession(t, ln, nil)
	c, err := DialEarly(testCtx(t), ln.Addr().String(), testTLS(t).client, &Config{Resume: &tok})
	require.NoError(t, err)
	defer c.CloseWithError(CodeNoError, "")
	err = c.WaitReady(testCtx(t))
	requireRefused(t, err, tok.ID, ErrResumeExpired, CodeResumeExpired)
	<-c.Context().Done()
	requireRefused(t, context.Cause(c.Context()), tok.ID, ErrResumeExpired, CodeResumeExpired)
}

func TestResumeStateRoundTripOverSeveralFrames(t *testing.T) {
	c, s := resumedPair(t)

	big := make(map[string]uint64)
	for i := range 40 {
		big[strings.Repeat(string(rune('a'+i%26)), 200)+fmt.Sprint(i)+strings.Repeat("x", 55-len(fmt.Sprint(i)))] = uint64(i) << 33
	}
	require.NoError(t, c.SendResumeState(big))
	require.NoError(t, s.SendResumeState(map[string]uint64{"chat": 7}))
	got, err := s.PeerResumeState(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, big, got, "40 names of 255 bytes: more than 4096 bytes, in three frames")
	got, err = c.PeerResumeState(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"chat": 7}, got)

	require.ErrorContains(t, c.SendResumeState(nil), "already sent")
	require.ErrorIs(t, c.SendResumeState(map[string]uint64{"": 1}), ErrInvalidName)
	// The connection carries on.
	require.NoError(t, c.Context().Err())
	require.NoError(t, s.Context().Err())
}

func TestResumeStateErrorsOnFreshConnection(t *testing.T) {
	c, s, _ := pair(t, nil, nil)
	require.ErrorIs(t, c.SendResumeState(nil), ErrNotResumed)
	_, err := s.PeerResumeState(testCtx(t))
	require.ErrorIs(t, err, ErrNotResumed)
	require.ErrorIs(t, s.RejectResume("x"), ErrNotResumed)
	require.NoError(t, s.Context().Err(), "RejectResume closes nothing on a connection that did not resume")
}

// RESUME_STATE on a connection that did not resume, or a second one, is a
// protocol violation.
func TestResumeStateFrameOutOfPlaceIsProtocolError(t *testing.T) {
	t.Run("not resumed", func(t *testing.T) {
		c, s, _ := pair(t, nil, nil)
		writeRawControl(t, c, wire.AppendResumeState(nil, nil))
		<-s.Context().Done()
		requireProtocolClose(t, c, "RESUME_STATE on a connection that did not resume a session")
	})
	t.Run("twice", func(t *testing.T) {
		c, s := resumedPair(t)
		require.NoError(t, c.SendResumeState(map[string]uint64{"a": 1}))
		writeRawControl(t, c, wire.AppendResumeState(nil, nil))
		<-s.Context().Done()
		requireProtocolClose(t, c, "RESUME_STATE after the last one")
	})
	t.Run("a channel named twice", func(t *testing.T) {
		c, s := resumedPair(t)
		b := wire.AppendControl(nil, wire.Control{Type: wire.ControlResumeState, Entries: []wire.ResumeEntry{{Name: "a", Received: 1}}})
		writeRawControl(t, c, wire.AppendControl(b, wire.Control{Type: wire.ControlResumeState, Final: true, Entries: []wire.ResumeEntry{{Name: "a", Received: 2}}}))
		<-s.Context().Done()
		requireProtocolClose(t, c, `RESUME_STATE names channel "a" twice`)
	})
}

func TestResumeStateLimits(t *testing.T) {
	c, _ := resumedPair(t)
	many := make(map[string]uint64, MaxResumeChannels+1)
	for i := range MaxResumeChannels + 1 {
		many[fmt.Sprint(i)] = 1
	}
	require.ErrorContains(t, c.SendResumeState(many), "names 16385 channels, the limit is 16384 (MaxResumeChannels)")
	require.ErrorContains(t, c.SendResumeState(map[string]uint64{"a": 1 << 62}), `count 4611686018427387904 for channel "a" is over 2^62-1`)
	require.NoError(t, c.SendResumeState(map[string]uint64{"a": 1<<62 - 1}), "a refused state was not sent")
}

// Refusal codes mean a refused resume only while the resume is undecided:
// a resumed connection whose exchange is complete and that the server
// later closes with one of them (a newer connection took the session
// over) ends with a plain *ConnError.
func TestResumedConnectionClosedWithRefusalCodeIsConnError(t *testing.T) {
	c, s := resumedPair(t)
	ctx := testCtx(t)
	require.NoError(t, c.SendResumeState(nil))
	require.NoError(t, s.SendResumeState(nil))
	_, err := c.PeerResumeState(ctx)
	require.NoError(t, err)
	require.NoError(t, s.CloseWithError(CodeSessionAttached, "a newer connection resumed the session"))
	<-c.Context().Done()
	var ce *ConnError
	require.ErrorAs(t, context.Cause(c.Context()), &ce)
	require.Equal(t, CodeSessionAttached, ce.Code)
	var re *ResumeError
	require.False(t, errors.As(context.Cause(c.Context()), &re))
}

func writeRawControl(t *testing.T, c *Conn, b []byte) {
	t.Helper()
	c.ctrl.mu.Lock()
	defer c.ctrl.mu.Unlock()
	_, err := c.ctrl.s.Write(b)
	require.NoError(t, err)
}

func requireProtocolClose(t *testing.T, c *Conn, reason string) {
	t.Helper()
	select {
	case <-c.Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("the peer did not close the connection")
	}
	var ce *ConnError
	require.ErrorAs(t, context.Cause(c.Context()), &ce)
	require.True(t, ce.Remote)
	require.Equal(t, CodeProtocolError, ce.Code)
	require.Contains(t, ce.Reason, reason)
}

func TestRejectResumeEndsPeerWithResumeClaim(t *testing.T) {
	book := newSessionBook()
	ln := resumeListener(t, book, nil)
	tok := newSession(t, ln, book)
	c, s := resumePair(t, ln, tok)
	require.NoError(t, c.SendResumeState(map[string]uint64{"chat": 12}))
	got, err := s.PeerResumeState(testCtx(t))
	require.NoError(t, err)
	detail := fmt.Sprintf("channel %q: claims %d received, %d were sent", "chat", got["chat"], 10)
	require.NoError(t, s.RejectResume(detail))

	<-s.Context().Done()
	var ce *ConnError
	require.ErrorAs(t, context.Cause(s.Context()), &ce)
	require.Equal(t, CodeResumeClaim, ce.Code)

	_, err = c.PeerResumeState(testCtx(t))
	re := requireRefused(t, err, tok.ID, ErrResumeClaim, CodeResumeClaim)
	require.Equal(t, detail, re.Detail)
	requireRefused(t, context.Cause(c.Context()), tok.ID, ErrResumeClaim, CodeResumeClaim)
	require.Equal(t, "transport: resume of session "+tok.ID.String()+
		` refused: resume state claims messages that were never sent: channel "chat": claims 12 received, 10 were sent`, re.Error())
}

// The client's checks of the server's HELLO: a server that starts another
// session instead of resuming (one that predates resumption) is a refusal
// as expired; a token without ACKS is a protocol error.
func TestResumeClientChecksServerHello(t *testing.T) {
	want := SessionID{1}
	cfg := &Config{Resume: &ResumeToken{ID: want, Token: []byte{1}}}
	other := SessionID{2}
	_, err := clientResume(cfg, &wire.Hello{SessionID: other[:], Acks: true})
	re := requireRefused(t, err, want, ErrResumeExpired, CodeResumeExpired)
	require.Equal(t, "the server started session "+other.String()+" instead", re.Detail)

	_, err = clientResume(cfg, &wire.Hello{SessionID: want[:]})
	require.ErrorContains(t, err, "resumed session "+want.String()+" without ACKS")
	_, err = clientResume(&Config{}, &wire.Hello{SessionID: other[:], ResumeToken: []byte{1}})
	require.ErrorContains(t, err, "RESUME_TOKEN without ACKS")

	res, err := clientResume(cfg, &wire.Hello{SessionID: want[:], Acks: true, ResumeToken: []byte{7}})
	require.NoError(t, err)
	require.Equal(t, resumeInfo{resumed: true, token: []byte{7}}, res)
}

// Tokens are bound to their session and generation, and nothing else
// verifies: a generation that cannot be incremented, a short MAC, or none.
func TestResumeKeyTokens(t *testing.T) {
	k := &ResumeKey{9}
	id := SessionID{3}
	tok := k.token(id, 5)
	require.LessOrEqual(t, len(tok), wire.MaxResumeTokenLen)
	gen, ok := k.verify(id, tok)
	require.True(t, ok)
	require.Equal(t, uint64(5), gen)
	_, ok = k.verify(SessionID{4}, tok)
	require.False(t, ok, "another session")
	_, ok = (&ResumeKey{8}).verify(id, tok)
	require.False(t, ok, "another key")
	_, ok = k.verify(id, tok[:len(tok)-1])
	require.False(t, ok, "a short MAC")
	_, ok = k.verify(id, nil)
	require.False(t, ok, "no token")
	_, ok = k.verify(id, k.token(id, 1<<62-1))
	require.False(t, ok, "the last generation cannot be resumed")
}

// A server that answered HELLO but could not hand the connection to the
// session after all closes it with a refusal code before its
// RESUME_STATE: the client sees the refusal as a *ResumeError.
func TestRefusalAfterHelloBeforeResumeStateIsResumeError(t *testing.T) {
	c, s := resumedPair(t)
	require.NoError(t, s.CloseWithError(CodeSessionAttached, "a newer connection resumed the session"))
	<-c.Context().Done()
	var re *ResumeError
	require.ErrorAs(t, context.Cause(c.Context()), &re)
	require.ErrorIs(t, re, ErrSessionAttached)
}
