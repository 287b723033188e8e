package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quicmsg/quicmsg/certs"
	"github.com/quicmsg/quicmsg/transport"
)

func TestStartsWithDevelopmentCertificatesAndReusesThem(t *testing.T) {
	dir := t.TempDir()
	ts := startServerIn(t, dir)
	require.Equal(t, filepath.Join(dir, certs.DevCAFile), ts.caFile)
	require.True(t, strings.HasPrefix(ts.stdout.String(), "quicsrv listening on 127.0.0.1:"), "the address is on the first line")
	require.Contains(t, ts.stdout.String(), "relay mode")
	require.NoError(t, ts.stop(t))

	again := startServerIn(t, dir)
	require.Equal(t, ts.pin, again.pin, "the development certificate is reused")
	_, err := os.Stat(filepath.Join(dir, "session-keys.pem"))
	require.NoError(t, err, "session ticket keys are kept beside the development certificates")
}

func TestRelayDeliversToEveryOtherSubscriber(t *testing.T) {
	ts := startServer(t, "-metrics", "127.0.0.1:0")
	conf := ts.clientTLS(t)
	alice, bob, carol := dial(t, ts.addr, conf), dial(t, ts.addr, conf), dial(t, ts.addr, conf)
	bobChat := openChannel(t, bob, "chat")
	carolNews := openChannel(t, carol, "news")
	aliceChat := openChannel(t, alice, "chat")
	ts.waitMetric(t, 3, "quicmsg_relay_subscriptions")

	send(t, aliceChat, "hello from alice")
	require.Equal(t, "hello from alice", receive(t, bobChat))
	send(t, bobChat, "hi alice")
	require.Equal(t, "hi alice", receive(t, aliceChat))

	// Each message was routed to the one other subscriber of "chat": not
	// back to its sender, not to carol on "news".
	ts.waitMetric(t, 2, "quicmsg_relay_delivered_total")
	f := scrape(t, ts.metricsURL)
	require.Equal(t, 2.0, metricValue(f, "quicmsg_relay_published_total"))
	require.Equal(t, 2.0, metricValue(f, "quicmsg_relay_routed_total"))
	require.Equal(t, 3.0, metricValue(f, "quicmsg_channels_open"))
	_ = carolNews
}

func TestEchoModeSendsEveryMessageBack(t *testing.T) {
	ts := startServer(t, "-mode", "echo")
	require.Contains(t, ts.stdout.String(), "echo mode")
	c := dial(t, ts.addr, ts.clientTLS(t))
	a, b := openChannel(t, c, "a"), openChannel(t, c, "b")
	for i := range 3 {
		send(t, a, "a"+strconv.Itoa(i))
		send(t, b, "b"+strconv.Itoa(i))
	}
	for i := range 3 {
		require.Equal(t, "a"+strconv.Itoa(i), receive(t, a))
		require.Equal(t, "b"+strconv.Itoa(i), receive(t, b))
	}
}

func TestCancelSendsGoAwayDrainsAndReturnsNil(t *testing.T) {
	ts := startServer(t, "-mode", "echo", "-shutdown-timeout", "60s", "-metrics", "127.0.0.1:0")
	c := dial(t, ts.addr, ts.clientTLS(t))
	ch := openChannel(t, c, "work")
	send(t, ch, "before")
	require.Equal(t, "before", receive(t, ch))

	ts.cancel()
	select {
	case <-c.GoAwayReceived():
	case <-time.After(waitTimeout):
		t.Fatal("no GOAWAY")
	}
	ga, _ := c.PeerGoAway()
	require.Equal(t, transport.CodeGoingAway, ga.Code)
	// The server waits for its client: the session still works meanwhile.
	select {
	case err := <-ts.done:
		t.Fatalf("run returned %v before the client left", err)
	default:
	}
	send(t, ch, "during drain")
	require.Equal(t, "during drain", receive(t, ch))
	resp, err := httpClient.Get(ts.metricsURL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "health fails while draining")

	require.NoError(t, c.Close())
	require.NoError(t, ts.stop(t))
	require.Contains(t, ts.stderr.String(), "msg=stopped")
}

