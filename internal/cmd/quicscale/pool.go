package main

import (
	"context"
	"net"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"
)

// sockets hands out quic.Transports, each shared by up to perSocket
// connections; it owns them and closes them in close.
type sockets struct {
	perSocket int

	mu   sync.Mutex
	all  []*quic.Transport
	used int // connections given the last transport
}

func newSockets(perSocket int) *sockets { return &sockets{perSocket: perSocket} }

// get returns the transport for the next connection, opening a socket when
// the last one has perSocket connections.
func (s *sockets) get() (*quic.Transport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 || s.used == s.perSocket {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		// Non-empty connection IDs: a socket with empty ones carries
		// only one connection.
		s.all = append(s.all, &quic.Transport{Conn: udp, ConnectionIDLength: 4})
		s.used = 0
	}
	s.used++
	return s.all[len(s.all)-1], nil
}

// count returns the number of sockets opened.
func (s *sockets) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

// close closes every transport and its socket. The connections on them
// should be closed first: Transport.Close ends them without telling the
// peer.
func (s *sockets) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tr := range s.all {
		_ = tr.Close()
		_ = tr.Conn.Close()
	}
	s.all = nil
}

// parallel calls f(i) for i in [0, n), at most workers at a time, and
// waits for them. It stops handing out work at the first error or when ctx
// ends, and returns the first error (or ctx's) and how many calls
// succeeded.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) (int, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if int(done.Load()) == n {
		return n, nil
	}
	return int(done.Load()), context.Cause(ctx)
}
