package main

import (
	"crypto/tls"
	"fmt"
	"os"

	"github.com/quicmsg/quicmsg/internal/keylog"
	"github.com/quicmsg/quicmsg/internal/qlogdir"
	"github.com/quicmsg/quicmsg/transport"
)

// debugFlags are quiccli's -qlog and -keylog: traces and TLS secrets for
// looking at quiccli's connections in qvis or Wireshark.
type debugFlags struct {
	qlogDir string
	keyLog  string
	keyFile *os.File // opened by withKeyLog, closed by closeDebug
}

// withQlog sets tc's tracer when -qlog is given: one qlog file per
// connection in the directory.
func (g *globals) withQlog(tc transport.Config) transport.Config {
	if g.dbg.qlogDir != "" {
		tc.Tracer = qlogdir.Tracer(g.dbg.qlogDir, func(path string, err error) {
			fmt.Fprintf(g.stderr, "quiccli: -qlog: cannot create %s: %v\n", path, err)
		})
	}
	return tc
}

// withKeyLog makes conf write its TLS secrets to the -keylog file, with a
// warning: whoever reads the file can decrypt the connections.
func (g *globals) withKeyLog(conf *tls.Config) error {
	if g.dbg.keyLog == "" {
		return nil
	}
	if g.dbg.keyFile == nil {
		f, err := keylog.Open(g.dbg.keyLog)
		if err != nil {
			return explain(exitUsage, err, "-keylog: %v", err)
		}
		g.dbg.keyFile = f
		fmt.Fprintf(g.stderr, "quiccli: WARNING: -keylog writes the TLS secrets of this run to %s: anyone who can read it can decrypt the traffic\n", g.dbg.keyLog)
	}
	conf.KeyLogWriter = g.dbg.keyFile
	return nil
}

// closeDebug closes the -keylog file, once the command is done.
func (g *globals) closeDebug() {
	if g.dbg.keyFile != nil {
		_ = g.dbg.keyFile.Close()
	}
}