func TestDrainTimeoutClosesSessionsThatStay(t *testing.T) {
	ts := startServer(t, "-shutdown-timeout", "100ms")
	c := dial(t, ts.addr, ts.clientTLS(t))
	openChannel(t, c, "stay")
	require.NoError(t, ts.stop(t))
	select {
	case <-c.Context().Done():
	case <-time.After(waitTimeout):
		t.Fatal("the session was not closed")
	}
	require.ErrorIs(t, context.Cause(c.Context()), transport.CodeGoingAway)
	require.Contains(t, ts.stderr.String(), "drain timed out")
}

func TestMetricsScrapeParses(t *testing.T) {
	ts := startServer(t, "-metrics", "127.0.0.1:0", "-mode", "echo")
	c := dial(t, ts.addr, ts.clientTLS(t))
	ch := openChannel(t, c, "m")
	send(t, ch, "12345")
	require.Equal(t, "12345", receive(t, ch))
	ts.waitMetric(t, 1, "quicmsg_sessions_active")

	f := scrape(t, ts.metricsURL)
	require.Equal(t, 1.0, metricValue(f, "quicmsg_sessions_accepted_total"))
	require.Equal(t, 1.0, metricValue(f, "quicmsg_messages_received_total"))
	require.Equal(t, 5.0, metricValue(f, "quicmsg_received_bytes_total"))
	require.Equal(t, 1.0, metricValue(f, "quicmsg_messages_sent_total"))
	require.Equal(t, 1.0, metricValue(f, "quicmsg_channels_open"))
	require.Equal(t, 1.0, metricValue(f, "quicmsg_build_info", "version", version(), "commit", commitLabel(), "goversion", runtime.Version()))
	require.NotContains(t, f, "quicmsg_relay_published_total", "no relay in echo mode")

	resp, err := httpClient.Get(ts.metricsURL + "/healthz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "ok\n", string(body))

	require.NoError(t, c.Close())
	ts.waitMetric(t, 1, "quicmsg_session_disconnects_total", "by", "client", "code", "no_error")
	ts.waitMetric(t, 1, "quicmsg_handshakes_total", "zero_rtt", "false")
	ts.waitMetric(t, 0, "quicmsg_sessions_active")
}

func TestMutualTLSRefusesClientsWithoutCertificate(t *testing.T) {
	dir := t.TempDir()
	dev, err := certs.EnsureDev(dir, nil)
	require.NoError(t, err)
	ts := startServerIn(t, dir, "-client-ca", dev.CAFile, "-mode", "echo")
	require.Contains(t, ts.stdout.String(), "mutual TLS")

	_, err = transport.Dial(testCtx(t), ts.addr, ts.clientTLS(t), nil)
	require.Error(t, err)
	require.ErrorIs(t, err, transport.ErrUntrusted)

	certFile, keyFile, err := certs.NewDevClientCert(dir, "alice")
	require.NoError(t, err)
	conf, err := certs.ClientConfig(certs.ClientOptions{CAFile: dev.CAFile, ServerName: "localhost", CertFile: certFile, KeyFile: keyFile})
	require.NoError(t, err)
	c := dial(t, ts.addr, conf)
	ch := openChannel(t, c, "secure")
	send(t, ch, "with a certificate")
	require.Equal(t, "with a certificate", receive(t, ch))
}

// certPair writes a server certificate for localhost signed by ca into
// cert and key.
func certPair(t *testing.T, ca *certs.KeyPair, cert, key string) *certs.KeyPair {
	t.Helper()
	leaf, err := certs.GenerateLeaf(ca, certs.LeafOptions{Hosts: []string{"localhost", "127.0.0.1"}, ValidFor: time.Hour})
	require.NoError(t, err)
	require.NoError(t, leaf.WriteFiles(cert, key))
	return leaf
}

func peerPin(c *transport.Conn) string {
	return certs.PublicKeyPin(c.ConnectionState().TLS.PeerCertificates[0])
}

// reloadSetup starts an echo server on its own certificate files and
// returns a trusting client config, the files and the first certificate.
func reloadSetup(t *testing.T, args ...string) (*testServer, *certs.KeyPair, string, string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.GenerateCA("reload test CA", time.Hour)
	require.NoError(t, err)
	cert, key := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	first := certPair(t, ca, cert, key)
	ts := startServer(t, append([]string{"-cert", cert, "-key", key, "-mode", "echo"}, args...)...)
	require.Equal(t, first.Pin(), ts.pin)
	return ts, ca, cert, key
}

func testClientTLS(ca *certs.KeyPair) *certs.ClientOptions {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &certs.ClientOptions{RootCAs: pool, ServerName: "localhost"}
}

// requireReloadKeepsOldSession checks that old still echoes and still has
// the certificate it started with.
func requireReloadKeepsOldSession(t *testing.T, old *transport.Conn, oldCh *transport.Channel, oldPin string) {
	t.Helper()
	send(t, oldCh, "still here")
	require.Equal(t, "still here", receive(t, oldCh))
	require.Equal(t, oldPin, peerPin(old))
	require.NoError(t, old.Context().Err())
}

func TestCertificateReloadOnSIGHUP(t *testing.T) {
	ts, ca, cert, key := reloadSetup(t, "-reload-interval", "0")
	conf, err := certs.ClientConfig(*testClientTLS(ca))
	require.NoError(t, err)
	old := dial(t, ts.addr, conf)
	oldCh := openChannel(t, old, "long-lived")
	send(t, oldCh, "before")
	require.Equal(t, "before", receive(t, oldCh))
	oldPin := peerPin(old)

	second := certPair(t, ca, cert, key)
	require.NotEqual(t, oldPin, second.Pin())
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	ts.waitLog(t, `certificate reloaded.*reason=SIGHUP`)

	fresh := dial(t, ts.addr, conf)
	require.Equal(t, second.Pin(), peerPin(fresh), "new connections get the new certificate")
	requireReloadKeepsOldSession(t, old, oldCh, oldPin)
}

func TestCertificateReloadWhenFilesChange(t *testing.T) {
	ts, ca, cert, key := reloadSetup(t, "-reload-interval", "20ms")
	conf, err := certs.ClientConfig(*testClientTLS(ca))
	require.NoError(t, err)
	old := dial(t, ts.addr, conf)
	oldCh := openChannel(t, old, "long-lived")
	oldPin := peerPin(old)

	second := certPair(t, ca, cert, key)
	ts.waitLog(t, `certificate reloaded.*reason="files changed"`)
	fresh := dial(t, ts.addr, conf)
	require.Equal(t, second.Pin(), peerPin(fresh))
	requireReloadKeepsOldSession(t, old, oldCh, oldPin)
}

// slowConsumerScenario runs a publisher, a subscriber that reads everything
// and one that reads nothing, on a server with a small subscriber queue.
// The publisher sends each message only once the reading subscriber has the
// previous one, so that it never gets ahead of it; the subscriber that does
// not read falls behind until the server gives up on it. It returns the
// stuck subscriber's connection and channel.
func slowConsumerScenario(t *testing.T, policy string, args ...string) (*testServer, *transport.Conn, *transport.Channel) {
	ts := startServer(t, append([]string{"-metrics", "127.0.0.1:0", "-subscriber-queue", "8", "-slow-consumer", policy}, args...)...)
	conf := ts.clientTLS(t)
	pub, fast, stuck := dial(t, ts.addr, conf), dial(t, ts.addr, conf), dial(t, ts.addr, conf)
	stuckCh := openChannel(t, stuck, "firehose") // not read here
	fastCh := openChannel(t, fast, "firehose")
	pubCh := openChannel(t, pub, "firehose")
	ts.waitMetric(t, 3, "quicmsg_relay_subscriptions")

	// 400 messages of 16 KiB: well past what the stuck subscriber's QUIC
	// receive window, its send buffer on the server and its relay queue hold.
	const n = slowConsumerMessages
	payload := bytes.Repeat([]byte{'x'}, 16<<10)
	for i := range n {
		copy(payload, strconv.Itoa(i)+":")
		require.NoError(t, pubCh.Send(testCtx(t), payload))
		got, err := fastCh.Receive(testCtx(t))
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(got, []byte(strconv.Itoa(i)+":")), "message %d out of order", i)
	}
	return ts, stuck, stuckCh
}

