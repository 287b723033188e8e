package wire

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/quic-go/quic-go/quicvarint"
)

// FuzzHeaderBlock feeds arbitrary HEADERS payloads to the header block
// decoder: no panics, typed errors only, every accepted block within the
// limits, and re-encoding the fields gives back the same bytes.
func FuzzHeaderBlock(f *testing.F) {
	f.Add(headerPayload([]field{{"subject", "orders.1"}, {"reply-to", "_INBOX.x"}}, "body"))
	f.Add(headerPayload([]field{{"k", ""}, {"k", "\x00"}}, ""))
	f.Add([]byte{0})
	f.Add([]byte{0x60, 0, 1})
	f.Add([]byte{3, 1, ':', 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		// A payload followed by the next frame's bytes: the block stays
		// inside the payload.
		if n, err := HeaderBlockSize(p, len(p)/2); err == nil && n > len(p)/2 {
			t.Fatalf("block of %d bytes in a payload of %d", n, len(p)/2)
		}
		fs, body, err := parseHeaderPayload(p)
		if err != nil {
			errTyped(t, err)
			return
		}
		if len(fs) == 0 || len(fs) > MaxHeaderFields {
			t.Fatalf("%d fields accepted", len(fs))
		}
		for _, f := range fs {
			if CheckHeaderKey(f.k) != nil {
				t.Fatalf("invalid key %q accepted", f.k)
			}
		}
		re := headerPayload(fs, string(body))
		if len(re)-len(body) > MaxHeaderBytes+quicvarint.Len(MaxHeaderBytes) {
			t.Fatalf("block of %d bytes accepted", len(re)-len(body))
		}
		fs2, body2, err := parseHeaderPayload(re)
		if err != nil || !reflect.DeepEqual(fs, fs2) || !bytes.Equal(body, body2) {
			t.Fatalf("round trip changed the block: %v %v", fs2, err)
		}
	})
}

// FuzzGap feeds arbitrary frames to the message frame decoder and, for a
// gap notice, to the gap decoder: no panics, typed errors only, and an
// accepted notice re-encodes to a frame that decodes the same.
func FuzzGap(f *testing.F) {
	f.Add(AppendGap(nil, 1, 1))
	f.Add(AppendGap(nil, 1<<40, 3))
	f.Add([]byte{FrameMessage, FlagGap, 2, 0, 1})
	f.Add([]byte{FrameMessage, FlagGap | FlagReplaySafe, 2, 1, 1})
	f.Add([]byte{FrameMessage, FlagGap, 3, 1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		flags, size, n, err := ParseMessageHeader(b, 1<<20)
		if err != nil {
			errTyped(t, err)
			return
		}
		if flags&FlagGap == 0 || len(b) < n+size {
			return
		}
		if flags != FlagGap || size > MaxGapLen {
			t.Fatalf("gap frame with flags 0x%02x, %d bytes accepted", flags, size)
		}
		missed, reason, err := ParseGap(b[n : n+size])
		if err != nil {
			errTyped(t, err)
			return
		}
		if missed == 0 {
			t.Fatal("Missed 0 accepted")
		}
		re := AppendGap(nil, missed, reason)
		_, size2, n2, err := ParseMessageHeader(re, 1<<20)
		if err != nil {
			t.Fatalf("re-encoded gap does not decode: %v", err)
		}
		m2, r2, err := ParseGap(re[n2 : n2+size2])
		if err != nil || m2 != missed || r2 != reason {
			t.Fatalf("round trip changed the gap: %d %d %v", m2, r2, err)
		}
	})
}

// FuzzChannelOptions feeds arbitrary channel stream preambles to the
// decoder: no panics, typed errors only, a valid group in what it
// accepts, and re-encoding gives a header that decodes the same.
func FuzzChannelOptions(f *testing.F) {
	f.Add(AppendChannelHeaderWith(nil, "orders.>", ChannelOptions{Group: "workers"}))
	f.Add(AppendChannelHeaderWith(nil, "a", ChannelOptions{}))
	f.Add([]byte{StreamChannelOpts, 1, 'a', 4, 0x3f, 2, 'x', 'y'})
	f.Add([]byte{StreamChannelOpts, 1, 'a', 6, 1, 1, 'a', 1, 1, 'b'})
	f.Add([]byte{StreamChannelOpts, 1, 'a', 0x44, 0x01})
	f.Add(AppendChannelHeaderWith(nil, "a", ChannelOptions{Group: "g", Priority: Priority{Set: true, Urgency: 7, Incremental: true}}))
	f.Add([]byte{StreamChannelOpts, 1, 'a', 3, 2, 1, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, o, n, err := ParseStreamHeader(b)
		if err != nil {
			errTyped(t, err)
			return
		}
		if n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		if o.Group != "" && ValidateGroup(o.Group) != nil {
			t.Fatalf("invalid group %q accepted", o.Group)
		}
		if o.Priority.Urgency > MaxUrgency {
			t.Fatalf("urgency %d accepted", o.Priority.Urgency)
		}
		re := AppendChannelHeaderWith(nil, name, o)
		name2, o2, n2, err := ParseStreamHeader(re)
		if err != nil || name2 != name || o2 != o || n2 != len(re) {
			t.Fatalf("round trip changed the header: %q %+v %v", name2, o2, err)
		}
	})
}
