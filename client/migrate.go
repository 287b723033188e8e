package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/quicmsg/quicmsg/transport"
)

// Migrate moves the client's current connection to a new UDP socket bound
// to localAddr ("host:port"; port 0 picks a free port), for example onto
// another network interface, without reconnecting: the QUIC connection,
// the server's session and every channel go on as they were, nothing is
// sent again, and no event is emitted (there is no EventDisconnected or
// EventReconnected). See [transport.Conn.MigrateAddr]: the server must
// answer a probe on the new path within the handshake timeout, and a
// failed migration leaves the connection where it was. Errors are a
// [*transport.MigrationError], [ErrNotConnected] while the client is
// reconnecting, or [ErrClosed] once it is closed.
//
// The new socket belongs to the connection it was opened for, and closes
// when that connection ends (a reconnect, or Close). A migration moves that
// connection only: a later reconnect dials as Dial does, from an address
// the operating system chooses, because the address moved to may be gone
// by then (a network interface that went down) and a client bound to it
// could never reconnect. Call Migrate again on the new connection to move
// it too.
//
// Only the client side of a connection can move; a server follows its
// clients by itself. Safe for concurrent use.
func (c *Client) Migrate(ctx context.Context, localAddr string) error {
	c.mu.Lock()
	conn, status := c.conn, c.status
	c.mu.Unlock()
	switch {
	case status == StatusClosed:
		return ErrClosed
	case conn == nil:
		return ErrNotConnected
	}
	if err := conn.MigrateAddr(ctx, localAddr); err != nil {
		switch {
		case c.Status() == StatusClosed:
			return fmt.Errorf("%w: %w", ErrClosed, err)
		case errors.Is(err, transport.ErrClosed):
			// The connection ended under the migration; the client
			// reconnects, it is not closed.
			return fmt.Errorf("%w: %w", ErrNotConnected, err)
		}
		return err
	}
	c.migrations.Add(1)
	return nil
}
