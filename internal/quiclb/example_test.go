package quiclb_test

import (
	"fmt"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/internal/quiclb"
)

// A server puts its ID into every connection ID it issues; a balancer that
// knows the ID length reads it back from a packet's destination connection
// ID.
func Example() {
	id, err := quiclb.ParseServerID("0a1b") // quicsrv -server-id 0a1b
	if err != nil {
		panic(err)
	}
	gen, err := quiclb.New(quiclb.Config{ServerID: id, ConfigRotation: 1})
	if err != nil {
		panic(err)
	}
	tr := &quic.Transport{ConnectionIDGenerator: gen} // plus Conn, the UDP socket
	_ = tr

	cid, _ := gen.GenerateConnectionID()
	fmt.Printf("%d bytes, first octet %#08b\n", cid.Len(), cid.Bytes()[0])

	d, err := quiclb.Decode(cid.Bytes(), len(id))
	if err != nil {
		panic(err)
	}
	fmt.Printf("config rotation %d, server %x\n", d.ConfigRotation, d.ServerID)
	// Output:
	// 11 bytes, first octet 0b00101010
	// config rotation 1, server 0a1b
}
