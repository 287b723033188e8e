package main

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/quicmsg/quicmsg/internal/cluster"
	"github.com/quicmsg/quicmsg/internal/metrics"
	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/session"
	"github.com/quicmsg/quicmsg/transport"
)

// Sessions are the relay's peers.
var _ relay.Peer = (*session.Session)(nil)

// hooks connects the session server to the relay and the metrics: its
// methods are the handler and the session hooks. relay is nil in echo
// mode, metrics without -metrics.
type hooks struct {
	log       *slog.Logger
	relay     *relay.Relay
	metrics   *metrics.Metrics
	backplane *cluster.Backplane // with -cluster
}

// publish is the relay mode handler. Under -slow-consumer block it waits
// while a subscriber's queue is full (up to -publish-timeout), which holds
// back the publishing session's messages. A message to a wildcard subject
// is refused: the client should have refused it (transport.ErrWildcardSubject),
// so its channel is stopped with invalid_subject; the session carries on.
func (h *hooks) publish(ctx context.Context, s *session.Session, m session.Message) {
	// The relay copies msg into its queues: it stays on the stack.
	msg := transport.Message{Subject: cmp.Or(m.Subject, m.Channel), Header: m.Header, Data: m.Data}
	if _, err := h.relay.Publish(ctx, s, &msg); err != nil {
		h.log.Warn("publish refused: channel stopped", "session", s.ID().String(), "channel", m.Channel,
			"subject", msg.Subject, "code", transport.CodeInvalidSubject, "err", err)
		if ch, ok := s.Channel(m.Channel); ok {
			ch.Reset(transport.CodeInvalidSubject)
		}
	}
}

// echo is the echo mode handler. It waits while the client cannot take the
// message, which holds back only that client's own messages. A request (a
// message with a reply-to) is answered with its own data instead of being
// echoed, so that requests to an echo server get a reply.
func (h *hooks) echo(ctx context.Context, s *session.Session, m session.Message) {
	var err error
	if m.Header.Get(transport.HeaderReplyTo) != "" {
		err = s.Reply(ctx, m, &transport.Message{Data: m.Data})
	} else {
		err = s.Send(ctx, m.Channel, m.Data)
	}
	if err != nil {
		h.log.Debug("echo failed", "session", s.ID().String(), "channel", m.Channel, "err", err)
	}
}

func (h *hooks) sessionStart(s *session.Session) {
	if h.metrics != nil {
		h.metrics.SessionStarted(s.Conn())
		h.observeHandshake(s.Conn())
	}
}

// observeHandshake records how long c's handshake took: from its first
// packet to now, when its session starts or resumes. h.metrics is set.
func (h *hooks) observeHandshake(c *transport.Conn) {
	if start := c.HandshakeStarted(); !start.IsZero() {
		h.metrics.ObserveHandshake(time.Since(start))
	}
}

// observeQueueDelay is relay.Config.OnQueueDelay with -metrics. Sessions,
// and so subscribers, exist only once h.metrics is set.
func (h *hooks) observeQueueDelay(d time.Duration) { h.metrics.ObserveQueueDelay(d) }

// sessionDetached moves the lost connection's counters into the totals:
// the session's next connection is counted from its resume.
func (h *hooks) sessionDetached(s *session.Session, _ error) {
	if h.metrics != nil {
		h.metrics.ConnEnded(s.Conn())
	}
}

func (h *hooks) sessionResumed(s *session.Session) {
	if h.metrics != nil {
		h.metrics.SessionStarted(s.Conn())
		h.observeHandshake(s.Conn())
	}
}

// sessionEnd runs after the session server logged "session ended"; it adds
// what only quicsrv knows, at debug level unless the relay dropped messages
// for the session.
func (h *hooks) sessionEnd(s *session.Session, cause error) {
	if cause == nil {
		// The session can end a moment before its connection's context
		// records why; the connection has ended, so this wait is short.
		<-s.Context().Done()
		cause = context.Cause(s.Context())
	}
	var rs relay.SubscriberStats
	if h.relay != nil {
		rs = h.relay.Remove(s)
	}
	// A session that ended detached has let its connection go; its
	// counters went into the totals when it was detached.
	var c metrics.Conn
	conn := s.Conn()
	if conn != nil {
		c = conn
	}
	if h.metrics != nil {
		h.metrics.SessionEnded(c, s.Used0RTT(), cause)
		h.metrics.ObserveSession(time.Since(s.Started()))
	}
	level := slog.LevelDebug
	if rs.Dropped > 0 {
		level = slog.LevelWarn
	}
	if !h.log.Enabled(context.Background(), level) {
		return // the summary's fields would cost every session's end
	}
	var cs transport.ConnStats
	if conn != nil {
		cs = conn.Stats()
	}
	code, by := metrics.DisconnectLabels(c, cause)
	h.log.Log(context.Background(), level, "session summary",
		"session", s.ID().String(),
		"code", code, "closed_by", by,
		"zero_rtt", s.Used0RTT(),
		"messages_in", cs.MessagesReceived, "bytes_in", cs.BytesReceived,
		"messages_out", cs.MessagesSent, "bytes_out", cs.BytesSent,
		"relay_delivered", rs.Delivered, "relay_dropped", rs.Dropped, "relay_failed", rs.Failed)
}

