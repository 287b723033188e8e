package quiclb

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConnectionIDsCarryFirstOctetServerIDAndNonce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		conf      Config
		wantLen   int
		wantNonce int
	}{
		{"two-byte ID, default nonce", Config{ServerID: []byte{0x0a, 0x1b}}, 11, 8},
		{"one-byte ID, rotation 6", Config{ServerID: []byte{0xff}, ConfigRotation: 6}, 10, 8},
		{"longest ID leaves the shortest nonce", Config{ServerID: bytes.Repeat([]byte{0x5a}, 15)}, 20, 4},
		{"12-byte ID shortens the default nonce to fit", Config{ServerID: bytes.Repeat([]byte{1}, 12), ConfigRotation: 3}, 20, 7},
		{"explicit nonce", Config{ServerID: []byte{1, 2, 3}, NonceLen: 16}, 20, 16},
		{"shortest nonce", Config{ServerID: []byte{9}, NonceLen: 4}, 6, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := New(tc.conf)
			require.NoError(t, err)
			require.Equal(t, tc.wantLen, g.ConnectionIDLen())
			require.Equal(t, tc.conf.ServerID, g.ServerID())
			sid := len(tc.conf.ServerID)
			require.Equal(t, tc.wantLen, 1+sid+tc.wantNonce)
			for range 100 {
				c, err := g.GenerateConnectionID()
				require.NoError(t, err)
				b := c.Bytes()
				require.Len(t, b, tc.wantLen)
				require.Equal(t, tc.conf.ConfigRotation, b[0]>>5, "config rotation bits")
				require.Equal(t, tc.wantLen-1, int(b[0]&0x1f), "length self-description")
				require.Equal(t, tc.conf.ServerID, b[1:1+sid])
				d, err := Decode(b, sid)
				require.NoError(t, err)
				require.Equal(t, Decoded{ConfigRotation: tc.conf.ConfigRotation, ServerID: tc.conf.ServerID}, d)
			}
		})
	}
}

func TestNoncesAreUniqueAndLookRandom(t *testing.T) {
	const n = 10_000
	g, err := New(Config{ServerID: []byte{0x0a, 0x1b}})
	require.NoError(t, err)
	seen := make(map[string]struct{}, n)
	var values [DefaultNonceLen]map[byte]struct{}
	for i := range values {
		values[i] = make(map[byte]struct{})
	}
	for range n {
		c, err := g.GenerateConnectionID()
		require.NoError(t, err)
		b := c.Bytes()
		_, dup := seen[string(b)]
		require.False(t, dup, "connection ID %x issued twice", b)
		seen[string(b)] = struct{}{}
		for i, v := range b[3:] {
			values[i][v] = struct{}{}
		}
	}
	// Each nonce byte of 10,000 random ones misses a given value with
	// probability (255/256)^10000, about 1e-17: every byte position takes
	// every value. A counter or a constant would not.
	for i, v := range values {
		require.Len(t, v, 256, "nonce byte %d took only %d values", i, len(v))
	}
}

func TestGeneratorIsSafeForConcurrentUse(t *testing.T) {
	g, err := New(Config{ServerID: []byte{7}})
	require.NoError(t, err)
	ids := make(chan []byte, 4*500)
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 500 {
				c, _ := g.GenerateConnectionID()
				ids <- c.Bytes()
			}
		}()
	}
	for range 4 {
		<-done
	}
	close(ids)
	seen := map[string]bool{}
	for b := range ids {
		require.False(t, seen[string(b)])
		seen[string(b)] = true
		d, err := Decode(b, 1)
		require.NoError(t, err)
		require.Equal(t, []byte{7}, d.ServerID)
	}
	require.Len(t, seen, 2000)
}

func TestBadConfigsAreRefusedNamingTheLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		conf Config
		want LimitError
		text string
	}{
		{"no server ID", Config{}, LimitError{FieldServerID, 0, 1, 15}, "server ID of 0 bytes: want 1 to 15 bytes"},
		{"16-byte server ID", Config{ServerID: make([]byte, 16)}, LimitError{FieldServerID, 16, 1, 15}, "server ID of 16 bytes"},
		{"3-byte nonce", Config{ServerID: []byte{1}, NonceLen: 3}, LimitError{FieldNonce, 3, 4, 18}, "nonce of 3 bytes: want 4 to 18 bytes"},
		{"negative nonce", Config{ServerID: []byte{1}, NonceLen: -1}, LimitError{FieldNonce, -1, 4, 18}, "nonce of -1 bytes"},
		{"21 bytes in all", Config{ServerID: make([]byte, 10), NonceLen: 10}, LimitError{FieldConnectionID, 21, 15, 20}, "connection ID of 21 bytes: want 15 to 20 bytes"},
		{"unroutable rotation", Config{ServerID: []byte{1}, ConfigRotation: 7}, LimitError{FieldConfigRotation, 7, 0, 6}, "config rotation 7: want 0 to 6 (7 marks unroutable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := New(tc.conf)
			require.Nil(t, g)
			var le *LimitError
			require.ErrorAs(t, err, &le)
			require.Equal(t, tc.want, *le)
			require.ErrorContains(t, err, tc.text)
		})
	}
}

