package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/quic-go/quic-go"
)

// MaxMigrationPaths is the most local sockets one connection can be moved
// to over its life, counting every socket probed, successfully or not.
// quic-go v0.65 keeps a connection registered on every socket that has
// carried a probe of it until the connection ends, and closing such a
// socket ends the connection: each one stays open until then, and this
// bound keeps their number finite.
const MaxMigrationPaths = 8

// Errors of [Conn.Migrate] and [Conn.MigrateAddr], wrapped in a
// [*MigrationError].
var (
	// ErrNotClient is returned for a server's connection: only the client
	// of a QUIC connection may move it to another address (RFC 9000,
	// section 9); a server follows its client there by itself.
	ErrNotClient = errors.New("transport: only the client side of a connection can migrate")
	// ErrNoPathAnswer is returned when the server did not answer the probe
	// of the new path within Config.HandshakeTimeout.
	ErrNoPathAnswer = errors.New("transport: no answer from the server on the new path")
	// ErrNoSocket is returned by Migrate for a nil *quic.Transport or one
	// without a Conn.
	ErrNoSocket = errors.New("transport: Migrate needs a *quic.Transport with a UDP socket (Conn)")
	// ErrTooManyPaths is returned once a connection was moved to
	// MaxMigrationPaths different sockets.
	ErrTooManyPaths = fmt.Errorf("transport: a connection can use at most %d local sockets besides the one it was dialled on", MaxMigrationPaths)
)

// MigrationError reports why a migration failed. The connection stays on
// the socket it used before, unless it ended: Err then matches ErrClosed
// and wraps why it ended.
type MigrationError struct {
	LocalAddr string // the local address the connection was to move to
	Reason    string // what a person should know
	Err       error  // ErrNotClient, ErrNoPathAnswer, ErrTooManyPaths, ErrClosed, the caller's context's error, or quic-go's
}

func (e *MigrationError) Error() string {
	return fmt.Sprintf("transport: migrate to %s: %s: %v", e.LocalAddr, e.Reason, e.Err)
}

func (e *MigrationError) Unwrap() error { return e.Err }

// Timeout reports whether the migration failed for lack of an answer in
// time: ErrNoPathAnswer, or the caller's context's deadline.
func (e *MigrationError) Timeout() bool {
	return errors.Is(e.Err, ErrNoPathAnswer) || errors.Is(e.Err, context.DeadlineExceeded)
}

// Temporary is Timeout, so that a MigrationError is a net.Error: a path
// that did not answer may answer later.
func (e *MigrationError) Temporary() bool { return e.Timeout() }

var _ net.Error = (*MigrationError)(nil)

// migration is a client connection's state for Migrate and MigrateAddr.
type migration struct {
	// turn is held (a value sent) by one migration at a time, across its
	// probe (bounded by the caller's context and Config.HandshakeTimeout);
	// waiting for it is bounded by the waiter's context and the
	// connection's end (takeTurn). It guards current, used and paths.
	turn    chan struct{}
	current *quic.Transport          // the socket the connection moved to last; nil for the one it was dialled on
	used    map[*quic.Transport]bool // every socket a path was added on, for MaxMigrationPaths
	// paths holds the path of every socket the connection moved to, so
	// that moving back probes the same quic.Path again: quic-go binds a
	// socket to the first path added on it, and a second path on the same
	// socket may never be validated by the server.
	paths map[*quic.Transport]*quic.Path

	// sockMu guards owned and released. The sockets MigrateAddr opened
	// are owned by the Conn: release closes them once the QUIC connection
	// has ended (closing one earlier would end it).
	sockMu   sync.Mutex
	owned    []*ownedSocket
	released bool
	done     chan struct{} // closed when release has closed every owned socket
}

// ownedSocket is a UDP socket MigrateAddr opened, with its quic.Transport.
type ownedSocket struct {
	tr  *quic.Transport
	udp *net.UDPConn
}

func (s *ownedSocket) close() {
	if s == nil {
		return
	}
	_ = s.tr.Close()
	_ = s.udp.Close()
}

// adopt makes the Conn the owner of s; it reports false, and the caller
// closes s, once the connection has ended.
func (m *migration) adopt(s *ownedSocket) bool {
	m.sockMu.Lock()
	defer m.sockMu.Unlock()
	if m.released {
		return false
	}
	m.owned = append(m.owned, s)
	return true
}

// release closes the owned sockets, once: it runs when quic-go's connection
// context ends (context.AfterFunc, set in newConn) and in the close, which
// so waits for it.
func (m *migration) release() {
	m.sockMu.Lock()
	if m.released {
		m.sockMu.Unlock()
		<-m.done
		return
	}
	m.released = true
	owned := m.owned
	m.owned = nil
	m.sockMu.Unlock()
	for _, s := range owned {
		s.close()
	}
	close(m.done)
}