func (h *hooks) channelOpen(s *session.Session, channel string) {
	if h.relay != nil {
		h.subscribe(s, channel)
	}
	if h.metrics != nil {
		h.metrics.ChannelOpened()
	}
	h.log.Debug("channel opened", "session", s.ID().String(), "channel", channel)
}

// subscribe subscribes the session's channel, in the queue group of its
// options. A channel whose name is an invalid pattern is reset with
// invalid_subject; the session carries on.
func (h *hooks) subscribe(s *session.Session, channel string) {
	ch, ok := s.Channel(channel)
	var group string
	if ok {
		group = ch.Options().Group
	}
	err := h.relay.Subscribe(s, channel, group)
	switch {
	case err == nil:
		h.awaitNATS(s, channel)
	case errors.Is(err, transport.ErrInvalidSubject) && ok:
		h.log.Info("channel refused: invalid subscription pattern", "session", s.ID().String(), "channel", channel, "err", err)
		ch.Reset(transport.CodeInvalidSubject)
	default:
		h.log.Debug("not subscribed", "session", s.ID().String(), "channel", channel, "err", err)
	}
}

// natsSyncTimeout bounds how long a channel's first message waits for the
// channel's NATS subscription in cluster mode (awaitNATS).
const natsSyncTimeout = time.Second

// awaitNATS waits, in cluster mode, until the NATS server has this node's
// subscriptions for the channel that just opened, so that whatever the
// session publishes on it next reaches NATS after them, as a NATS client's
// own SUB and PUB would: a reply from another node to a request sent on
// its reply-to channel (client.Request sends on the inbox it just opened)
// cannot outrun the inbox's subscription. It runs before the channel's
// first message is handled (session.Config.OnChannelOpen), on that
// channel's goroutine, and costs one round trip to NATS; while NATS is
// unreachable it does not wait, and it gives up after natsSyncTimeout.
func (h *hooks) awaitNATS(s *session.Session, channel string) {
	if h.backplane == nil || !h.backplane.Connected() {
		return
	}
	ctx, cancel := context.WithTimeout(s.Context(), natsSyncTimeout)
	defer cancel()
	if err := h.backplane.Sync(ctx); err != nil {
		h.log.Debug("channel open: NATS subscription not confirmed", "session", s.ID().String(), "channel", channel, "err", err)
	}
}

func (h *hooks) channelClose(s *session.Session, channel string) {
	if h.relay != nil {
		h.relay.Unsubscribe(s, channel)
	}
	if h.metrics != nil {
		h.metrics.ChannelClosed()
	}
	h.log.Debug("channel closed", "session", s.ID().String(), "channel", channel)
}

// handler returns the handler of the mode o selects. In relay mode it
// creates h.relay and, with -cluster, h.backplane, which the caller closes
// (close).
func (h *hooks) handler(o *options) (session.Handler, error) {
	if o.mode != modeRelay {
		return session.HandlerFunc(h.echo), nil
	}
	if err := h.startCluster(&o.cluster); err != nil {
		return nil, err
	}
	cfg := &relay.Config{
		QueueSize:      o.subscriberQueue,
		QueueBytes:     o.subscriberBytes,
		SlowConsumer:   o.slowConsumer,
		PublishTimeout: o.publishTimeout,
		Logger:         h.log,
	}
	if o.metricsAddr != "" {
		cfg.OnQueueDelay = h.observeQueueDelay
	}
	if h.backplane != nil {
		cfg.Backplane = h.backplane
	}
	r, err := relay.New(cfg)
	if err != nil {
		return nil, err
	}
	h.relay = r
	if h.backplane != nil {
		if err := h.backplane.Attach(r); err != nil {
			return nil, err
		}
	}
	return session.HandlerFunc(h.publish), nil
}

// close closes the relay, then the backplane it forwards to.
func (h *hooks) close() {
	if h.relay != nil {
		_ = h.relay.Close()
	}
	if h.backplane != nil {
		_ = h.backplane.Close()
	}
}
