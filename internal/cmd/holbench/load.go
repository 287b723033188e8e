package main

// This file is shared with the yamux baseline of scripts/bench-hol.sh, which
// copies it into its throwaway module: it uses the standard library only.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// rrSize is the size of a request and of its response.
	rrSize = 64
	// bulkSize is the size of one bulk message.
	bulkSize = 64 << 10
	// bulkStreams is how many channels (streams) carry bulk messages.
	bulkStreams = 4
	// maxSamples bounds the recorded round trips.
	maxSamples = 2_000_000
)

// result is what one measurement prints, as one JSON line.
type result struct {
	Name     string  `json:"name"`
	Samples  int     `json:"samples"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	P999us   float64 `json:"p999_us"`
	BulkMiBs float64 `json:"bulk_mib_s"`
}

// measure runs the bulk senders (each sends bulkSize messages with send
// until ctx ends or it fails; send must return soon after its ctx ends) and, after warmup, the request/response
// loop rt for dur; it returns the round-trip percentiles and the bulk rate.
func measure(ctx context.Context, name string, bulk []func(context.Context, []byte) error, rt func() error, warmup, dur time.Duration) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var sent atomic.Int64
	defer func() { cancel(); wg.Wait() }()
	for _, send := range bulk {
		wg.Go(func() {
			msg := make([]byte, bulkSize)
			for ctx.Err() == nil {
				if send(ctx, msg) != nil {
					return
				}
				sent.Add(bulkSize)
			}
		})
	}
	end := time.Now().Add(warmup)
	for time.Now().Before(end) {
		if err := rt(); err != nil {
			return result{}, fmt.Errorf("warm-up round trip: %w", err)
		}
	}
	lat := make([]time.Duration, 0, 1<<16)
	start := time.Now()
	sent0 := sent.Load()
	for end = start.Add(dur); len(lat) < maxSamples; {
		t0 := time.Now()
		if err := rt(); err != nil {
			return result{}, fmt.Errorf("round trip: %w", err)
		}
		t1 := time.Now()
		lat = append(lat, t1.Sub(t0))
		if t1.After(end) {
			break
		}
	}
	elapsed := time.Since(start)
	bulkBytes := sent.Load() - sent0
	slices.Sort(lat)
	return result{
		Name: name, Samples: len(lat),
		P50us: pct(lat, 0.50), P99us: pct(lat, 0.99), P999us: pct(lat, 0.999),
		BulkMiBs: float64(bulkBytes) / (1 << 20) / elapsed.Seconds(),
	}, nil
}

// pct returns the q quantile of the sorted lat, in microseconds.
func pct(lat []time.Duration, q float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	i := min(int(q*float64(len(lat))), len(lat)-1)
	return float64(lat[i].Nanoseconds()) / 1e3
}

func printResult(r result) {
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

// serverTLS loads cert.pem and key.pem of dir, with TLS 1.3 only.
func serverTLS(dir string, proto string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{proto}}, nil
}

// clientTLS trusts cert.pem of dir, with TLS 1.3 only.
func clientTLS(dir string, proto string) (*tls.Config, error) {
	pem, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in cert.pem")
	}
	return &tls.Config{RootCAs: pool, ServerName: "holbench", MinVersion: tls.VersionTLS13, NextProtos: []string{proto}}, nil
}