// MigrateAddr moves the connection to a UDP socket bound to localAddr
// ("host:port"; port 0 picks a free one), as [Conn.Migrate] does. The Conn
// owns the socket: it closes it after the connection has ended, together
// with every other socket the connection was moved to, since quic-go
// cannot let go of a socket the connection used before it ends.
//
// If the connection already owns a socket on localAddr (the same IP, and
// the same port unless localAddr's is 0) other than the one in use, it
// moves back to that socket instead of opening another: a client that goes
// back and forth between two interfaces uses two sockets, however often it
// moves.
//
// Only a client's connection can migrate. Errors are [*MigrationError]s;
// on failure the connection stays where it was. Safe for concurrent use:
// migrations of one connection run one at a time.
func (c *Conn) MigrateAddr(ctx context.Context, localAddr string) error {
	fail := func(reason string, err error) error {
		return &MigrationError{LocalAddr: localAddr, Reason: reason, Err: err}
	}
	if !c.isClient {
		return fail("this is the server's side", ErrNotClient)
	}
	ua, err := net.ResolveUDPAddr("udp", localAddr)
	if err != nil {
		return fail("bad local address", err)
	}
	if err := c.takeTurn(ctx); err != nil {
		return fail("not started", err)
	}
	defer c.endTurn()
	if s := c.mig.reusable(ua); s != nil {
		return c.migrateLocked(ctx, s.tr, nil)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return fail("cannot open a UDP socket there", err)
	}
	s := &ownedSocket{tr: &quic.Transport{Conn: udp}, udp: udp}
	return c.migrateLocked(ctx, s.tr, s)
}

// reusable returns an owned socket on ua other than the one in use, or
// nil. Called holding the migration turn.
func (m *migration) reusable(ua *net.UDPAddr) *ownedSocket {
	m.sockMu.Lock()
	defer m.sockMu.Unlock()
	for _, s := range m.owned {
		la := s.udp.LocalAddr().(*net.UDPAddr)
		if s.tr != m.current && la.IP.Equal(ua.IP) && (ua.Port == 0 || ua.Port == la.Port) {
			return s
		}
	}
	return nil
}

// Migrate moves the connection to the caller's transport tr, a UDP socket
// of its own (quic-go's connection migration, RFC 9000 section 9): it
// probes the new path, waits for the server's answer, and switches to it,
// so that from then on the connection sends from tr's address. Channels,
// their messages in flight and the session are unaffected: nothing is
// re-sent, the server keeps the same connection and sees the new address
// as [Conn.RemoteAddr]. A path that does not work leaves the connection on
// its old socket, but counts towards MaxMigrationPaths and stays known to
// quic-go until the connection ends (so tr must stay open); a ctx that has
// ended before the migration began uses up nothing.
//
// The caller owns tr and must keep it open until the connection has
// ended: quic-go keeps the connection registered on every socket it used,
// and closing one of them ends the connection, even after it moved on.
// Moving back to a socket used before is allowed. Moving to the socket in
// use returns nil at once.
//
// Preconditions, each a [*MigrationError] when not met: the connection is
// a client's (ErrNotClient) and alive (ErrClosed); its handshake completes
// within ctx; the server answers the probe within ctx and
// Config.HandshakeTimeout (ErrNoPathAnswer: the new socket may not reach
// it, or the server has not yet issued the spare connection ID a new path
// needs, which it does right after the handshake); at most
// MaxMigrationPaths sockets per connection (ErrTooManyPaths).
//
// Safe for concurrent use: migrations of one connection run one at a time.
func (c *Conn) Migrate(ctx context.Context, tr *quic.Transport) error {
	if tr == nil || tr.Conn == nil {
		return &MigrationError{LocalAddr: "(none)", Reason: "no socket", Err: ErrNoSocket}
	}
	return c.migrate(ctx, tr)
}

// migrate moves the connection to the caller's tr.
func (c *Conn) migrate(ctx context.Context, tr *quic.Transport) error {
	if !c.isClient {
		return &MigrationError{LocalAddr: tr.Conn.LocalAddr().String(), Reason: "this is the server's side", Err: ErrNotClient}
	}
	if err := c.takeTurn(ctx); err != nil {
		return &MigrationError{LocalAddr: tr.Conn.LocalAddr().String(), Reason: "not started", Err: err}
	}
	defer c.endTurn()
	return c.migrateLocked(ctx, tr, nil)
}