func TestServerIDsParseFromHex(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []byte
	}{
		{"0a1b", []byte{0x0a, 0x1b}},
		{"0x0A1B", []byte{0x0a, 0x1b}},
		{"ff", []byte{0xff}},
		{"000102030405060708090a0b0c0d0e", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}},
	} {
		got, err := ParseServerID(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestBadServerIDsAreRefusedByKind(t *testing.T) {
	for _, in := range []string{"0a1", "zz", "0a 1b", "-1"} {
		_, err := ParseServerID(in)
		require.ErrorIs(t, err, ErrNotHex, in)
		require.ErrorContains(t, err, in)
	}
	for in, n := range map[string]int{"": 0, "0x": 0, "00112233445566778899aabbccddeeff": 16} {
		_, err := ParseServerID(in)
		var le *LimitError
		require.ErrorAs(t, err, &le, in)
		require.Equal(t, LimitError{FieldServerID, n, 1, 15}, *le, in)
	}
}

func TestDecodeRefusesWhatABalancerCannotRoute(t *testing.T) {
	valid := []byte{0x2a, 0x0a, 0x1b, 1, 2, 3, 4, 5, 6, 7, 8} // rotation 1, 11 bytes
	d, err := Decode(valid, 2)
	require.NoError(t, err)
	require.Equal(t, Decoded{ConfigRotation: 1, ServerID: []byte{0x0a, 0x1b}}, d)
	require.Equal(t, 11, DescribedLen(valid[0]))
	require.Equal(t, uint8(1), ConfigRotationOf(valid[0]))

	unroutableID := append([]byte{0xea}, valid[1:]...) // 0b111_01010
	_, err = Decode(unroutableID, 2)
	require.ErrorIs(t, err, ErrUnroutable)

	_, err = Decode(valid[:10], 2)
	require.ErrorIs(t, err, ErrLengthMismatch)
	require.ErrorContains(t, err, "says 11 bytes, it has 10")

	var le *LimitError
	_, err = Decode(valid[:6], 2) // no room for a 4-byte nonce
	require.ErrorAs(t, err, &le)
	require.Equal(t, LimitError{FieldConnectionID, 6, 7, 20}, *le)
	_, err = Decode(make([]byte, 21), 2)
	require.ErrorAs(t, err, &le)
	require.Equal(t, LimitError{FieldConnectionID, 21, 7, 20}, *le)
	_, err = Decode(valid, 0)
	require.ErrorAs(t, err, &le)
	require.Equal(t, FieldServerID, le.Field)
	_, err = Decode(nil, 2)
	require.ErrorAs(t, err, &le)

	// Decode copies: changing the connection ID later leaves the result.
	d, err = Decode(valid, 2)
	require.NoError(t, err)
	valid[1] = 0
	require.Equal(t, []byte{0x0a, 0x1b}, d.ServerID)
}

// FuzzDecode checks that Decode never panics on bytes from the network and
// that what it accepts is consistent with the layout; every ID a Generator
// makes from the fuzzed server ID decodes back to it. The seed corpus is in
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, cid []byte, sidLen int) {
		d, err := Decode(cid, sidLen)
		if err != nil {
			var le *LimitError
			if !errors.As(err, &le) && !errors.Is(err, ErrUnroutable) && !errors.Is(err, ErrLengthMismatch) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if d.ConfigRotation > MaxConfigRotation || len(d.ServerID) != sidLen || !bytes.Equal(d.ServerID, cid[1:1+sidLen]) ||
			DescribedLen(cid[0]) != len(cid) {
			t.Fatalf("Decode(%x, %d) = %+v", cid, sidLen, d)
		}
		g, err := New(Config{ServerID: d.ServerID, NonceLen: len(cid) - 1 - sidLen, ConfigRotation: d.ConfigRotation})
		if err != nil {
			t.Fatalf("New for a decodable layout: %v", err)
		}
		c, _ := g.GenerateConnectionID()
		again, err := Decode(c.Bytes(), sidLen)
		if err != nil || !bytes.Equal(again.ServerID, d.ServerID) || again.ConfigRotation != d.ConfigRotation || c.Len() != len(cid) {
			t.Fatalf("round trip of %x: %x, %+v, %v", cid, c.Bytes(), again, err)
		}
	})
}
