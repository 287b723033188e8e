package transport

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/wire"
)

// newSendOnlyChannel returns a channel with only its send buffer set up,
// for the buffer policy: nothing is written.
func newSendOnlyChannel(bufSize int) *Channel {
	ch := &Channel{}
	ch.tx.init(new(atomic.Bool), bufSize, DefaultAckWindow)
	return ch
}

// A burst of small messages grows the send buffer, once past idleSendKeep,
// straight into one buffer of sendPoolSize instead of step by step, keeps
// every message intact in it, and an idle channel lets it go.
func TestSendBufferGrowsIntoOnePooledBuffer(t *testing.T) {
	ch := newSendOnlyChannel(DefaultSendBufferSize)
	msg := make([]byte, 64)
	var want []byte
	var n int
	for ch.roomErr(wire.MessageLen(len(msg))) == nil {
		binary.BigEndian.PutUint32(msg, uint32(n))
		ch.tx.mu.Lock()
		ch.appendFrame(&outFrame{data: msg}, len(msg))
		buf := ch.tx.buf
		ch.tx.mu.Unlock()
		want = wire.AppendMessage(want, 0, msg)
		n++
		if len(buf) > idleSendKeep {
			require.Equal(t, sendPoolSize, cap(buf), "send buffer capacity after %d messages (%d bytes)", n, len(buf))
		} else {
			require.LessOrEqual(t, cap(buf), idleSendKeep, "after %d messages (%d bytes)", n, len(buf))
		}
	}
	require.Greater(t, n, 900)
	require.True(t, bytes.Equal(want, ch.tx.buf), "the buffered frames differ from what was sent")
	require.Equal(t, uint64(n), ch.tx.bufMsgs)

	ch.tx.mu.Lock()
	out, k := ch.tx.take()
	ch.tx.wroteBatch(out, k)
	ch.tx.trimIdle()
	held := cap(ch.tx.buf) + cap(ch.tx.spare) + ch.tx.ret.freeCap
	ch.tx.mu.Unlock()
	require.Zero(t, held, "send buffers an idle channel holds")
}

// A send buffer of another size than the pool's, and a frame larger than a
// pooled buffer, grow by appending as before.
func TestSendBufferOutsideThePoolGrowsByAppending(t *testing.T) {
	big := newSendOnlyChannel(4 * DefaultSendBufferSize)
	small := newSendOnlyChannel(DefaultSendBufferSize / 4)
	msg := make([]byte, 64)
	for range 200 {
		for _, ch := range []*Channel{big, small} {
			ch.appendFrame(&outFrame{data: msg}, len(msg))
		}
	}
	require.NotEqual(t, sendPoolSize, cap(big.tx.buf))
	require.NotEqual(t, sendPoolSize, cap(small.tx.buf))

	ch := newSendOnlyChannel(DefaultSendBufferSize)
	large := bytes.Repeat([]byte{9}, sendPoolSize+100)
	ch.appendFrame(&outFrame{data: msg}, len(msg))
	ch.appendFrame(&outFrame{data: large}, len(large))
	want := wire.AppendMessage(wire.AppendMessage(nil, 0, msg), 0, large)
	require.True(t, bytes.Equal(want, ch.tx.buf), "the buffered frames differ from what was sent")
}

// Bursts separated by idle pauses, each more than a send buffer holds,
// arrive whole and in order with acknowledgements on and off: the buffers
// an idle channel gives back to the pool and takes again for the next
// burst are never ones still in use. After each burst the idle channel
// holds no more than two small send buffers.
func TestBurstsAfterIdleArriveIntact(t *testing.T) {
	for _, name := range []string{"acks", "noacks"} {
		t.Run(name, func(t *testing.T) {
			var cfg *Config
			if name == "noacks" {
				cfg = &Config{DisableAcks: true}
			}
			client, server, _ := pair(t, cfg, cfg)
			ctx := testCtx(t)
			cli, srv := openNamed(t, client, server, "bursts")
			const burst = 1500
			seq := 0
			for round := range 3 {
				errc := make(chan error, 1)
				go func() {
					msg := make([]byte, 64)
					for i := range burst {
						binary.BigEndian.PutUint32(msg, uint32(seq+i))
						msg[63] = byte(seq + i)
						if err := cli.Send(ctx, msg); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
				buf := make([]byte, 0, 64)
				for i := range burst {
					m, err := srv.ReceiveBuf(ctx, buf)
					require.NoError(t, err)
					require.Len(t, m, 64)
					require.Equal(t, uint32(seq+i), binary.BigEndian.Uint32(m), "round %d message %d", round, i)
					require.Equal(t, byte(seq+i), m[63])
					buf = m
				}
				require.NoError(t, <-errc)
				seq += burst
				require.Eventually(t, func() bool { return cli.heldSendBuffers() <= 2*idleSendKeep },
					10*time.Second, 5*time.Millisecond, "send buffers held after round %d: %d bytes", round, cli.heldSendBuffers())
			}
		})
	}
}

// A SendMsgs batch that takes the send buffer past idleSendKeep reserves
// its room in a buffer from the pool, as a run of Sends does.
func TestSendMsgsBatchReservesAPooledBuffer(t *testing.T) {
	ch := newSendOnlyChannel(DefaultSendBufferSize)
	msgs := make([]Message, 200)
	for i := range msgs {
		msgs[i].Data = make([]byte, 64)
	}
	ch.tx.mu.Lock()
	ch.reserve(msgs)
	c := cap(ch.tx.buf)
	ch.tx.mu.Unlock()
	require.Equal(t, sendPoolSize, c, "send buffer capacity reserved for a batch of %d × 64 B", len(msgs))
}