// takeTurn waits for the connection's other migration, if any, to finish,
// no longer than ctx and the connection last. An ended ctx takes no turn,
// so that it opens no socket and uses up no path.
func (c *Conn) takeTurn(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.mig.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return c.closedOr(ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		c.endTurn()
		return err
	}
	return nil
}

// endTurn lets the next migration run.
func (c *Conn) endTurn() { <-c.mig.turn }

// migrateLocked moves the connection to tr; s, if not nil, is a new socket
// behind tr, which the Conn adopts, or closes here if the connection does
// not use it. Called holding the migration turn.
func (c *Conn) migrateLocked(ctx context.Context, tr *quic.Transport, s *ownedSocket) error {
	to := tr.Conn.LocalAddr().String()
	p, err := c.addPath(ctx, tr, s)
	if err != nil || p == nil {
		s.close()
		return err
	}
	if err := c.probe(ctx, p); err != nil {
		c.mig.abandon(tr, p)
		return &MigrationError{LocalAddr: to, Reason: c.probeFault(ctx, err), Err: c.closedOr(err)}
	}
	if err := p.Switch(); err != nil {
		c.mig.abandon(tr, p)
		return &MigrationError{LocalAddr: to, Reason: "switching to the validated path failed", Err: c.closedOr(err)}
	}
	c.mig.paths[tr] = p
	c.mig.current = tr
	c.local.Store(&localAddr{tr.Conn.LocalAddr()})
	return nil
}

// addPath checks the preconditions of a migration to tr and adds the path,
// adopting s. It returns a nil path and nil error when tr is the socket in
// use. Called holding the migration turn.
func (c *Conn) addPath(ctx context.Context, tr *quic.Transport, s *ownedSocket) (*quic.Path, error) {
	to := tr.Conn.LocalAddr().String()
	fail := func(reason string, err error) (*quic.Path, error) {
		return nil, &MigrationError{LocalAddr: to, Reason: reason, Err: err}
	}
	if err := c.err(); err != nil {
		return fail("the connection has ended", fmt.Errorf("%w: %w", ErrClosed, err))
	}
	if err := c.waitHandshake(ctx, true); err != nil {
		return fail("the handshake did not complete", c.closedOr(err))
	}
	c.handshakeState() // before quic-go can switch paths; see handshakeState
	if tr == c.mig.current {
		return nil, nil
	}
	if p, ok := c.mig.paths[tr]; ok {
		return p, nil
	}
	if !c.mig.used[tr] && len(c.mig.used) >= MaxMigrationPaths {
		return fail(fmt.Sprintf("the connection already used %d sockets", len(c.mig.used)), ErrTooManyPaths)
	}
	p, err := c.qc.AddPath(tr)
	if err != nil {
		return fail("quic-go refused the path", c.closedOr(err))
	}
	if s != nil && !c.mig.adopt(s) {
		return fail("the connection has ended", c.closedOr(ErrClosed))
	}
	if c.mig.used == nil {
		c.mig.used = make(map[*quic.Transport]bool)
		c.mig.paths = make(map[*quic.Transport]*quic.Path)
	}
	c.mig.used[tr] = true
	return p, nil
}

// abandon closes p, a path on tr that failed; a later move to tr adds a
// new path. Called holding the migration turn.
func (m *migration) abandon(tr *quic.Transport, p *quic.Path) {
	_ = p.Close()
	delete(m.paths, tr)
}

// probe validates p: it sends PATH_CHALLENGEs on it until the server
// answers, ctx ends, Config.HandshakeTimeout passes (ErrNoPathAnswer) or
// the connection ends.
func (c *Conn) probe(ctx context.Context, p *quic.Path) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(c.ctx, func() { cancel(ErrClosed) })
	defer stop()
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, c.cfg.HandshakeTimeout, ErrNoPathAnswer)
	defer cancelTimeout()
	return p.Probe(ctx)
}

// probeFault says why a probe failed, for a person.
func (c *Conn) probeFault(ctx context.Context, err error) string {
	switch {
	case c.err() != nil:
		return "the connection ended during the probe"
	case errors.Is(err, ErrNoPathAnswer):
		return fmt.Sprintf("no answer to the path probe within %s, the handshake timeout (does the new address reach the server? has the server issued a spare connection ID?)", c.cfg.HandshakeTimeout)
	case ctx.Err() != nil:
		return "the context ended during the probe"
	default:
		return "the path probe failed"
	}
}

// closedOr returns err, or, when the connection has ended, an error that
// matches ErrClosed and says why it ended.
func (c *Conn) closedOr(err error) error {
	if cause := c.err(); cause != nil {
		return fmt.Errorf("%w: %w", ErrClosed, cause)
	}
	return err
}

// localAddr boxes a net.Addr for an atomic pointer.
type localAddr struct{ net.Addr }