// requireSlowConsumerClose waits until the server closes c with
// SLOW_CONSUMER.
func requireSlowConsumerClose(t *testing.T, c *transport.Conn) {
	t.Helper()
	select {
	case <-c.Context().Done():
	case <-time.After(waitTimeout):
		t.Fatal("the slow subscriber was not disconnected")
	}
	require.ErrorIs(t, context.Cause(c.Context()), transport.CodeSlowConsumer)
}

// slowConsumerMessages is how many messages slowConsumerScenario publishes.
const slowConsumerMessages = 400

func TestSlowSubscriberIsDroppedForWithoutHoldingUpOthers(t *testing.T) {
	ts, stuck, _ := slowConsumerScenario(t, "drop")
	f := scrape(t, ts.metricsURL)
	require.Greater(t, metricValue(f, "quicmsg_relay_dropped_total"), 0.0)
	// One episode or more: the stuck subscriber's queue can drain into its
	// stream's buffers between overflows, which ends an episode.
	require.GreaterOrEqual(t, metricValue(f, "quicmsg_slow_consumer_events_total"), 1.0)
	require.Equal(t, 0.0, metricValue(f, "quicmsg_slow_consumer_disconnects_total"))
	require.NoError(t, stuck.Context().Err(), "under -slow-consumer drop the subscriber stays connected")
}

