// Package idlemem measures a server's memory per idle connection, for the
// project's benchmarks. The server runs in a child process (the test binary
// itself, running a test that calls [ServeChild]) so that the clients'
// memory, which stays in the benchmark's process, is not counted. The child
// reports its VmRSS (after a GC and returning freed memory to the OS) and its
// Go heap and stack in use, before and after the benchmark dials Conns more
// connections; the difference divided by Conns is the figure. Warm-up
// connections are opened before the first reading so that one-time costs
// (TLS tables, buffer pools, reused goroutine stacks) are not counted per
// connection.
package idlemem

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
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

const (
	serverEnv = "QUICMSG_BENCH_IDLE_SERVER"
	certEnv   = "QUICMSG_BENCH_IDLE_CERT" // base64 leaf DER, base64 PKCS #8 key
	// ProfileEnv, when set to a directory, has the child write a heap
	// profile there at each reading (heap-<impl>-<connections>.pprof), so
	// that the difference between two readings shows where the bytes of
	// an idle connection are: go tool pprof -base <first> <second>.
	ProfileEnv = "QUICMSG_BENCH_IDLE_PROFILE"
	// Warmup is how many connections are opened before the first reading.
	Warmup = 10
	// Conns is how many idle connections the figure is averaged over.
	Conns = 200
)

// Server starts the server named by the benchmark in the child process. It
// counts accepted connections in accepted and returns its address and a
// function that stops it and waits for what it started.
type Server func(ctx context.Context, tlsConf *tls.Config, accepted *atomic.Int64) (addr string, stop func(), err error)

// Dial makes one idle client connection and returns a function closing it.
type Dial func(ctx context.Context, addr string) (close func(), err error)

// PerConn is the child's growth per idle connection.
type PerConn struct {
	RSSKiB      float64 // VmRSS
	HeapKiB     float64 // Go HeapInuse + StackInuse (the figure before issue 12)
	HeapOnlyKiB float64 // Go HeapInuse
	StackKiB    float64 // Go StackInuse
	Goroutines  float64 // runtime.NumGoroutine
}

// Report reports every figure of p as a metric of b.
func (p PerConn) Report(b *testing.B) {
	b.ReportMetric(p.RSSKiB, "KiB/conn")
	b.ReportMetric(p.HeapKiB, "heap-KiB/conn")
	b.ReportMetric(p.HeapOnlyKiB, "heaponly-KiB/conn")
	b.ReportMetric(p.StackKiB, "stack-KiB/conn")
	b.ReportMetric(p.Goroutines, "goroutines/conn")
}

// Measure starts the child running server impl with serverTLS, dials
// Warmup then Conns connections with dial, and returns the child's growth
// per connection in KiB of RSS and of Go heap and stacks. childTest is the
// name of the test in this binary that calls ServeChild.
func Measure(b *testing.B, childTest, impl string, serverTLS *tls.Config, dial Dial) (rssKiB, heapKiB float64) {
	p := MeasureAll(b, childTest, impl, serverTLS, dial)
	return p.RSSKiB, p.HeapKiB
}

// MeasureAll is Measure returning every figure the child reports.
func MeasureAll(b *testing.B, childTest, impl string, serverTLS *tls.Config, dial Dial) PerConn {
	b.Helper()
	child := startChild(b, childTest, impl, serverTLS)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	open := func(n int) {
		for range n {
			c, err := dial(ctx, child.addr)
			if err != nil {
				b.Fatal(err)
			}
			closers = append(closers, c)
		}
	}
	open(Warmup)
	m0 := child.measure(b, Warmup)
	open(Conns)
	m1 := child.measure(b, Warmup+Conns)
	per := func(i int) float64 { return (m1[i] - m0[i]) / Conns }
	return PerConn{
		RSSKiB:      per(0) / 1024,
		HeapKiB:     (per(1) + per(2)) / 1024,
		HeapOnlyKiB: per(1) / 1024,
		StackKiB:    per(2) / 1024,
		Goroutines:  per(3),
	}
}

type child struct {
	in   *bufio.Writer
	out  *bufio.Scanner
	addr string
}

