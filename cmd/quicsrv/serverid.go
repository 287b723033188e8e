package main

import (
	"encoding/hex"
	"fmt"
	"log/slog"

	"github.com/quicmsg/quicmsg/internal/quiclb"
	"github.com/quicmsg/quicmsg/transport"
)

// setServerID, with -server-id, makes the listener issue connection IDs in
// the QUIC-LB plaintext layout, with config rotation 0 and the default
// nonce, so that a load balancer routing by connection ID finds this node
// (CLUSTER.md, "Load balancing"). Without it quic-go's random IDs stay.
func setServerID(o *options, tc *transport.Config, log *slog.Logger) error {
	if o.serverID == nil {
		return nil
	}
	gen, err := quiclb.New(quiclb.Config{ServerID: o.serverID})
	if err != nil {
		return fmt.Errorf("-server-id: %w", err)
	}
	tc.ConnectionIDGenerator = gen
	log.Info("connection IDs carry the server ID (QUIC-LB plaintext layout)",
		"server_id", hex.EncodeToString(o.serverID), "connection_id_bytes", gen.ConnectionIDLen())
	return nil
}