func TestSlowSubscriberIsDisconnectedWithoutHoldingUpOthers(t *testing.T) {
	ts, stuck, _ := slowConsumerScenario(t, "disconnect")
	requireSlowConsumerClose(t, stuck)
	ts.waitMetric(t, 1, "quicmsg_slow_consumer_disconnects_total")
	ts.waitMetric(t, 1, "quicmsg_session_disconnects_total", "by", "server", "code", "slow_consumer")
}

func TestZeroRTTResumptionIsCounted(t *testing.T) {
	ts := startServer(t, "-metrics", "127.0.0.1:0", "-mode", "echo")
	conf := ts.clientTLS(t)
	conf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	first := dial(t, ts.addr, conf)
	ch := openChannel(t, first, "r")
	send(t, ch, "x")
	require.Equal(t, "x", receive(t, ch))
	require.NoError(t, first.Close())

	var again *transport.Conn
	require.Eventually(t, func() bool {
		c, err := transport.DialEarly(testCtx(t), ts.addr, conf, nil)
		require.NoError(t, err)
		ch, err := c.OpenChannel(testCtx(t), "r")
		require.NoError(t, err)
		require.NoError(t, ch.SendReplaySafe(testCtx(t), []byte("early")))
		require.Equal(t, "early", receive(t, ch))
		if c.Used0RTT() {
			again = c
			return true
		}
		_ = c.Close()
		return false
	}, waitTimeout, time.Millisecond, "no 0-RTT resumption")
	require.NoError(t, again.Close())
	ts.waitMetric(t, 1, "quicmsg_handshakes_total", "zero_rtt", "true")
}

func TestVersionFlagPrintsTheModuleVersion(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-version"}, &out, io.Discard))
	require.True(t, strings.HasPrefix(out.String(), "quicsrv "+version()), out.String())
}

func TestHelpShowsAnExampleAndEveryFlag(t *testing.T) {
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"-h"}, io.Discard, &errOut)
	require.ErrorIs(t, err, flag.ErrHelp)
	help := errOut.String()
	require.Contains(t, help, "Examples:\n  quicsrv\n")
	for _, f := range []string{"addr", "cert", "key", "client-ca", "mode", "max-sessions", "max-message-size",
		"pending-cap", "pending-bytes", "overflow", "idle-timeout", "keep-alive", "ticket-keys", "metrics", "log-format", "log-level", "qlog",
		"keylog", "shutdown-timeout", "version", "slow-consumer", "subscriber-queue", "subscriber-queue-bytes",
		"reload-interval", "dev-certs", "dev-client-cert", "resume-window", "max-detached", "resume-key-file", "publish-timeout", "server-id",
		"cluster", "cluster-required", "cluster-buffer", "cluster-creds", "cluster-ca", "config"} {
		require.Regexp(t, `\n  -`+f+`[ \n]`, help)
	}
}

