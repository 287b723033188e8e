package main

import (
	"fmt"

	"github.com/quicmsg/quicmsg/transport"
)

// describeMode names a server's announced mode for a person: "relay
// mode", or "mode not announced" for a server that predates the MODE
// extension.
func describeMode(mode string) string {
	if mode == "" {
		return "mode not announced"
	}
	return mode + " mode"
}

// requireEcho fails at once, in one line that names the server's mode and
// what to use instead, when conn's server announced a mode other than
// echo: what would otherwise wait out -timeout for an echo that never
// comes. A server that announced no mode (one that predates the MODE
// extension) may still echo, so it is let through.
func (g *globals) requireEcho(conn *transport.Conn, what, instead string) error {
	mode := conn.PeerMode()
	if mode == "" || mode == transport.ModeEcho {
		return nil
	}
	return explain(exitError, &serverModeError{Need: transport.ModeEcho, Mode: mode},
		"%s needs a server in echo mode (quicsrv -mode echo), but the server at %s is in %s mode: %s", what, g.addr, mode, instead)
}

// serverModeError is the error behind requireEcho's explanation.
type serverModeError struct {
	Need string // the mode the command needs
	Mode string // the mode the server announced
}

func (e *serverModeError) Error() string {
	return fmt.Sprintf("server mode %q, need %q", e.Mode, e.Need)
}
