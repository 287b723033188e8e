package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/transport"
)

// ExampleConn_Request makes a request to a server that answers it on the
// requester's inbox channel, as a session server without a relay does.
func ExampleConn_Request() {
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
	ln, err := transport.Listen("127.0.0.1:0", serverTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() { served <- replyOne(ctx, ln) }()

	conn, err := transport.Dial(ctx, ln.Addr().String(), clientTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	reply, err := conn.Request(ctx, "time.now", &transport.Message{Data: []byte("what time is it?")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (in reply to request %s)\n", reply.Data, reply.InReplyTo())
	if err := conn.Close(); err != nil {
		log.Fatal(err)
	}
	if err := <-served; err != nil {
		log.Fatal(err)
	}
	// Output: noon (in reply to request 1)
}

// replyOne answers the first request of the first connection on the
// channel it came on, then reads on until the client has finished.
func replyOne(ctx context.Context, ln *transport.Listener) error {
	conn, err := ln.Accept(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.AcceptChannel(ctx)
	if err != nil {
		return err
	}
	req, err := ch.ReceiveMsg(ctx)
	if err != nil {
		return err
	}
	if err := ch.Reply(ctx, req, &transport.Message{Data: []byte("noon")}); err != nil {
		return err
	}
	if _, err := ch.ReceiveMsg(ctx); !errors.Is(err, io.EOF) {
		return fmt.Errorf("want io.EOF after the client closed, got %v", err)
	}
	<-conn.Context().Done()
	return nil
}
