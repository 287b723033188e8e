package transport

// earlyRetention keeps the batches a channel wrote as 0-RTT data until the
// handshake settles them: confirmed, they are released; rejected by the
// server, or cut off before the handshake completed, they are handed back
// to become Unsent, since 0-RTT data is replay-safe by contract and may be
// sent again. It is part of a channel's send side and guarded by its lock;
// only the writer retains.
type earlyRetention struct {
	batches [][]byte
	msgs    uint64 // messages in batches
	bytes   int    // bytes in batches
}

// retain keeps the batch b of n messages, just written as 0-RTT data.
func (r *earlyRetention) retain(b []byte, n uint64) {
	r.batches = append(r.batches, b)
	r.msgs += n
	r.bytes += len(b)
}

// holding reports whether any batch awaits the handshake.
func (r *earlyRetention) holding() bool { return r.batches != nil }

// full reports whether limit bytes or more ride on 0-RTT data: the writer
// then waits for the handshake before it writes more.
func (r *earlyRetention) full(limit int) bool { return r.bytes >= limit }

// release forgets the retained batches: the handshake confirmed them, or
// their fate is accounted for as in doubt.
func (r *earlyRetention) release() { *r = earlyRetention{} }

// handBack returns the retained batches, in the order written, and how many
// messages they hold, and forgets them: they never reached the server.
func (r *earlyRetention) handBack() ([][]byte, uint64) {
	b, n := r.batches, r.msgs
	r.release()
	return b, n
}

// settleEarly settles 0-RTT retention before the writer's next write and
// reports whether that write still travels as 0-RTT data. Once the
// handshake has completed it releases what was retained, or, if the server
// rejected it, returns ErrEarlyDataRejected. ch.tx.mu is held.
func (ch *Channel) settleEarly() (early bool, err error) {
	if ch.c.inEarlyData() {
		return true, nil
	}
	if ch.tx.early.holding() {
		if ch.c.earlyRejected() {
			return false, ErrEarlyDataRejected
		}
		ch.tx.early.release()
	}
	return false, nil
}

// awaitHandshake waits for the handshake, or for the connection to end; the
// writer waits here while the retained 0-RTT data is full.
func (ch *Channel) awaitHandshake() {
	select {
	case <-ch.c.qc.HandshakeComplete():
	case <-ch.c.ctx.Done():
	}
}
