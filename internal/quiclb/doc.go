// Package quiclb makes QUIC connection IDs that a load balancer can route
// by: the plaintext layout of QUIC-LB (draft-ietf-quic-load-balancers-21,
// "Generating Routable QUIC Connection IDs").
//
// A UDP load balancer in front of several servers must send every packet of
// a connection to the server that holds it, also after the client's address
// changed (NAT rebinding, migration), when hashing the address 4-tuple would
// pick another server. A server that uses a [Generator] (set it as
// quic.Transport.ConnectionIDGenerator) puts its server ID into every
// connection ID it issues, and clients address their packets to those IDs,
// so the balancer reads the server ID from each packet's destination
// connection ID ([Decode]) and forwards accordingly:
//
//	First Octet {
//	  Config Rotation (3),       // 0..6; 0b111 marks unroutable IDs
//	  Length Self-Description (5) // connection ID length minus one
//	}
//	Server ID (8..120)           // 1 to 15 bytes, fixed per configuration
//	Nonce (32..)                 // at least 4 random bytes
//
// The whole connection ID is at most 20 bytes (QUIC version 1). The server
// ID is visible to anyone on the path: this is the draft's plaintext
// algorithm, for balancers that hold no key. Its other algorithms encrypt
// the server ID and nonce with AES-128 so that observers cannot tell which
// server a connection ID belongs to; they are not implemented here.
//
// A client's first Initial packets carry a destination connection ID the
// client chose at random: a balancer must route those by another rule (for
// example a hash of the 4-tuple), and every later packet by the server ID.
//
// The package depends on quic-go and the standard library only.
package quiclb
