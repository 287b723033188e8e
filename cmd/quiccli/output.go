package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/quicmsg/quicmsg/transport"
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

// isTerminal reports whether v, an input or output, is a terminal. It asks
// the terminal driver (term.IsTerminal), so /dev/null and other character
// devices that are not terminals do not count.
func isTerminal(v any) bool {
	if s, ok := v.(*syncWriter); ok {
		v = s.w
	}
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// jsonMessage is a received message in -json output.
type jsonMessage struct {
	Channel  string `json:"channel"`
	Subject  string `json:"subject,omitempty"` // the concrete subject, when it differs from the channel's name
	Size     int    `json:"size"`
	Encoding string `json:"encoding"` // "utf-8": Payload is the text; "base64": standard base64 of the bytes
	Payload  string `json:"payload"`
	// Headers are the message's headers, in order, with -headers.
	Headers []jsonHeader `json:"headers,omitempty"`
}

// jsonHeader is one header field in -json output.
type jsonHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
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
// limit messages, received or missed, when limit is positive. It is safe for
// concurrent use.
type printer struct {
	mu       sync.Mutex
	w        io.Writer
	json     bool
	prefix   bool // print the subject before the payload
	headers  bool // print the headers before the payload
	limit    int
	printed  int
	missed   uint64 // messages gap notices reported missed
	writeErr error
}

// printMsg writes m, received on channel, with its subject and, with
// p.headers, its headers. It returns false once limit messages have been
// printed or missed, or writing failed.
func (p *printer) printMsg(channel string, m *transport.Message) bool {
	line := p.format(channel, m)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.writeErr != nil || p.reachedLocked() {
		return false
	}
	if _, err := p.w.Write(line); err != nil {
		p.writeErr = err
		return false
	}
	p.printed++
	return !p.reachedLocked()
}

// format returns the line printMsg writes for m.
func (p *printer) format(channel string, m *transport.Message) []byte {
	var line []byte
	if p.json {
		j := jsonMessage{Channel: channel, Size: len(m.Data), Encoding: "utf-8", Payload: string(m.Data)}
		if m.Subject != channel {
			j.Subject = m.Subject
		}
		if !utf8.Valid(m.Data) {
			j.Encoding, j.Payload = "base64", base64.StdEncoding.EncodeToString(m.Data)
		}
		if p.headers {
			for _, f := range m.Header {
				j.Headers = append(j.Headers, jsonHeader{Key: f.Key, Value: f.Value})
			}
		}
		line, _ = json.Marshal(j)
		return append(line, '\n')
	}
	if p.prefix || m.Subject != channel {
		line = append(line, m.Subject+": "...)
	}
	if p.headers && len(m.Header) > 0 {
		line = appendHeaders(line, m.Header)
	}
	return append(appendPayload(line, m.Data), '\n')
}

// appendHeaders appends the headers as "[key=value ...] ", each value as it
// is when it is printable text without spaces, else Go-quoted.
func appendHeaders(line []byte, h transport.Header) []byte {
	line = append(line, '[')
	for i, f := range h {
		if i > 0 {
			line = append(line, ' ')
		}
		line = append(line, f.Key...)
		line = append(line, '=')
		v := []byte(f.Value)
		if len(v) == 0 || !printable(v) || strings.ContainsAny(f.Value, " \t]\"") {
			line = strconv.AppendQuote(line, f.Value)
		} else {
			line = append(line, v...)
		}
	}
	return append(line, "] "...)
}

// appendPayload appends data as it is when it is printable single-line
// text, else Go-quoted.
func appendPayload(line, data []byte) []byte {
	if printable(data) {
		return append(line, data...)
	}
	return strconv.AppendQuote(line, string(data))
}

// gap counts n messages a gap notice reported missed. It returns false
// once limit messages have been printed or missed.
func (p *printer) gap(n uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.missed += n
	return !p.reachedLocked()
}

func (p *printer) reachedLocked() bool {
	return p.limit > 0 && uint64(p.printed)+p.missed >= uint64(p.limit)
}

// writeFailed returns the error that stopped printing, if any.
func (p *printer) writeFailed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writeErr
}

// done reports whether limit messages have been printed or missed.
func (p *printer) done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reachedLocked()
}

// counts returns how many messages were printed and how many missed.
func (p *printer) counts() (printed int, missed uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.printed, p.missed
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
