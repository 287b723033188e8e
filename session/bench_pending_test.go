package session

import (
	"context"
	"testing"

	"github.com/quicmsg/quicmsg/transport"
)

// BenchmarkPendingQueue measures the session's pending queue on its own:
// a reader goroutine queueing 64-byte messages (enqueue, with waitRoom as
// the reader calls it) and the worker handing them to a handler that does
// nothing and releasing them, without a connection. ns/op is per message
// through the queue.
func BenchmarkPendingQueue(b *testing.B) {
	b.Run("saturated", func(b *testing.B) { benchPendingQueue(b, 0) })
	// The reader does some work of its own per message, as a channel's
	// reader does: the worker keeps up and the queue is mostly short.
	b.Run("worker-keeps-up", func(b *testing.B) { benchPendingQueue(b, 200) })
}

var benchSink uint64

func benchPendingQueue(b *testing.B, work int) {
	srv, err := NewServer(&Config{}, HandlerFunc(func(context.Context, *Session, Message) {}))
	if err != nil {
		b.Fatal(err)
	}
	s := &Session{srv: srv, space: make(chan struct{}), changed: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	// A reader as read keeps it: a channel that is never connected (enqueue
	// takes only its name, "" here) and the message it received.
	r := &chanReader{ch: new(transport.Channel), m: transport.Message{Subject: "bench", Data: make([]byte, 64)}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	room := false
	for range b.N {
		if !room && !s.waitRoom(ctx) {
			b.Fatal("waitRoom failed")
		}
		_, room = s.enqueue(r)
		x := benchSink
		for i := range work {
			x = x*31 + uint64(i)
		}
		benchSink = x
	}
	s.owned.Wait()
	b.StopTimer()
	if st := s.Stats(); st.Pending != 0 || st.MessagesHandled != uint64(b.N) {
		b.Fatalf("stats after the run: %+v", st)
	}
}
