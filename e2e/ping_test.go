package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// quiccli ping times PING/PONG on the control stream, which quicsrv
// answers in either mode: the server that `make run` starts (relay mode)
// included.
func TestPingMeasuresRoundTripsAgainstRelayAndEchoServers(t *testing.T) {
	for _, mode := range []string{"relay", "echo"} {
		t.Run(mode, func(t *testing.T) {
			s := startServer(t, "-mode", mode)
			out := requireQuiccli(t, s.client("ping", "-count", "3", "-interval", "20ms")...)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			require.Len(t, lines, 8, out)
			require.Equal(t, fmt.Sprintf("PING %s (quicmsg/1, %s mode): PING/PONG on the control stream", s.addr, mode), lines[0])
			for seq := range 3 {
				require.Regexp(t, fmt.Sprintf(`^PONG from %s: seq=%d time=[0-9.]+ ms$`, regexp.QuoteMeta(s.addr), seq), lines[1+seq])
			}
			requirePingStatistics(t, s.addr, lines[4:])
		})
	}
}

// Against quicsrv in relay mode, the commands that need an echo server
// fail at once (quicsrv announces its mode in HELLO), with one line that
// names the mode and what to use instead, instead of waiting out
// -timeout, here a minute.
func TestEchoCommandsFailAtOnceAgainstARelay(t *testing.T) {
	s := startServer(t, "-mode", "relay")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ping", "-echo"}, "is in relay mode: use quiccli ping without -echo"},
		{[]string{"bench", "-mode", "echo", "-duration", "1s"}, "is in relay mode: use -mode oneway or -mode request"},
	} {
		r := runQuiccli(t, s.client(append([]string{"-timeout", "1m"}, c.args...)...)...)
		require.Equal(t, 1, r.code, "%v\n%s", c.args, r.stderr)
		require.Contains(t, r.stderr, "needs a server in echo mode (quicsrv -mode echo), but the server at "+s.addr+" "+c.want)
		require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line: %q", r.stderr)
	}
}
