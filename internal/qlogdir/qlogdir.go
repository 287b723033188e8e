// Package qlogdir writes quic-go qlog traces, one file per connection, into
// a directory: quicsrv's and quiccli's -qlog.
package qlogdir

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/quic-go/quic-go"
	_ "github.com/quic-go/quic-go/qlog" // registers the QUIC event schema
	"github.com/quic-go/quic-go/qlogwriter"
)

// Tracer returns a quic-go connection tracer that writes one qlog file per
// connection into dir, named <odcid>_<server|client>.sqlog like the files
// of quic-go's qlog.DefaultConnectionTracer, which reads $QLOGDIR instead.
// A file that cannot be created is reported to failed, and that connection
// is not traced.
func Tracer(dir string, failed func(path string, err error)) func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace {
	return func(_ context.Context, isClient bool, odcid quic.ConnectionID) qlogwriter.Trace {
		role := "server"
		if isClient {
			role = "client"
		}
		path := filepath.Join(dir, fmt.Sprintf("%s_%s.sqlog", odcid, role))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			failed(path, err)
			return nil
		}
		seq := qlogwriter.NewConnectionFileSeq(&bufferedFile{Writer: bufio.NewWriter(f), f: f}, isClient, odcid)
		// Run ends when quic-go closes the trace, at the end of the connection.
		go seq.Run()
		return seq
	}
}

// bufferedFile flushes its buffer into the file when closed.
type bufferedFile struct {
	*bufio.Writer
	f *os.File
}

func (b *bufferedFile) Close() error {
	err := b.Flush()
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}
