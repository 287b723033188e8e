package metrics

import (
	"cmp"
	"github.com/prometheus/client_golang/prometheus"
	"runtime"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/session"
)

// collector reads the server's own counters at scrape time, each source
// once per scrape, so that related values come from one snapshot.
type collector struct{ m *Metrics }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

var (
	descBuildInfo = desc("build_info", "Always 1; the labels say which quicmsg version and commit run, built with which Go.", "version", "commit", "goversion")

	descSessionsActive   = desc("sessions_active", "Sessions currently held by the server.")
	descSessionsAccepted = desc("sessions_accepted_total", "Sessions started.")
	descSessionsRefused  = desc("sessions_refused_total", "Connections refused at the session limit or during shutdown.")
	descMessagesHandled  = desc("messages_handled_total", "Messages returned from the server's handler.")
	descBackpressure     = desc("backpressure_events_total", "Times a session reached its pending cap or byte budget and was asked to slow down.")
	descOverload         = desc("overload_disconnects_total", "Sessions disconnected under -overflow disconnect (code overloaded).")
	descPendingBytes     = desc("pending_bytes", "Payload bytes of messages received and not yet handled, over all sessions (bounded by the server's pending budget).")

	descDetached       = desc("sessions_detached", "Sessions whose connection was lost, waiting for their client to resume them.")
	descDetachedBytes  = desc("detached_bytes", "Payload bytes of unacknowledged messages the detached sessions hold for their clients.")
	descDetachedTotal  = desc("sessions_detached_total", "Times a session was detached after losing its connection.")
	descResumed        = desc("sessions_resumed_total", "Times a client resumed its session on a new connection.")
	descExpired        = desc("sessions_expired_total", "Detached sessions ended because their client did not resume them within -resume-window.")
	descEvicted        = desc("sessions_detached_evicted_total", "Detached sessions ended early to stay within -max-detached (or the detached bytes limit), oldest first.")
	descResumesRefused = desc("resumes_refused_total", "Resume attempts refused, by reason: expired (no such session), replayed (an older token), attached (the session has a live connection), claim (the client's resume state did not fit; the session ended).", "reason")

	descMessagesIn  = desc("messages_received_total", "Messages received from clients.")
	descMessagesOut = desc("messages_sent_total", "Messages accepted for sending to clients.")
	descBytesIn     = desc("received_bytes_total", "Payload bytes received from clients.")
	descBytesOut    = desc("sent_bytes_total", "Payload bytes accepted for sending to clients.")
	descRejected    = desc("channels_rejected_total", "Channels refused for a malformed header.")

	descChannelsOpen   = desc("channels_open", "Channels currently open, over all sessions.")
	descChannelsOpened = desc("channels_opened_total", "Channels opened by either side.")

	descHandshakeFailures = desc("listener_handshake_failures_total", "HELLO exchanges that failed (bad HELLO, wrong version, connection lost); failed QUIC handshakes are not counted.")
	descListenerRefused   = desc("listener_refused_total", "Connections refused because the accept queue was full.")
	descHelloTimeouts     = desc("listener_hello_timeouts_total", "Connections closed for sending no HELLO in time after the TLS handshake.")
	descHelloEvictions    = desc("listener_hello_evictions_total", "Connections waiting for HELLO closed to make room for newer ones.")
	descPendingHellos     = desc("listener_pending_hellos", "Connections that completed the TLS handshake and have not sent HELLO yet.")
	descHandshakesRefused = desc("listener_handshakes_refused_total", "New connections refused because their address had too many handshakes in progress.")
	descEarlyDataRefused  = desc("listener_early_data_refused_total", "Resumptions whose 0-RTT data the anti-replay check refused (ticket used before, too old or unknown).")

	descRelaySubscribers   = desc("relay_subscribers", "Sessions subscribed to at least one channel.")
	descRelaySubscriptions = desc("relay_subscriptions", "Subscriptions (session, channel).")
	descRelayChannels      = desc("relay_channels", "Channels with at least one subscriber.")
	descRelayQueued        = desc("relay_queued_messages", "Messages waiting in subscriber queues or being sent, and (-slow-consumer block) held by publishes waiting for room.")
	descRelayPublished     = desc("relay_published_total", "Messages published to the relay.")
	descRelayRouted        = desc("relay_routed_total", "Copies of messages addressed to subscribers.")
	descRelayDelivered     = desc("relay_delivered_total", "Copies handed to a subscriber's connection.")
	descRelayDropped       = desc("relay_dropped_total", "Copies dropped because a subscriber was too slow.")
	descRelayFailed        = desc("relay_failed_total", "Copies not delivered because sending failed or the subscriber left.")
	descSlowEvents         = desc("slow_consumer_events_total", "Times a subscriber's queue overflowed.")
	descSlowDisconnects    = desc("slow_consumer_disconnects_total", "Subscribers disconnected as slow consumers (code slow_consumer), under -slow-consumer disconnect or block.")
	descRelayPolicy        = desc("relay_slow_consumer_policy", "Always 1; the label says which -slow-consumer policy is in force.", "policy")
	descRelayGaps          = desc("relay_gaps_total", "Gap notices sent to subscribers, by reason: slow_consumer (drop policy), disconnect (before a slow consumer is closed).", "reason")
	descRelayGapMessages   = desc("relay_gap_messages_total", "Messages the gap notices reported missed, by reason.", "reason")
	descPublishTimeouts    = desc("relay_publish_timeouts_total", "Block policy: publishes that waited -publish-timeout for a full subscriber queue, which disconnected that subscriber.")
	descNoResponders       = desc("relay_no_responders_total", "Requests routed to no subscriber, answered with a no responders reply.")
	descPublishesRefused   = desc("relay_publishes_refused_total", "Messages refused for a wildcard or invalid subject: a client publish (its channel is reset with invalid_subject) or a no-responders reply to an invalid reply-to.")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descBuildInfo, descSessionsActive, descSessionsAccepted, descSessionsRefused,
		descMessagesHandled, descBackpressure, descOverload, descPendingBytes,
		descDetached, descDetachedBytes, descDetachedTotal, descResumed, descExpired, descEvicted, descResumesRefused,
		descMessagesIn, descMessagesOut, descBytesIn, descBytesOut, descRejected,
		descChannelsOpen, descChannelsOpened,
	} {
		ch <- d
	}
	if c.m.src.Listener != nil {
		ch <- descHandshakeFailures
		ch <- descListenerRefused
		ch <- descHelloTimeouts
		ch <- descHelloEvictions
		ch <- descPendingHellos
		ch <- descHandshakesRefused
		ch <- descEarlyDataRefused
	}
	if c.m.src.Relay != nil {
		for _, d := range []*prometheus.Desc{
			descRelaySubscribers, descRelaySubscriptions, descRelayChannels, descRelayQueued,
			descRelayPublished, descRelayRouted, descRelayDelivered, descRelayDropped, descRelayFailed,
			descSlowEvents, descSlowDisconnects, descRelayPolicy, descRelayGaps, descRelayGapMessages,
			descPublishTimeouts, descNoResponders, descPublishesRefused,
		} {
			ch <- d
		}
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	m := c.m
	gauge(descBuildInfo, 1, m.src.Version, cmp.Or(m.src.Commit, "unknown"), runtime.Version())

	st := m.src.Server()
	gauge(descSessionsActive, float64(st.ActiveSessions))
	counter(descSessionsAccepted, st.SessionsAccepted)
	counter(descSessionsRefused, st.SessionsRefused)
	counter(descMessagesHandled, st.MessagesHandled)
	counter(descBackpressure, st.BackpressureEvents)
	counter(descOverload, st.OverloadDisconnects)
	gauge(descPendingBytes, float64(st.PendingBytes))
	collectResume(ch, st)

	t := m.connTotals()
	counter(descMessagesIn, t.MessagesReceived)
	counter(descMessagesOut, t.MessagesSent)
	counter(descBytesIn, t.BytesReceived)
	counter(descBytesOut, t.BytesSent)
	counter(descRejected, t.RejectedChannels)

	gauge(descChannelsOpen, float64(m.channelsOpen.Load()))
	counter(descChannelsOpened, m.channelsOpened.Load())

	if m.src.Listener != nil {
		ls := m.src.Listener()
		counter(descHandshakeFailures, ls.HandshakeFailures)
		counter(descListenerRefused, ls.Refused)
		counter(descHelloTimeouts, ls.HelloTimeouts)
		counter(descHelloEvictions, ls.EvictedHellos)
		gauge(descPendingHellos, float64(ls.PendingHellos))
		counter(descHandshakesRefused, ls.RefusedHandshakes)
		counter(descEarlyDataRefused, ls.EarlyDataRefused)
	}
	if m.src.Relay != nil {
		rs := m.src.Relay()
		gauge(descRelaySubscribers, float64(rs.Subscribers))
		gauge(descRelaySubscriptions, float64(rs.Subscriptions))
		gauge(descRelayChannels, float64(rs.Channels))
		gauge(descRelayQueued, float64(rs.Queued))
		counter(descRelayPublished, rs.Published)
		counter(descRelayRouted, rs.Routed)
		counter(descRelayDelivered, rs.Delivered)
		counter(descRelayDropped, rs.Dropped)
		counter(descRelayFailed, rs.Failed)
		counter(descSlowEvents, rs.SlowConsumerEvents)
		counter(descSlowDisconnects, rs.SlowConsumerDisconnects)
		collectRelay(ch, rs)
	}
}

