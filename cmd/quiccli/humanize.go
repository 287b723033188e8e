package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Library errors name Go fields (Config.MaxMessageSize); a shell user knows
// flags. fieldFlags maps each field a quiccli user can run into to the flag
// that sets it: quiccli's own, or quicsrv's for the server's limits.
var fieldFlags = map[string]string{
	"HandshakeTimeout":     "quiccli -timeout",
	"CloseTimeout":         "quiccli -timeout",
	"MaxAttempts":          "quiccli -retries",
	"MaxMessageSize":       "quicsrv -max-message-size",
	"ResumeWindow":         "quicsrv -resume-window",
	"MaxDetachedSendBytes": "quicsrv -max-detached",
	"MaxSessions":          "quicsrv -max-sessions",
	"IdleTimeout":          "quicsrv -idle-timeout",
	"KeepAlivePeriod":      "quicsrv -keep-alive",
	"QueueSize":            "quicsrv -subscriber-queue",
	"QueueBytes":           "quicsrv -subscriber-queue-bytes",
	"PublishTimeout":       "quicsrv -publish-timeout",
	"SlowConsumer":         "quicsrv -slow-consumer",
	"Overflow":             "quicsrv -overflow",
}

var (
	goFieldRE = regexp.MustCompile(`\b(?:(?:transport|session|client|relay)\.)?(?:Pool)?Config\.(?:Backoff\.)?([A-Z][A-Za-z0-9]*)`)
	quotedRE  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	wordRE    = regexp.MustCompile(`[A-Z][a-z0-9]*`)
)

// maxQuoted is the longest quoted name (channel, subject, group) a message
// shows whole; longer ones are cut and their length stated.
const maxQuoted = 40

// humanize rewrites a message for a shell user: Go field names become the
// flags that set them, and long quoted names are shortened.
func humanize(msg string) string {
	msg = goFieldRE.ReplaceAllStringFunc(msg, func(m string) string {
		field := goFieldRE.FindStringSubmatch(m)[1]
		if f, ok := fieldFlags[field]; ok {
			return f
		}
		// A limit no flag sets: name it in words.
		return "the " + strings.ToLower(strings.Join(wordRE.FindAllString(field, -1), " ")) + " setting"
	})
	return quotedRE.ReplaceAllStringFunc(msg, func(q string) string {
		s, err := strconv.Unquote(q)
		if err != nil {
			return q
		}
		return shortName(s)
	})
}

// shortName quotes name, cut to maxQuoted bytes (on a character boundary)
// with its length stated when it is longer.
func shortName(name string) string {
	if len(name) <= maxQuoted {
		return strconv.Quote(name)
	}
	cut := maxQuoted - 8
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return fmt.Sprintf("%s (%d bytes)", strconv.Quote(name[:cut]+"…"), len(name))
}
