package transport

// BenchmarkIdleConnMemory measures the server's memory per idle connection.
// The server runs in a child process (this test binary, running
// TestBenchIdleServerChild), so that the clients' memory, which stays in the
// benchmark's process, is not counted. The child reports its VmRSS (after a
// GC and returning freed memory to the OS) and its Go heap and stack in use,
// before and after the benchmark dials idleConns more connections; the
// difference divided by idleConns is the figure. A few warm-up connections
// are opened before the first reading so that one-time costs (TLS tables,
// buffer pools, goroutine stacks being reused) are not counted per
// connection.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"
)

const (
	idleServerEnv = "QUICMSG_BENCH_IDLE_SERVER"
	idleCertEnv   = "QUICMSG_BENCH_IDLE_CERT" // base64 leaf DER, base64 PKCS #8 key
	idleWarmup    = 10
	idleConns     = 200
)

func BenchmarkIdleConnMemory(b *testing.B) {
	for _, impl := range impls {
		b.Run(impl, func(b *testing.B) {
			var rss, heap float64
			measured := false
			// The measurement is made once per run, whatever b.N is: b.Loop
			// calls the function once and ramps up on empty iterations.
			for b.Loop() {
				if !measured {
					rss, heap = measureIdle(b, impl)
					measured = true
				}
			}
			b.ReportMetric(rss, "KiB/conn")
			b.ReportMetric(heap, "heap-KiB/conn")
		})
	}
}

// idleChild is the server process.
type idleChild struct {
	cmd  *exec.Cmd
	in   *bufio.Writer
	out  *bufio.Scanner
	addr string
}

func startIdleChild(b *testing.B, impl string) *idleChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchIdleServerChild$", "-test.count=1", "-test.timeout=5m")
	// The child serves this process's test certificate, so that the clients
	// here trust it.
	cert := testTLS(b).server.Certificates[0]
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	require.NoError(b, err)
	cmd.Env = append(os.Environ(), idleServerEnv+"="+impl,
		idleCertEnv+"="+base64.StdEncoding.EncodeToString(cert.Certificate[0])+","+base64.StdEncoding.EncodeToString(key))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(b, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, cmd.Start())
	c := &idleChild{cmd: cmd, in: bufio.NewWriter(stdin), out: bufio.NewScanner(stdout)}
	b.Cleanup(func() {
		_ = stdin.Close() // the child closes its server and exits
		done := make(chan struct{})
		go func() {
			for c.out.Scan() { // drain, then reap
			}
			_ = cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	c.addr = c.reply(b, "addr")[0]
	return c
}

// reply returns the fields of the child's next line starting with tag.
func (c *idleChild) reply(b *testing.B, tag string) []string {
	b.Helper()
	for c.out.Scan() {
		f := strings.Fields(c.out.Text())
		if len(f) > 0 && f[0] == "idle-child:" {
			require.Equal(b, tag, f[1], "child said %q", c.out.Text())
			return f[2:]
		}
	}
	b.Fatalf("idle server child ended: %v", c.out.Err())
	return nil
}

// measure asks the child for its memory once it has accepted n connections:
// RSS and heap+stack in use, both in bytes.
func (c *idleChild) measure(b *testing.B, n int) (rss, heap float64) {
	b.Helper()
	fmt.Fprintf(c.in, "measure %d\n", n)
	require.NoError(b, c.in.Flush())
	f := c.reply(b, "mem")
	rss, err := strconv.ParseFloat(f[0], 64)
	require.NoError(b, err)
	heap, err = strconv.ParseFloat(f[1], 64)
	require.NoError(b, err)
	return rss, heap
}

func measureIdle(b *testing.B, impl string) (rssKiB, heapKiB float64) {
	child := startIdleChild(b, impl)
	_, ctls, qconf := rawConfigs(b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	dial := func(n int) {
		for range n {
			switch impl {
			case "quicmsg":
				c, err := Dial(ctx, child.addr, testTLS(b).client, nil)
				require.NoError(b, err)
				closers = append(closers, func() { _ = c.CloseWithError(CodeNoError, "") })
			case "rawquic":
				c, err := quic.DialAddr(ctx, child.addr, ctls, qconf)
				require.NoError(b, err)
				closers = append(closers, func() { _ = c.CloseWithError(0, "") })
			}
		}
	}
	dial(idleWarmup)
	rss0, heap0 := child.measure(b, idleWarmup)
	dial(idleConns)
	rss1, heap1 := child.measure(b, idleWarmup+idleConns)
	return (rss1 - rss0) / idleConns / 1024, (heap1 - heap0) / idleConns / 1024
}

// TestBenchIdleServerChild is the server process of BenchmarkIdleConnMemory;
// it does nothing unless started by it. It answers "measure N" on stdin once
// N connections were accepted, and closes everything at the end of stdin.
func TestBenchIdleServerChild(t *testing.T) {
	impl := os.Getenv(idleServerEnv)
	if impl == "" {
		t.Skip("server process of BenchmarkIdleConnMemory")
	}
	var serverTLSConf *tls.Config
	{
		der, key, ok := strings.Cut(os.Getenv(idleCertEnv), ",")
		require.True(t, ok, "no %s", idleCertEnv)
		certDER, err := base64.StdEncoding.DecodeString(der)
		require.NoError(t, err)
		keyDER, err := base64.StdEncoding.DecodeString(key)
		require.NoError(t, err)
		pk, err := x509.ParsePKCS8PrivateKey(keyDER)
		require.NoError(t, err)
		serverTLSConf = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{certDER}, PrivateKey: pk}}}
	}
	say := func(format string, args ...any) {
		fmt.Printf("idle-child: "+format+"\n", args...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var accepted atomic.Int64
	var wg sync.WaitGroup
	var closeLn func() error
	defer func() {
		cancel()
		if closeLn != nil {
			_ = closeLn()
		}
		wg.Wait()
	}()
	switch impl {
	case "quicmsg":
		ln, err := Listen("127.0.0.1:0", serverTLSConf, nil)
		require.NoError(t, err)
		closeLn = ln.Close
		wg.Go(func() {
			for {
				c, err := ln.Accept(ctx)
				if err != nil {
					return
				}
				accepted.Add(1)
				// A real server waits for the client's channels.
				wg.Go(func() { _, _ = c.AcceptChannel(ctx) })
			}
		})
		say("addr %s", ln.Addr())
	case "rawquic":
		_, _, qconf := rawConfigs(t)
		stls, err := serverTLS(serverTLSConf)
		require.NoError(t, err)
		ln, err := quic.ListenAddr("127.0.0.1:0", stls, qconf)
		require.NoError(t, err)
		closeLn = ln.Close
		wg.Go(func() {
			for {
				c, err := ln.Accept(ctx)
				if err != nil {
					return
				}
				accepted.Add(1)
				wg.Go(func() { _, _ = c.AcceptStream(ctx) })
			}
		})
		say("addr %s", ln.Addr())
	default:
		t.Fatalf("unknown %s %q", idleServerEnv, impl)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var n int64
		if _, err := fmt.Sscanf(in.Text(), "measure %d", &n); err != nil {
			t.Fatalf("bad command %q", in.Text())
		}
		deadline := time.Now().Add(time.Minute)
		for accepted.Load() < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		// Let handshakes finish their work before reading.
		time.Sleep(200 * time.Millisecond)
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		say("mem %d %d", vmRSS(t), ms.HeapInuse+ms.StackInuse)
	}
}

// vmRSS returns the process's resident set size in bytes.
func vmRSS(t *testing.T) int64 {
	data, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
