package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/transport"
)

// subscriber is a subscribing client's stream and its writer; mu
// serialises the publishers that write to it. A write error ends it: it
// gets nothing more.
type subscriber struct {
	mu  sync.Mutex
	w   *bufio.Writer
	err error
}

// forwarder knows the subscribers; every publisher writes to all of them.
type forwarder struct {
	mu   sync.Mutex
	subs []*subscriber
}

// serve accepts connections until ctx ends.
func serve(ctx context.Context, addr, certDir string, stdout io.Writer) error {
	files, err := certs.EnsureDev(certDir, nil)
	if err != nil {
		return err
	}
	tlsConf, err := certs.ServerConfig(files.ServerOptions())
	if err != nil {
		return err
	}
	tlsConf.NextProtos = []string{alpn}
	qc, err := (&transport.Config{}).QUICConfig()
	if err != nil {
		return err
	}
	ln, err := quic.ListenAddr(addr, tlsConf, qc)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Fprintf(stdout, "rawrelay listening on %s\n", ln.Addr())
	f := &forwarder{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer conn.CloseWithError(0, "")
			f.handle(ctx, conn)
		})
	}
}

// handle serves one client's stream until it ends.
func (f *forwarder) handle(ctx context.Context, conn *quic.Conn) {
	str, err := conn.AcceptStream(ctx)
	if err != nil {
		return
	}
	var role [1]byte
	if _, err := io.ReadFull(str, role[:]); err != nil {
		return
	}
	switch role[0] {
	case roleSubscriber:
		sub := &subscriber{w: bufio.NewWriterSize(str, 64<<10)}
		f.mu.Lock()
		f.subs = append(f.subs, sub)
		f.mu.Unlock()
		if _, err := str.Write(role[:]); err == nil {
			// The subscriber's connection lives until the client closes it.
			waitEnd(ctx, conn)
		}
		f.mu.Lock()
		f.subs = slices.DeleteFunc(f.subs, func(s *subscriber) bool { return s == sub })
		f.mu.Unlock()
	case rolePublisher:
		f.mu.Lock()
		subs := slices.Clone(f.subs)
		f.mu.Unlock()
		_ = forward(str, subs)
		waitEnd(ctx, conn)
	}
}

// waitEnd waits until conn or ctx ends.
func waitEnd(ctx context.Context, conn *quic.Conn) {
	select {
	case <-conn.Context().Done():
	case <-ctx.Done():
	}
}

// forward copies the length-prefixed messages of r to every subscriber,
// flushing them whenever nothing more is buffered from r.
func forward(r io.Reader, subs []*subscriber) error {
	br := bufio.NewReaderSize(r, 64<<10)
	buf := make([]byte, 4+maxSize)
	for {
		if _, err := io.ReadFull(br, buf[:4]); err != nil {
			return err
		}
		n := binary.LittleEndian.Uint32(buf)
		if n > maxSize {
			return fmt.Errorf("message of %d bytes, more than %d", n, maxSize)
		}
		msg := buf[:4+n]
		if _, err := io.ReadFull(br, msg[4:]); err != nil {
			return err
		}
		flush := br.Buffered() == 0
		for _, s := range subs {
			s.write(msg, flush)
		}
	}
}

// write writes msg to s, and flushes if flush is set, unless an earlier
// write failed.
func (s *subscriber) write(msg []byte, flush bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	if _, s.err = s.w.Write(msg); s.err == nil && flush {
		s.err = s.w.Flush()
	}
}