// collectRelay reports the relay's gap notices, publish timeouts and
// refusals.
func collectRelay(ch chan<- prometheus.Metric, rs relay.Stats) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(descRelayPolicy, prometheus.GaugeValue, 1, rs.Policy.String())
	// The reasons' names are those of transport.GapReason.String.
	for reason, g := range map[string]relay.GapStats{"slow_consumer": rs.SlowConsumerGaps, "disconnect": rs.DisconnectGaps, "refused": rs.RefusedGaps} {
		counter(descRelayGaps, g.Notices, reason)
		counter(descRelayGapMessages, g.Messages, reason)
	}
	counter(descPublishTimeouts, rs.PublishTimeouts)
	counter(descNoResponders, rs.NoResponders)
	counter(descPublishesRefused, rs.Refused)
}

// collectResume reports the server's detached sessions and resumes.
func collectResume(ch chan<- prometheus.Metric, st session.Stats) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(descDetached, prometheus.GaugeValue, float64(st.DetachedSessions))
	ch <- prometheus.MustNewConstMetric(descDetachedBytes, prometheus.GaugeValue, float64(st.DetachedBytes))
	counter(descDetachedTotal, st.SessionsDetached)
	counter(descResumed, st.SessionsResumed)
	counter(descExpired, st.SessionsExpired)
	counter(descEvicted, st.DetachedEvicted)
	r := st.ResumesRefused
	counter(descResumesRefused, r.Expired, "expired")
	counter(descResumesRefused, r.Replayed, "replayed")
	counter(descResumesRefused, r.Attached, "attached")
	counter(descResumesRefused, r.Claim, "claim")
}