func startChild(b *testing.B, childTest, impl string, serverTLS *tls.Config) *child {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+childTest+"$", "-test.count=1", "-test.timeout=5m")
	cert := serverTLS.Certificates[0]
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		b.Fatal(err)
	}
	cmd.Env = append(os.Environ(), serverEnv+"="+impl,
		certEnv+"="+base64.StdEncoding.EncodeToString(cert.Certificate[0])+","+base64.StdEncoding.EncodeToString(key))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &child{in: bufio.NewWriter(stdin), out: bufio.NewScanner(stdout)}
	b.Cleanup(func() {
		_ = stdin.Close() // the child stops its server and exits
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
func (c *child) reply(b *testing.B, tag string) []string {
	b.Helper()
	for c.out.Scan() {
		f := strings.Fields(c.out.Text())
		if len(f) > 0 && f[0] == "idle-child:" {
			if f[1] != tag {
				b.Fatalf("child said %q, want %s", c.out.Text(), tag)
			}
			return f[2:]
		}
	}
	b.Fatalf("idle server child ended: %v", c.out.Err())
	return nil
}

// measure asks the child for its memory once it has accepted n connections:
// RSS, heap in use and stacks in use, in bytes, and the goroutine count.
func (c *child) measure(b *testing.B, n int) [4]float64 {
	b.Helper()
	fmt.Fprintf(c.in, "measure %d\n", n)
	if err := c.in.Flush(); err != nil {
		b.Fatal(err)
	}
	f := c.reply(b, "mem")
	var m [4]float64
	for i := range m {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			b.Fatal(err)
		}
		m[i] = v
	}
	return m
}

// ServeChild is the child's side: called from a test, it does nothing (it
// skips) unless the benchmark started this process. It runs the server the
// benchmark named, answers "measure N" on stdin once N connections were
// accepted, and stops the server at the end of stdin.
func ServeChild(t *testing.T, servers map[string]Server) {
	impl := os.Getenv(serverEnv)
	if impl == "" {
		t.Skip("server process of an idle-memory benchmark")
	}
	server, ok := servers[impl]
	if !ok {
		t.Fatalf("unknown %s %q", serverEnv, impl)
	}
	serverTLS, err := childTLS()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(ProfileEnv) != "" {
		// Every allocation of 512 bytes on average is sampled, not one per
		// 512 KiB: a connection's own allocations are smaller than that.
		runtime.MemProfileRate = 512
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var accepted atomic.Int64
	addr, stop, err := server(ctx, serverTLS, &accepted)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	say := func(format string, args ...any) { fmt.Printf("idle-child: "+format+"\n", args...) }
	say("addr %s", addr)
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
		rss, err := vmRSS()
		if err != nil {
			t.Fatal(err)
		}
		if err := writeProfile(impl, n); err != nil {
			t.Fatal(err)
		}
		say("mem %d %d %d %d", rss, ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine())
	}
}

// writeProfile writes a heap profile into the directory ProfileEnv names,
// if it is set.
func writeProfile(impl string, n int64) error {
	dir := os.Getenv(ProfileEnv)
	if dir == "" {
		return nil
	}
	f, err := os.Create(fmt.Sprintf("%s/heap-%s-%d.pprof", dir, impl, n))
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func childTLS() (*tls.Config, error) {
	der, key, ok := strings.Cut(os.Getenv(certEnv), ",")
	if !ok {
		return nil, fmt.Errorf("no %s", certEnv)
	}
	certDER, err := base64.StdEncoding.DecodeString(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return nil, err
	}
	pk, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{certDER}, PrivateKey: pk}}}, nil
}

// vmRSS returns the process's resident set size in bytes.
func vmRSS() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}

// RawQUIC is the baseline: a plain quic-go listener with qconf, negotiating
// nextProto over TLS 1.3, that parks one goroutine per accepted connection in
// AcceptStream, as a real server waiting for its client would.
func RawQUIC(qconf *quic.Config, nextProto string) Server {
	return func(ctx context.Context, tlsConf *tls.Config, accepted *atomic.Int64) (string, func(), error) {
		tc := tlsConf.Clone()
		tc.MinVersion = tls.VersionTLS13
		tc.NextProtos = []string{nextProto}
		ln, err := quic.ListenAddr("127.0.0.1:0", tc, qconf)
		if err != nil {
			return "", nil, err
		}
		park := func(ctx context.Context, c *quic.Conn) { _, _ = c.AcceptStream(ctx) }
		return ln.Addr().String(), Park(ctx, accepted, ln.Accept, park, ln.Close), nil
	}
}

// Park is the accept loop of a [Server]: it accepts connections with accept
// until that fails, counts each in accepted, and parks one goroutine per
// connection in wait. The loop and the parked goroutines are owned by the
// returned stop, which cancels their context, closes the listener with
// closeLn and waits for them.
func Park[C any](ctx context.Context, accepted *atomic.Int64, accept func(context.Context) (C, error), wait func(context.Context, C), closeLn func() error) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := accept(ctx)
			if err != nil {
				return
			}
			accepted.Add(1)
			wg.Go(func() { wait(ctx, c) })
		}
	})
	return func() {
		cancel()
		_ = closeLn()
		wg.Wait()
	}
}
