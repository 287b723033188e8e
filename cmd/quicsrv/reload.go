package main

import (
	"io"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/session"
)

// liveSettings are the config file's keys that a reload applies to the
// running server; a change of any other key needs a restart. Certificates
// are not among them: every SIGHUP reloads the -cert and -key files.
var liveSettings = map[string]func(l *liveConfig, n *options) error{
	"log-level": func(l *liveConfig, n *options) error {
		l.level.Set(n.logLevel)
		return nil
	},
	"max-sessions": func(l *liveConfig, n *options) error {
		return l.srv.SetMaxSessions(n.maxSessions)
	},
	"subscriber-queue":       setRelayLimits,
	"subscriber-queue-bytes": setRelayLimits,
	"publish-timeout":        setRelayLimits,
	"shutdown-timeout": func(l *liveConfig, n *options) error {
		l.shutdownTimeout.Store(int64(n.shutdownTimeout))
		return nil
	},
}

// setRelayLimits applies the relay's limits; in echo mode, which has no
// relay, they have no effect.
func setRelayLimits(l *liveConfig, n *options) error {
	if l.relay == nil {
		return nil
	}
	return l.relay.SetLimits(relay.Limits{QueueSize: n.subscriberQueue, QueueBytes: n.subscriberBytes, PublishTimeout: n.publishTimeout})
}

// liveConfig is the running server's configuration as far as a reload of
// the config file can change it.
type liveConfig struct {
	// Immutable.
	level           *slog.LevelVar
	srv             *session.Server
	relay           *relay.Relay  // nil in echo mode
	shutdownTimeout *atomic.Int64 // read by shutdown
	log             *slog.Logger

	// o is owned by the goroutine that calls reload (the certificate
	// watcher's). Its file is what the server runs with: a change that
	// needs a restart is not recorded there, so that each reload reports
	// it again.
	o *options
}

func newLiveConfig(o *options, level *slog.LevelVar, srv *session.Server, r *relay.Relay, log *slog.Logger) *liveConfig {
	l := &liveConfig{level: level, srv: srv, relay: r, shutdownTimeout: new(atomic.Int64), log: log, o: o}
	l.shutdownTimeout.Store(int64(o.shutdownTimeout))
	return l
}

// shutdownTimeoutNow is -shutdown-timeout as last reloaded.
func (l *liveConfig) shutdownTimeoutNow() time.Duration {
	return time.Duration(l.shutdownTimeout.Load())
}

// reload reads the config file again. An invalid file is refused as a
// whole and the running configuration kept. Of a valid one, it applies
// the changed live settings and logs each (key, old, new); it logs the
// other changes as needing a restart and leaves them unapplied, and those
// that the command line overrides as ignored.
func (l *liveConfig) reload() {
	if l.o.configFile == "" {
		return
	}
	n, err := parseFlags(l.o.args, io.Discard)
	if err != nil {
		l.log.Error("config file refused; the running configuration is kept", "file", l.o.configFile, "err", err.Error())
		return
	}
	union := make(configFile)
	maps.Copy(union, l.o.file)
	maps.Copy(union, n.file)
	keys := sortedKeys(union)
	var applied, restart int
	for _, key := range keys {
		old, now := l.o.file.valueText(key), n.file.valueText(key)
		if old == now {
			continue
		}
		switch apply := liveSettings[key]; {
		case l.o.cmdline[key]:
			l.log.Info("config file setting ignored: the command line sets it", "key", key, "file_value", now)
		case apply == nil:
			restart++
			l.log.Warn("config file setting needs a restart; not applied", "key", key, "old", old, "new", now)
			continue
		default:
			if err := apply(l, n); err != nil {
				l.log.Error("config file setting not applied", "key", key, "old", old, "new", now, "err", err.Error())
				continue
			}
			applied++
			l.log.Info("setting changed", "key", key, "old", old, "new", now)
		}
		l.record(key, n.file)
	}
	l.log.Info("config file reloaded", "file", l.o.configFile, "changed", applied, "needs_restart", restart)
}

// record makes key's value in file the running one.
func (l *liveConfig) record(key string, file configFile) {
	if l.o.file == nil {
		l.o.file = make(configFile)
	}
	if v, ok := file[key]; ok {
		l.o.file[key] = v
	} else {
		delete(l.o.file, key)
	}
}
