package wire

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAckRoundTrip(t *testing.T) {
	entries := []AckEntry{{Stream: 4, Count: 1}, {Stream: 1 << 40, Count: 1<<62 - 1}, {Stream: 0, Count: 0}}
	b := AppendControl(nil, Control{Type: ControlAck, Acks: entries})
	require.Equal(t, b, AppendAck(nil, entries), "AppendControl encodes ACK as AppendAck")
	c, n, err := ParseControl(b)
	require.NoError(t, err)
	require.Equal(t, len(b), n)
	require.Equal(t, ControlAck, c.Type)
	require.Equal(t, entries, c.Acks)
	require.Equal(t, "ACK", c.Type.String())
}

func TestAckAppendDoesNotAllocate(t *testing.T) {
	entries := []AckEntry{{Stream: 4, Count: 300}, {Stream: 8, Count: 70000}}
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() { buf = AppendAck(buf[:0], entries) })
	require.Zero(t, allocs)
}

func TestAckRejectsMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"no entry":         {byte(ControlAck), 0},
		"count missing":    {byte(ControlAck), 1, 4},
		"count truncated":  {byte(ControlAck), 2, 4, 0x40},
		"stream truncated": {byte(ControlAck), 3, 4, 1, 0x80},
	} {
		_, _, err := ParseControl(b)
		var me *MalformedError
		require.ErrorAs(t, err, &me, name)
		require.Contains(t, err.Error(), "ACK", name)
	}
}

func TestHelloAcksExtension(t *testing.T) {
	b := AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, MaxMessageSize: 10, PendingCap: 3, Acks: true}})
	c, _, err := ParseControl(b)
	require.NoError(t, err)
	require.True(t, c.Hello.Acks)
	require.Equal(t, []byte{byte(HelloExtAcks), 1, AcksRevision}, b[len(b)-3:])

	b = AppendControl(nil, Control{Type: ControlHello, Hello: Hello{Version: 1, MaxMessageSize: 10, PendingCap: 3}})
	c, _, err = ParseControl(b)
	require.NoError(t, err)
	require.False(t, c.Hello.Acks, "no extension: no acknowledgements")

	b[1] += 4
	b = append(b, byte(HelloExtAcks), 2, 1, 2)
	_, _, err = ParseControl(b)
	require.True(t, errors.As(err, new(*MalformedError)), "an ACKS value of two integers is malformed")
}
