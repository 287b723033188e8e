package main

import (
	"errors"
	"flag"
	"io"
	"log"
	"log/slog"
	"slices"
	"strings"
)

// Log formats (-log-format).
const (
	logText = "text"
	logJSON = "json"
)

// newLogger returns quicsrv's logger on w in the format o asks for, at the
// level of level, which a reload may change while it runs. Durations are
// written as seconds (a float), in both formats, so that a log reader
// needs no unit parsing: "duration":1.503, not 1503000000 nor "1.503s".
func newLogger(format string, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationSeconds}
	if format == logJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// durationSeconds is the loggers' ReplaceAttr: a time.Duration becomes its
// seconds.
func durationSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.Float64Value(a.Value.Duration().Seconds())
	}
	return a
}

// captureStdLog sends what other packages write with the standard log
// package (quic-go's warning about UDP buffer sizes, net/http's server
// errors) through logger, so that a JSON log has no plain-text lines in
// it. The function it returns restores the log package's output.
func captureStdLog(logger *slog.Logger) (restore func()) {
	w, flags, prev := log.Writer(), log.Flags(), slog.Default()
	slog.SetDefault(logger)
	return func() {
		slog.SetDefault(prev)
		log.SetOutput(w)
		log.SetFlags(flags)
	}
}

// reportedError is an error that run has already written to the log, so
// that main does not print it again as plain text.
type reportedError struct{ err error }

func (e reportedError) Error() string { return e.err.Error() }
func (e reportedError) Unwrap() error { return e.err }

// jsonRequested tells whether args ask for JSON logs, for the errors met
// before the flags are parsed (a bad flag): they are written as JSON too.
// A -log-format in the config file counts only once the file is read.
func jsonRequested(args []string) bool {
	json := false
	for i, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "log-format" {
			continue
		}
		if !hasValue && i+1 < len(args) {
			value = args[i+1]
		}
		json = value == logJSON
	}
	return json
}

// reportJSON writes err as one JSON log line when JSON logs are asked for,
// and returns it marked as reported; otherwise it returns err unchanged
// for main to print. -h's usage (flag.ErrHelp) is printed as text: it was
// asked for.
func reportJSON(err error, json bool, stderr io.Writer) error {
	if err == nil || !json || errors.Is(err, flag.ErrHelp) {
		return err
	}
	newLogger(logJSON, new(slog.LevelVar), stderr).Error("quicsrv cannot start", "err", err.Error())
	return reportedError{err}
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
