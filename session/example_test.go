package session_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// Example runs an echo server with a pending cap and shuts it down gracefully.
func Example() {
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

	srv, err := session.NewServer(&session.Config{PendingCap: 500, Overflow: session.OverflowBlock},
		session.HandlerFunc(func(ctx context.Context, s *session.Session, m session.Message) {
			_ = s.Send(ctx, m.Channel, append([]byte("echo: "), m.Data...))
		}))
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe("127.0.0.1:0", serverTLS) }()
	select {
	case <-srv.Ready(): // listening: Addr says where
	case err := <-served:
		log.Fatal(err)
	}

	conn, err := transport.Dial(ctx, srv.Addr().String(), clientTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	ch, _ := conn.OpenChannel(ctx, "chat")
	_ = ch.Send(ctx, []byte("hi"))
	reply, _ := ch.Receive(ctx)
	fmt.Println(string(reply), srv.ActiveSessions())
	_ = conn.Close()

	if err := srv.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(errors.Is(<-served, session.ErrServerClosed))
	// Output:
	// echo: hi 1
	// true
}
