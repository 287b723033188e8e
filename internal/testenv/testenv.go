// Package testenv holds what the project's integration tests share: a test
// certificate authority with TLS configs for 127.0.0.1, and checksummed
// messages that reveal corruption and reordering. Tests only.
package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quicmsg/quicmsg/certs"
)

var (
	once         sync.Once
	serverTLS    *tls.Config
	clientTLS    *tls.Config
	generateErr  error
	validityTime = 24 * time.Hour
)

// TLS returns a server config with a certificate for localhost and
// 127.0.0.1, and a client config that trusts it, made once per test binary.
// Callers that change a config must Clone it first.
func TLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	once.Do(func() {
		ca, err := certs.GenerateCA("quicmsg test CA", validityTime)
		if err != nil {
			generateErr = err
			return
		}
		leaf, err := certs.GenerateLeaf(ca, certs.LeafOptions{Hosts: []string{"localhost", "127.0.0.1"}, ValidFor: validityTime})
		if err != nil {
			generateErr = err
			return
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		serverTLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}
		clientTLS = &tls.Config{RootCAs: roots, ServerName: "localhost"}
	})
	if generateErr != nil {
		t.Fatal(generateErr)
	}
	return serverTLS, clientTLS
}

// Checksummed builds message i of a channel: its index, the SHA-256 of its
// body, and a body whose length varies with i.
func Checksummed(name string, i int) []byte {
	body := bytes.Repeat([]byte(name), 1+i%50)
	sum := sha256.Sum256(body)
	b := binary.BigEndian.AppendUint32(nil, uint32(i))
	b = append(b, sum[:]...)
	return append(b, body...)
}

// VerifyChecksummed checks that msg is message want, intact.
func VerifyChecksummed(msg []byte, want int) error {
	if len(msg) < 36 {
		return fmt.Errorf("message %d too short: %d bytes", want, len(msg))
	}
	if got := int(binary.BigEndian.Uint32(msg)); got != want {
		return fmt.Errorf("message %d arrived in place of %d", got, want)
	}
	if sha256.Sum256(msg[36:]) != [32]byte(msg[4:36]) {
		return fmt.Errorf("message %d corrupted", want)
	}
	return nil
}

// Channel is what Exchange needs of a message channel.
type Channel interface {
	Send(ctx context.Context, msg []byte) error
	Receive(ctx context.Context) ([]byte, error)
}

// Exchange sends n checksummed messages on ch, named name, while reading
// their echoes, and checks that every echo arrives intact and in order.
func Exchange(ctx context.Context, ch Channel, name string, n int) error {
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := ch.Send(ctx, Checksummed(name, i)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := range n {
		msg, err := ch.Receive(ctx)
		if err != nil {
			return fmt.Errorf("%s: echo %d: %w", name, i, err)
		}
		if err := VerifyChecksummed(msg, i); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return <-sent
}
