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

// Example runs a server that answers one message and a client that sends it.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Development certificates; use your own in production.
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
	go func() { served <- answerOne(ctx, ln) }()

	conn, err := transport.Dial(ctx, ln.Addr().String(), clientTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	ch, err := conn.OpenChannel(ctx, "greetings")
	if err != nil {
		log.Fatal(err)
	}
	if err := ch.Send(ctx, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	reply, err := ch.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply))
	if err := conn.Close(); err != nil {
		log.Fatal(err)
	}
	if err := <-served; err != nil {
		log.Fatal(err)
	}
	// Output: echo: hello
}

// answerOne accepts a connection and a channel, answers one message and reads
// on until the client has finished; the connection then closes by itself.
func answerOne(ctx context.Context, ln *transport.Listener) error {
	conn, err := ln.Accept(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.AcceptChannel(ctx)
	if err != nil {
		return err
	}
	msg, err := ch.Receive(ctx)
	if err != nil {
		return err
	}
	if err := ch.Send(ctx, append([]byte("echo: "), msg...)); err != nil {
		return err
	}
	if _, err := ch.Receive(ctx); !errors.Is(err, io.EOF) {
		return fmt.Errorf("want io.EOF after the client closed, got %v", err)
	}
	<-conn.Context().Done()
	return nil
}

// ExampleChannel_TrySend shows the errors a non-blocking send can return.
func ExampleChannel_TrySend() {
	var ch *transport.Channel // from Conn.OpenChannel or Conn.AcceptChannel
	if ch == nil {
		return
	}
	err := ch.TrySend([]byte("tick"))
	var tooLarge *transport.MessageTooLargeError
	switch {
	case err == nil:
	case errors.Is(err, transport.ErrSlowDown):
		// The peer asked us to slow down: drop, queue or wait with Send.
	case errors.Is(err, transport.ErrWouldBlock):
		// The send buffer is full.
	case errors.As(err, &tooLarge):
		fmt.Printf("limit is %d bytes\n", tooLarge.Limit)
	case errors.Is(err, transport.CodeOverloaded):
		// The server shed this connection.
	}
}

// ExampleChannel_ReceiveMsg reads a subscription: messages with their
// concrete subject and headers, and gap notices where messages were missed.
func ExampleChannel_ReceiveMsg() {
	var ch *transport.Channel // for example from Conn.OpenChannel(ctx, "orders.>")
	if ch == nil {
		return
	}
	ctx := context.Background()
	for {
		m, err := ch.ReceiveMsg(ctx)
		var gap *transport.GapError
		switch {
		case errors.As(err, &gap):
			fmt.Printf("%d messages missed (%s)\n", gap.Missed, gap.Reason)
			continue // the channel goes on after a gap
		case err != nil:
			return
		}
		fmt.Printf("%s: %s (trace %s)\n", m.Subject, m.Data, m.Header.Get(transport.HeaderTraceparent))
	}
}

// ExampleChannel_SendMsg publishes to a concrete subject with headers.
func ExampleChannel_SendMsg() {
	var ch *transport.Channel // from Conn.OpenChannel or Conn.AcceptChannel
	if ch == nil {
		return
	}
	m := &transport.Message{Subject: "orders.eu.42", Data: []byte(`{"qty":1}`)}
	m.Header.Add(transport.HeaderTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	var he *transport.HeaderError
	switch err := ch.SendMsg(context.Background(), m); {
	case errors.Is(err, transport.ErrHeadersUnsupported):
		// The peer predates headers: send m.Data with Send on a channel
		// named after the subject instead.
	case errors.Is(err, transport.ErrWildcardSubject):
		// Subjects with "*" or ">" tokens are for subscribing.
	case errors.As(err, &he):
		fmt.Println("bad header:", he.Key, he.Reason)
	}
}
