package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/client"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// Example connects a reconnecting client to an echo server and sends on a
// channel that would survive reconnects.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, clientOpts, stop := exampleServer()
	defer stop()

	clientTLS, err := certs.ClientConfig(clientOpts)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.Dial(ctx, addr, clientTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel(ctx, "greetings")
	if err != nil {
		log.Fatal(err)
	}
	// Safe to process twice, so it may ride 0-RTT data on a reconnect.
	if err := ch.SendReplaySafe(ctx, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	reply, err := ch.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply), c.Status())
	// Output: hello connected
}

// ExampleConfig shows the reconnection options.
func ExampleConfig() {
	cfg := &client.Config{
		Fallback: []string{"10.0.0.2:4433"}, // tried in turn after the Dial address
		Backoff: client.Backoff{
			InitialDelay: 50 * time.Millisecond, // ceiling of the first wait
			MaxDelay:     10 * time.Second,      // cap on any wait
			Factor:       2,                     // ceiling doubles per attempt
			MaxAttempts:  -1,                    // retry for ever
		},
		ReconnectBufferSize: 4 << 20, // bytes held while disconnected
		OnEvent: func(e client.Event) {
			fmt.Println(e.Type, e.Attempt, e.Err)
		},
	}
	_ = cfg
}

// ExampleResumeFailedError handles a session the server would not resume:
// the messages written and never acknowledged may or may not have been
// delivered, and the client does not send them again; the application
// decides.
func ExampleResumeFailedError() {
	cfg := &client.Config{
		OnEvent: func(e client.Event) {
			switch e.Type {
			case client.EventReconnected:
				fmt.Println("reconnected; session resumed:", e.Resumed)
			case client.EventResumeFailed:
				var rfe *client.ResumeFailedError
				if errors.As(e.Err, &rfe) {
					for channel, msgs := range rfe.Unacked {
						fmt.Printf("%s: %d messages to check or send again\n", channel, len(msgs))
					}
				}
			}
		},
	}
	_ = cfg
}

// exampleServer starts an echo server with development certificates and
// returns its address, client TLS options and a function that stops it.
func exampleServer() (string, certs.ClientOptions, func()) {
	dir, err := os.MkdirTemp("", "quicmsg-example")
	if err != nil {
		log.Fatal(err)
	}
	dev, err := certs.EnsureDev(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	serverTLS, err := certs.ServerConfig(dev.ServerOptions())
	if err != nil {
		log.Fatal(err)
	}
	srv, err := session.NewServer(nil, session.HandlerFunc(func(ctx context.Context, s *session.Session, m session.Message) {
		_ = s.Send(ctx, m.Channel, m.Data)
	}))
	if err != nil {
		log.Fatal(err)
	}
	ln, err := transport.Listen("127.0.0.1:0", serverTLS, &transport.Config{Allow0RTT: true})
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return ln.Addr().String(), dev.ClientOptions("localhost"), func() {
		_ = srv.Close()
		<-done
		_ = os.RemoveAll(dir)
	}
}

// ExampleClient_Migrate moves a client's connection to another local
// address: the same connection and session go on, without a reconnect.
func ExampleClient_Migrate() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, clientOpts, stop := exampleServer()
	defer stop()
	clientTLS, err := certs.ClientConfig(clientOpts)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.Dial(ctx, addr, clientTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel(ctx, "greetings")
	if err != nil {
		log.Fatal(err)
	}
	// For example the address of another network interface; port 0 picks
	// a free port. The new socket closes with the connection.
	if err := c.Migrate(ctx, "127.0.0.1:0"); err != nil {
		var me *transport.MigrationError
		if errors.As(err, &me) {
			log.Fatalf("still on %s: %s", c.Conn().LocalAddr(), me.Reason)
		}
		log.Fatal(err)
	}
	if err := ch.Send(ctx, []byte("moved")); err != nil {
		log.Fatal(err)
	}
	reply, err := ch.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply), c.Stats().Migrations, c.Stats().Reconnects)
	// Output: moved 1 0
}
