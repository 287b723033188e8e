package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// syncWriter serializes writes, so that lines written by different
// goroutines (message printers, connection events, the progress bar) never
// interleave.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func newSyncWriter(w io.Writer) *syncWriter { return &syncWriter{w: w} }

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// isTerminal reports whether v, an input or output, is a terminal (a
// character device). This needs no dependency; /dev/null also passes, which
// is harmless for a progress display or a hint.
func isTerminal(v any) bool {
	if s, ok := v.(*syncWriter); ok {
		v = s.w
	}
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// jsonMessage is a received message in -json output.
type jsonMessage struct {
	Channel  string `json:"channel"`
	Size     int    `json:"size"`
	Encoding string `json:"encoding"` // "utf-8": Payload is the text; "base64": standard base64 of the bytes
	Payload  string `json:"payload"`
}

// printable reports whether msg can be printed as it is on one line.
func printable(msg []byte) bool {
	if !utf8.Valid(msg) {
		return false
	}
	for _, r := range string(msg) {
		if r != '\t' && !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// printer writes received messages to stdout, one per line, and stops after
// limit messages when limit is positive. It is safe for concurrent use.
type printer struct {
	mu       sync.Mutex
	w        io.Writer
	json     bool
	prefix   bool // print the channel name before the payload
	limit    int
	printed  int
	writeErr error
}

// print writes msg, received on channel. It returns false once limit
// messages have been printed, or writing failed.
func (p *printer) print(channel string, msg []byte) bool {
	var line []byte
	if p.json {
		m := jsonMessage{Channel: channel, Size: len(msg), Encoding: "utf-8", Payload: string(msg)}
		if !utf8.Valid(msg) {
			m.Encoding, m.Payload = "base64", base64.StdEncoding.EncodeToString(msg)
		}
		line, _ = json.Marshal(m)
	} else {
		if p.prefix {
			line = append(line, channel+": "...)
		}
		if printable(msg) {
			line = append(line, msg...)
		} else {
			line = strconv.AppendQuote(line, string(msg))
		}
	}
	line = append(line, '\n')
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.writeErr != nil || (p.limit > 0 && p.printed >= p.limit) {
		return false
	}
	if _, err := p.w.Write(line); err != nil {
		p.writeErr = err
		return false
	}
	p.printed++
	return p.limit <= 0 || p.printed < p.limit
}

// writeFailed returns the error that stopped printing, if any.
func (p *printer) writeFailed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writeErr
}

// done reports whether limit messages have been printed.
func (p *printer) done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit > 0 && p.printed >= p.limit
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// micros converts nanoseconds to microseconds for JSON output.
func micros(ns int64) float64 { return float64(ns) / 1e3 }

// millis formats nanoseconds as milliseconds with three decimals, as ping(8).
func millis(ns int64) string { return strconv.FormatFloat(float64(ns)/1e6, 'f', 3, 64) }

// shortDuration formats a latency with three significant digits.
func shortDuration(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", ns)
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(ns)/1e3, 'f', decimals(float64(ns)/1e3), 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(ns)/1e6, 'f', decimals(float64(ns)/1e6), 64) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', decimals(d.Seconds()), 64) + "s"
}

func decimals(v float64) int {
	switch {
	case v >= 100:
		return 0
	case v >= 10:
		return 1
	}
	return 2
}

// thousands formats n with thousands separators: 1234567 is "1,234,567".
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
