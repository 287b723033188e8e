package cluster

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/quicmsg/quicmsg/transport"
)

// Limits that keep every message Forward sends within what a NATS server
// takes on its protocol line. A NATS server closes the connection of a
// client that sends a longer line ("-ERR Maximum Control Line Exceeded"),
// and nats.go then gives up on that connection for good: no input from a
// client may produce one.
const (
	// MaxControlLine is the longest NATS protocol line (HPUB, subject,
	// reply subject, sizes) that Forward sends; longer ones are refused
	// as DropInvalid. NATS servers must allow at least this much
	// (max_control_line, 4096 bytes by default).
	MaxControlLine = 1024
	// MaxRequestIDLen is the longest msg-id of a request that Forward
	// sends with a NATS reply subject (which carries it); a request with
	// a longer one is refused as DropInvalid.
	MaxRequestIDLen = 128
	// MaxNodeIDLen is the longest Config.NodeID.
	MaxNodeIDLen = 64
)

// controlLineOverhead is what an HPUB line holds besides the subject and
// the reply subject: "HPUB", three separators, two sizes of at most 20
// digits and CRLF.
const controlLineOverhead = len("HPUB") + 3 + 2*20 + 2

// checkRequest checks the reply-to and msg-id of a request that goes
// with a NATS reply subject: the reply-to must be a subject this node can
// publish the "no responders" reply to, and the msg-id at most
// MaxRequestIDLen bytes.
func checkRequest(m *transport.Message) error {
	if err := transport.ValidateSubject(m.ReplyTo()); err != nil {
		return fmt.Errorf("request's %s header: %w", transport.HeaderReplyTo, err)
	}
	if n := len(m.ID()); n > MaxRequestIDLen {
		return fmt.Errorf("request's %s header of %d bytes is longer than the limit of %d", transport.HeaderMsgID, n, MaxRequestIDLen)
	}
	return nil
}

// noRespSubject is the NATS reply subject of a request of this node: its
// last token holds the request's reply-to and msg-id (see noResponders).
func (b *Backplane) noRespSubject(replyTo, id string) string {
	return b.noRespPrefix() + base64.RawURLEncoding.EncodeToString([]byte(replyTo+"\x00"+id))
}

// checkControlLine checks that the protocol line of a message to subject
// with reply subject reply fits in MaxControlLine.
func checkControlLine(subject, reply string) error {
	if n := controlLineOverhead + len(subject) + len(reply); n > MaxControlLine {
		return fmt.Errorf("NATS protocol line of %d bytes (subject and reply subject) is longer than the limit of %d", n, MaxControlLine)
	}
	return nil
}

// checkCarried checks what NATS would not carry as it is: a subject with
// an empty token ("a..b", ".a", "a."), which quicmsg takes but for which
// NATS matches no subscription, and a header value that begins or ends
// with a space or a tab, which nats.go trims.
func checkCarried(m *transport.Message) error {
	s := m.Subject
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return errors.New("the subject has an empty token, for which NATS matches no subscription")
	}
	for _, f := range m.Header {
		if v := f.Value; v != "" && (isBlank(v[0]) || isBlank(v[len(v)-1])) {
			return fmt.Errorf("header %q: the value begins or ends with a space or a tab, which NATS headers do not keep", f.Key)
		}
	}
	return nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }
