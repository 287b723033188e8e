package metrics

import (
	"errors"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/transport"
)

// codeLabels names the quicmsg error codes in metric labels. Codes a client
// makes up are reported as "other", so that label values stay few.
var codeLabels = map[transport.ErrorCode]string{
	transport.CodeNoError:          "no_error",
	transport.CodeProtocolError:    "protocol_error",
	transport.CodeInternalError:    "internal_error",
	transport.CodeMessageTooLarge:  "message_too_large",
	transport.CodeOverloaded:       "overloaded",
	transport.CodeGoingAway:        "going_away",
	transport.CodeTooManySessions:  "too_many_sessions",
	transport.CodeChannelClosed:    "channel_closed",
	transport.CodeVersionMismatch:  "version_mismatch",
	transport.CodeDisconnected:     "disconnected",
	transport.CodeDuplicateChannel: "duplicate_channel",
	transport.CodeSlowConsumer:     "slow_consumer",
}

// DisconnectLabels returns the code and by labels of
// quicmsg_session_disconnects_total for a session on c that ended with cause.
// code is a quicmsg error code name ("no_error", "going_away", ...),
// "idle_timeout", "stateless_reset", "transport_error" or "other"; by is
// "client" or "server" for the side that ended the session, and "network"
// when neither did (idle timeout, stateless reset). A graceful close started
// by the client (its GOAWAY with NO_ERROR) counts as the client's, although
// the server sends the final CONNECTION_CLOSE. c may be nil (a session that
// ended detached): the cause alone decides then.
func DisconnectLabels(c Conn, cause error) (code, by string) {
	var (
		ce    *transport.ConnError
		idle  *quic.IdleTimeoutError
		reset *quic.StatelessResetError
		te    *quic.TransportError
	)
	switch {
	case errors.As(cause, &ce):
		code = codeLabels[ce.Code]
		if code == "" {
			code = "other"
		}
		if ce.Code == transport.CodeNoError && !ce.Remote && c != nil {
			if ga, ok := c.PeerGoAway(); ok && ga.Code == transport.CodeNoError {
				return code, "client"
			}
		}
		return code, side(ce.Remote)
	case errors.As(cause, &idle):
		return "idle_timeout", "network"
	case errors.As(cause, &reset):
		return "stateless_reset", "network"
	case errors.As(cause, &te):
		return "transport_error", side(te.Remote)
	}
	return "other", "server"
}

// side names who sent a close seen by the server: the remote is the client.
func side(remote bool) string {
	if remote {
		return "client"
	}
	return "server"
}
