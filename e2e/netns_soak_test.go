//go:build soak

package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/internal/testenv"
)

// linkRateMbit is the rate of the tbf-limited link.
const linkRateMbit = 50

// benchNS runs quiccli -json bench in ns against s with args, to its end,
// and returns its result, checked as runBench checks it.
func benchNS(t *testing.T, ns string, s *server, args ...string) benchJSON {
	t.Helper()
	out := requireQuiccliNS(t, ns, s, append([]string{"-json", "bench"}, args...)...)
	require.Equal(t, 1, strings.Count(out, "\n"), "one JSON object on one line: %s", out)
	var r benchJSON
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.Equal(t, r.Sent, r.Delivered+r.Undelivered, "every message sent is delivered or counted")
	return r
}

// TestSoakNetnsPathMTU is TestNetnsMessagesLargerThanThePathMTUArrive, in
// the soak run.
func TestSoakNetnsPathMTU(t *testing.T) { testPathMTU(t) }

// TestSoakNetnsBulkThroughputReachesATBFLinkRate limits both directions of a
// veth link with a token bucket (tc tbf, 50 Mbit/s; this kernel has no
// netem) and measures quiccli bench through quicsrv's relay across it: the
// senders' messages cross the link once to the server and once back to the
// receiving connections, so each direction carries the delivered rate.
func TestSoakNetnsBulkThroughputReachesATBFLinkRate(t *testing.T) {
	lab := newNetLab(t)
	srvNS, cliNS := lab.namespace(), lab.namespace()
	srvIf, cliIf := lab.link(srvNS, cliNS, "10.213.2.1/24", "10.213.2.2/24", 1500)
	for _, end := range [][2]string{{srvNS, srvIf}, {cliNS, cliIf}} {
		lab.exec(end[0], "tc", "qdisc", "add", "dev", end[1], "root", "tbf", "rate", "50mbit", "burst", "64kb", "latency", "50ms")
	}
	s := startServerNS(t, srvNS, "10.213.2.1:0")

	r := benchNS(t, cliNS, s, "-duration", "10s", "-size", "16384", "-conns", "2", "-channels", "4")
	require.Zero(t, r.Errors)
	require.Greater(t, r.Delivered, uint64(0))
	mbit := r.MBPerSec * 8
	testenv.Figure(t, "link_rate_mbit", "%d", linkRateMbit)
	testenv.Figure(t, "delivered_payload_mbit", "%.1f", mbit)
	testenv.Figure(t, "achieved_over_rate", "%.2f", mbit/linkRateMbit)
	testenv.Figure(t, "undelivered", "%d of %d", r.Undelivered, r.Sent)
}

// TestSoakNetnsClientMovesToAnotherAddressMidStream runs quiccli bench at a
// steady rate from a client namespace joined to the server by two links, and
// moves the client from the first to the second while it sends: the route
// to the server moves to the second link and the client's first address is
// deleted, so its packets come from a new address, as after a NAT
// rebinding. quic-go's server validates the new path and follows it: the
// same connections carry on, and every message is delivered or counted.
func TestSoakNetnsClientMovesToAnotherAddressMidStream(t *testing.T) {
	lab := newNetLab(t)
	srvNS, cliNS := lab.namespace(), lab.namespace()
	_, oldIf := lab.link(srvNS, cliNS, "10.213.3.1/24", "10.213.3.2/24", 1500)
	_, newIf := lab.link(srvNS, cliNS, "10.213.4.1/24", "10.213.4.2/24", 1500)
	s := startServerNS(t, srvNS, "10.213.3.1:0")

	const rate, seconds = 4000, 8
	started := time.Now()
	p := quiccliNS(t, cliNS, s, "-json", "bench", "-duration", "8s", "-rate", "4000", "-size", "512", "-conns", "2", "-channels", "2")
	time.Sleep(3 * time.Second)
	moved := time.Now()
	lab.ip("-n", cliNS, "route", "add", "10.213.3.1/32", "via", "10.213.4.1", "src", "10.213.4.2")
	lab.ip("-n", cliNS, "addr", "del", "10.213.3.2/24", "dev", oldIf)
	movedBytes := lab.txBytes(cliNS, newIf)
	code := p.wait(t)
	movedBytes = lab.txBytes(cliNS, newIf) - movedBytes
	require.Equal(t, 0, code, "%s\n--- stdout:\n%s--- stderr:\n%s", p.name, p.stdout, p.stderr)
	var r benchJSON
	require.NoError(t, json.Unmarshal([]byte(p.stdout.String()), &r), p.stdout.String())
	require.Equal(t, r.Sent, r.Delivered+r.Undelivered, "every message sent is delivered or counted")

	testenv.Figure(t, "moved_after_s", "%.1f", moved.Sub(started).Seconds())
	testenv.Figure(t, "bytes_sent_on_new_link", "%d", movedBytes)
	testenv.Figure(t, "sent", "%d", r.Sent)
	testenv.Figure(t, "delivered", "%d", r.Delivered)
	testenv.Figure(t, "undelivered", "%d", r.Undelivered)
	testenv.Figure(t, "errors", "%d", r.Errors)
	testenv.Figure(t, "p99_9_latency_ms", "%.1f", r.LatencyUs.P999/1000)
	require.Zero(t, r.Errors, "the connections survived the move")
	testenv.Figure(t, "outcome", "%s", "the same connections carried on from the new address")
	require.Equal(t, r.Sent, r.Delivered, "nothing lost across the move")
	require.Greater(t, r.Sent, uint64(rate*seconds/2), "the bench kept sending after the move")
	require.Greater(t, movedBytes, uint64(512*rate), "the traffic moved to the second link")
}

// txBytes returns the bytes interface dev of namespace ns has sent.
func (l *netLab) txBytes(ns, dev string) uint64 {
	l.t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev).Output()
	require.NoError(l.t, err)
	var links []struct {
		Stats64 struct {
			TX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	require.NoError(l.t, json.Unmarshal(out, &links), "%s", out)
	require.Len(l.t, links, 1)
	return links[0].Stats64.TX.Bytes
}

// exec runs a command inside namespace ns.
func (l *netLab) exec(ns string, args ...string) {
	l.t.Helper()
	l.ip(append([]string{"netns", "exec", ns}, args...)...)
}