func TestBadFlagsAreRefusedByName(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-mode", "broadcast"}, "-mode"},
		{[]string{"-overflow", "ignore"}, "overflow"},
		{[]string{"-slow-consumer", "ignore"}, "slow-consumer"},
		{[]string{"-publish-timeout", "-1s"}, "-publish-timeout"},
		{[]string{"-log-format", "xml"}, "-log-format"},
		{[]string{"-log-level", "loud"}, "log-level"},
		{[]string{"-cert", "a.pem"}, "-cert and -key"},
		{[]string{"-pending-cap", "-1"}, "-pending-cap"},
		{[]string{"-pending-bytes", "-1"}, "-pending-bytes"},
		{[]string{"-max-detached", "-1"}, "-max-detached"},
		{[]string{"-resume-window", "soon"}, "resume-window"},
		{[]string{"-memory-limit", "600MB"}, "memory-limit"},
		{[]string{"-memory-limit", "-1MiB"}, "memory-limit"},
		{[]string{"-server-id", "0a1"}, "-server-id"},
		{[]string{"-server-id", "00112233445566778899aabbccddeeff"}, "-server-id"},
		{[]string{"-pprof"}, "-pprof needs -metrics"},
		{[]string{"stray"}, "unexpected argument"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		require.ErrorContains(t, err, tc.want, "%v", tc.args)
	}
}

func TestQlogWritesATracePerConnection(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "qlog")
	ts := startServer(t, "-qlog", dir, "-mode", "echo")
	c := dial(t, ts.addr, ts.clientTLS(t))
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, "*_server.sqlog"))
		return len(files) > 0
	}, waitTimeout, 5*time.Millisecond, "no qlog trace written")
}

func TestKeyLogWritesSecretsAndWarns(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys.log")
	ts := startServer(t, "-keylog", file, "-mode", "echo")
	require.Contains(t, ts.stderr.String(), "WARNING: -keylog")
	c := dial(t, ts.addr, ts.clientTLS(t))
	require.NoError(t, c.Close())
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Contains(t, string(b), "CLIENT_HANDSHAKE_TRAFFIC_SECRET")
}

func TestDevClientCertIsIssuedForMutualTLS(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-dev-certs", dir, "-dev-client-cert", "bob"}, &out, io.Discard))
	require.Contains(t, out.String(), filepath.Join(dir, "client-bob.pem"))
	_, err := certs.LoadKeyPair(filepath.Join(dir, "client-bob.pem"), filepath.Join(dir, "client-bob-key.pem"))
	require.NoError(t, err)
}

func TestListenFailureIsReported(t *testing.T) {
	ts := startServer(t)
	err := run(context.Background(), []string{"-addr", ts.addr, "-dev-certs", ts.devDir}, io.Discard, io.Discard)
	require.Error(t, err)
	require.False(t, errors.Is(err, flag.ErrHelp))
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	require.Contains(t, err.Error(), "another process listens on "+ts.addr+"; choose another address with -addr")
}

func TestMetricsAddressInUseSuggestsTheFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	err = run(context.Background(), []string{"-addr", "127.0.0.1:0", "-metrics", taken.Addr().String(), "-dev-certs", t.TempDir()}, io.Discard, io.Discard)
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	require.Contains(t, err.Error(), "choose another address with -metrics")
}

func TestKeepAliveFlagReachesTheTransport(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, transport.DefaultKeepAlivePeriod},
		{[]string{"-keep-alive", "25s"}, 25 * time.Second},
		{[]string{"-keep-alive", "-1s"}, -time.Second}, // none: transport.Config's negative
	} {
		o, err := parseFlags(append([]string{"-dev-certs", t.TempDir()}, tc.args...), io.Discard)
		require.NoError(t, err)
		conf, err := transportConfig(o, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		require.Equal(t, tc.want, conf.KeepAlivePeriod, "%q", tc.args)
	}
}
