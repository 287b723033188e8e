package client

import (
	"context"
	"crypto/tls"
	"testing"
	"time"
)

func testClientTLSStub() *tls.Config { return &tls.Config{ServerName: "localhost"} }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}
