package transport_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/transport"
)

// ExampleConn_Ping measures the round-trip time to a server, whatever it
// does with messages, and reads the mode and capabilities it announced.
func ExampleConn_Ping() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	dir, err := os.MkdirTemp("", "quicmsg-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dev, err := certs.EnsureDev(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	serverTLS, _ := certs.ServerConfig(dev.ServerOptions())
	clientTLS, _ := certs.ClientConfig(dev.ClientOptions("localhost"))

	// The server announces its mode in its HELLO; it answers PINGs on its
	// own, without the application.
	ln, err := transport.Listen("127.0.0.1:0", serverTLS, &transport.Config{Mode: transport.ModeRelay})
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	conn, err := transport.Dial(ctx, ln.Addr().String(), clientTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.CloseWithError(transport.CodeNoError, "")
	fmt.Println("mode:", conn.PeerMode())
	fmt.Println("ping supported:", conn.PeerCapabilities().Has(transport.CapPing))

	rtt, err := conn.Ping(ctx)
	var ce *transport.CapabilityError
	switch {
	case errors.As(err, &ce):
		fmt.Println("the server predates PING:", ce.Missing)
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println("round trip measured:", rtt > 0)
	}
	// Output:
	// mode: relay
	// ping supported: true
	// round trip measured: true
}
