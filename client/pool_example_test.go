package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/client"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// ExamplePool spreads requests over a pool of connections: each request
// acquires a connection for its exclusive use, opens a channel on it and
// releases the connection when done.
func ExamplePool() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// An echo server with development certificates; use your own in production.
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
	srv, _ := session.NewServer(nil, session.HandlerFunc(func(ctx context.Context, s *session.Session, m session.Message) {
		_ = s.Send(ctx, m.Channel, append([]byte("echo: "), m.Data...))
	}))
	ln, err := transport.Listen("127.0.0.1:0", serverTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	pool, err := client.NewPool(ctx, ln.Addr().String(), clientTLS, &client.PoolConfig{Size: 4})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	pc, err := pool.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	ch, err := pc.Conn().OpenChannel(ctx, "requests")
	if err != nil {
		log.Fatal(err)
	}
	_ = ch.Send(ctx, []byte("hello"))
	reply, err := ch.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply))
	fmt.Printf("in use %d of %d\n", pool.Stats().InUse, pool.Stats().Size)
	_ = ch.Close()
	pc.Release()
	fmt.Printf("in use %d, idle %d\n", pool.Stats().InUse, pool.Stats().Idle)
	// Output:
	// echo: hello
	// in use 1 of 4
	// in use 0, idle 4
}
