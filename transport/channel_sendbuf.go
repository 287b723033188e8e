package transport

import "sync"

// sendPoolSize is the size of the send buffers in sendBuffers: the default
// send buffer size, which a burst of small messages fills.
const sendPoolSize = DefaultSendBufferSize

// sendBuffers holds send buffers of sendPoolSize bytes that no channel is
// using. A channel whose send buffer must grow past idleSendKeep takes one
// instead of growing its buffer step by step (a burst of small messages
// otherwise reallocates and copies it five times, and an idle channel's
// buffers, let go, return to the operating system only to be allocated
// again by the next burst); an idle channel gives back every such buffer
// (trimIdle), so that it holds none of its own.
var sendBuffers = sync.Pool{New: func() any { return new([sendPoolSize]byte) }}

// pooledSend reports whether the channel's send buffer grows into a buffer
// from sendBuffers: when its SendBufferSize is one that such a buffer fits
// and that keeps it as the spare (sendSide.wroteBatch keeps buffers of up
// to twice SendBufferSize).
func (tx *sendSide) pooledSend() bool {
	return tx.bufSize <= sendPoolSize && 2*tx.bufSize >= sendPoolSize
}

// grow makes room for a frame of frameLen bytes in the send buffer with a
// buffer from sendBuffers, when the buffer must grow past idleSendKeep and
// what it will hold fits one; otherwise appending grows it as before.
// tx.mu is held.
func (tx *sendSide) grow(frameLen int) {
	need := len(tx.buf) + frameLen
	if need <= cap(tx.buf) || need <= idleSendKeep || need > sendPoolSize || !tx.pooledSend() {
		return
	}
	p := sendBuffers.Get().(*[sendPoolSize]byte)
	tx.buf = append(p[:0], tx.buf...)
}

// putSendBuffer gives b, which nothing refers to any more, back to
// sendBuffers if it has their size; others are left to the collector.
func putSendBuffer(b []byte) {
	if cap(b) == sendPoolSize {
		sendBuffers.Put((*[sendPoolSize]byte)(b[:sendPoolSize]))
	}
}
