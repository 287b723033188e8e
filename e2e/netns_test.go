package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

// The network namespace tests run quicsrv and quiccli in namespaces of
// their own, joined by veth pairs, so that packets cross a real link with
// its own MTU, queueing discipline and addresses (10.213.0.0/16, which
// exists only inside the namespaces). They create every namespace with a
// name unique to the test process and delete it at cleanup, even when the
// test fails; deleting a namespace deletes the veth ends in it. Nothing
// touches the host's own interfaces or routes. They need root (CI runs as
// root) and the ip command, and skip without them.

// netnsSeq numbers the namespaces and links of this process.
var netnsSeq atomic.Uint32

// netLab creates namespaces and links for one test.
type netLab struct {
	t *testing.T
}

// newNetLab skips the test unless namespaces can be made here.
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespace tests need root (ip netns, veth, tc); CI runs them as root")
	}
	for _, bin := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("network namespace tests need the %s command (iproute2): %v", bin, err)
		}
	}
	return &netLab{t: t}
}

// name returns a fresh name for a namespace or an interface: at most 15
// bytes, unique to this process and call.
func name(kind string) string {
	return fmt.Sprintf("qm%s%d-%d", kind, os.Getpid()%100000, netnsSeq.Add(1))
}

// ip runs the ip command with args and fails the test on error.
func (l *netLab) ip(args ...string) {
	l.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	require.NoError(l.t, err, "ip %s: %s", strings.Join(args, " "), out)
}

// namespace creates a namespace with its loopback up, deleted at cleanup.
func (l *netLab) namespace() string {
	l.t.Helper()
	ns := name("n")
	l.ip("netns", "add", ns)
	l.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	l.ip("-n", ns, "link", "set", "lo", "up")
	return ns
}

// link joins namespaces a and b with a veth pair of the given MTU, gives
// the ends the addresses addrA and addrB (CIDR), and returns the names of
// the ends.
func (l *netLab) link(a, b, addrA, addrB string, mtu int) (ifA, ifB string) {
	l.t.Helper()
	ifA, ifB = name("a"), name("b")
	l.ip("link", "add", ifA, "mtu", fmt.Sprint(mtu), "netns", a, "type", "veth", "peer", "name", ifB, "mtu", fmt.Sprint(mtu), "netns", b)
	l.ip("-n", a, "addr", "add", addrA, "dev", ifA)
	l.ip("-n", b, "addr", "add", addrB, "dev", ifB)
	l.ip("-n", a, "link", "set", ifA, "up")
	l.ip("-n", b, "link", "set", ifB, "up")
	return ifA, ifB
}

// startServerNS runs quicsrv in namespace ns on addr (host:port), with
// development certificates in a fresh directory and metrics on the
// namespace's loopback, then args.
func startServerNS(t *testing.T, ns, addr string, args ...string) *server {
	t.Helper()
	devDir := t.TempDir()
	full := append([]string{"netns", "exec", ns, quicsrvBin,
		"-addr", addr,
		"-dev-certs", devDir,
		"-metrics", "127.0.0.1:0",
	}, args...)
	s := &server{process: start(t, "ip", full...), devDir: devDir}
	s.waitOutput(t, "quicsrv's first lines", func(stdout, _ string) bool { return reMetrics.MatchString(stdout) })
	out := s.stdout.String()
	s.addr = reListening.FindStringSubmatch(out)[1]
	s.caFile = reCA.FindStringSubmatch(out)[1]
	return s
}

// quiccliNS starts quiccli in namespace ns against s, trusting its CA.
func quiccliNS(t *testing.T, ns string, s *server, args ...string) *process {
	t.Helper()
	return start(t, "ip", append([]string{"netns", "exec", ns, quiccliBin}, s.client(args...)...)...)
}

// requireQuiccliNS runs quiccli in ns to its end, requires exit status 0
// and returns its stdout.
func requireQuiccliNS(t *testing.T, ns string, s *server, args ...string) string {
	t.Helper()
	p := quiccliNS(t, ns, s, args...)
	code := p.wait(t)
	require.Equal(t, 0, code, "%s\n--- stdout:\n%s--- stderr:\n%s", p.name, p.stdout, p.stderr)
	return p.stdout.String()
}

// pingSummary is the last line of `quiccli -json ping`.
type pingSummary struct {
	Type     string  `json:"type"`
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	P50us    float64 `json:"p50_us"`
}

// TestNetnsMessagesLargerThanThePathMTUArrive runs an echo server and
// quiccli ping across a veth link of MTU 1280 (the IPv6 minimum: quic-go's
// first 1280-byte datagrams do not fit in it with their IPv4 and UDP headers,
// so it must fall back to 1200-byte packets) and of MTU 9000 (jumbo frames,
// found by path MTU discovery), with messages several times the MTU.
// It is quick, so it runs in make test; make soak runs it too, as
// TestSoakNetnsPathMTU, so that its figures are in the soak table.
func TestNetnsMessagesLargerThanThePathMTUArrive(t *testing.T) { testPathMTU(t) }

func testPathMTU(t *testing.T) {
	for _, mtu := range []int{1280, 9000} {
		t.Run(fmt.Sprintf("mtu%d", mtu), func(t *testing.T) {
			lab := newNetLab(t)
			srvNS, cliNS := lab.namespace(), lab.namespace()
			lab.link(srvNS, cliNS, "10.213.1.1/24", "10.213.1.2/24", mtu)
			s := startServerNS(t, srvNS, "10.213.1.1:0", "-mode", "echo")

			const pings, size = 20, 40000
			out := requireQuiccliNS(t, cliNS, s, "-json", "ping", "-echo", "-count", fmt.Sprint(pings), "-interval", "10ms", "-size", fmt.Sprint(size))
			lines := strings.Split(strings.TrimSpace(out), "\n")
			require.Len(t, lines, pings+1, out)
			var sum pingSummary
			require.NoError(t, json.Unmarshal([]byte(lines[pings]), &sum), lines[pings])
			require.Equal(t, "summary", sum.Type, out)
			require.Equal(t, pings, sum.Sent, out)
			require.Equal(t, pings, sum.Received, "every %d-byte message came back over a %d-byte MTU link", size, mtu)
			testenv.Figure(t, "echo_40KB_p50_ms", "%.2f", sum.P50us/1000)
		})
	}
}
