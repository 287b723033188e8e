package main

import (
	"context"
	"log/slog"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"

	"github.com/quicmsg/quicmsg/internal/qlogdir"
)

// qlogTracer returns a quic-go connection tracer that writes one qlog file
// per connection into dir (see qlogdir.Tracer); a file that cannot be
// created is logged and that connection is not traced.
func qlogTracer(dir string, log *slog.Logger) func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace {
	return qlogdir.Tracer(dir, func(path string, err error) {
		log.Warn("qlog: cannot create trace file", "file", path, "err", err)
	})
}
