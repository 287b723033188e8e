package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/quicmsg/quicmsg/internal/relay"
	"github.com/quicmsg/quicmsg/session"
)

// The status endpoints (/status, /status/sessions, /status/subscriptions)
// answer JSON, as nats-server's /varz, /connz and /subsz do. The lists are
// paginated with ?limit=N&offset=M, which bounds a response's size; the
// time of a request grows with the number of sessions or subscriptions,
// which it copies and sorts.
const (
	// defaultStatusLimit is the page size without ?limit.
	defaultStatusLimit = 100
	// maxStatusLimit is the largest ?limit taken.
	maxStatusLimit = 1000
	// maxChannelNames is how many channel names a session's entry lists;
	// its "channels" count is complete.
	maxChannelNames = 100
)

// statusPage serves the status endpoints of one server.
type statusPage struct {
	srv     *session.Server
	h       *hooks
	mode    string
	addr    string
	started time.Time
}

// register adds the status endpoints to mux.
func (p *statusPage) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /status", p.serveStatus)
	mux.HandleFunc("GET /status/sessions", p.serveSessions)
	mux.HandleFunc("GET /status/subscriptions", p.serveSubscriptions)
}

// serverStatus is /status's "server" object.
type serverStatus struct {
	Version       string    `json:"version"`
	Commit        string    `json:"commit"`
	GoVersion     string    `json:"go_version"`
	Mode          string    `json:"mode"`
	Listen        string    `json:"listen"`
	Start         time.Time `json:"start"`
	Now           time.Time `json:"now"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	MaxSessions   int       `json:"max_sessions"`
	NodeID        string    `json:"node_id,omitempty"` // with -cluster
}

// sessionTotals is /status's "sessions" object.
type sessionTotals struct {
	Active           int    `json:"active"`
	Detached         int    `json:"detached"`
	Accepted         uint64 `json:"accepted_total"`
	Refused          uint64 `json:"refused_total"`
	Resumed          uint64 `json:"resumed_total"`
	MessagesReceived uint64 `json:"messages_received_total"`
	MessagesHandled  uint64 `json:"messages_handled_total"`
	PendingBytes     int64  `json:"pending_bytes"`
}

// relayTotals is /status's "relay" object (relay mode).
type relayTotals struct {
	Subscribers   int    `json:"subscribers"`
	Subscriptions int    `json:"subscriptions"`
	Subjects      int    `json:"subjects"`
	Queued        int    `json:"queued"`
	Published     uint64 `json:"published_total"`
	Delivered     uint64 `json:"delivered_total"`
	Dropped       uint64 `json:"dropped_total"`
	Failed        uint64 `json:"failed_total"`
	SlowConsumer  string `json:"slow_consumer"`
}

// serverStatusReply is the body of /status.
type serverStatusReply struct {
	Server   serverStatus  `json:"server"`
	Sessions sessionTotals `json:"sessions"`
	Relay    *relayTotals  `json:"relay,omitempty"`
}

func (p *statusPage) serveStatus(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	st := p.srv.Stats()
	reply := serverStatusReply{
		Server: serverStatus{
			Version: version(), Commit: commitLabel(), GoVersion: runtime.Version(),
			Mode: p.mode, Listen: p.addr, Start: p.started.UTC(), Now: now.UTC(),
			UptimeSeconds: now.Sub(p.started).Seconds(), MaxSessions: p.srv.MaxSessions(),
		},
		Sessions: sessionTotals{
			Active: st.ActiveSessions, Detached: st.DetachedSessions,
			Accepted: st.SessionsAccepted, Refused: st.SessionsRefused, Resumed: st.SessionsResumed,
			MessagesReceived: st.MessagesReceived, MessagesHandled: st.MessagesHandled, PendingBytes: st.PendingBytes,
		},
	}
	if p.h.backplane != nil {
		reply.Server.NodeID = p.h.backplane.NodeID()
	}
	if p.h.relay != nil {
		rs := p.h.relay.Stats()
		reply.Relay = &relayTotals{
			Subscribers: rs.Subscribers, Subscriptions: rs.Subscriptions, Subjects: rs.Channels, Queued: rs.Queued,
			Published: rs.Published, Delivered: rs.Delivered, Dropped: rs.Dropped, Failed: rs.Failed,
			SlowConsumer: rs.Policy.String(),
		}
	}
	writeJSON(w, http.StatusOK, reply)
}

// sessionStatus is one session in /status/sessions.
type sessionStatus struct {
	ID              string    `json:"id"`
	Remote          string    `json:"remote,omitempty"` // "" while detached
	Detached        bool      `json:"detached"`
	Start           time.Time `json:"start"`
	DurationSeconds float64   `json:"duration_seconds"`
	Channels        int       `json:"channels"`
	ChannelNames    []string  `json:"channel_names"` // sorted; the first maxChannelNames
	MessagesIn      uint64    `json:"messages_in"`   // read from the client
	MessagesHandled uint64    `json:"messages_handled"`
	MessagesOut     uint64    `json:"messages_out"` // sent to the client on its current connection
	Pending         int       `json:"pending"`
	PendingBytes    int64     `json:"pending_bytes"`
	Backpressure    bool      `json:"backpressure"`
}

// page is a paginated list: Total items in all, Items from Offset.
type page[T any] struct {
	Total  int `json:"total"`
	Offset int `json:"offset"`
	Limit  int `json:"limit"`
	Items  []T `json:"items"`
}

func (p *statusPage) serveSessions(w http.ResponseWriter, r *http.Request) {
	limit, offset, err := pagination(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	all := p.srv.Sessions()
	slices.SortFunc(all, func(a, b *session.Session) int {
		return cmp.Or(a.Started().Compare(b.Started()), cmp.Compare(a.ID().String(), b.ID().String()))
	})
	now := time.Now()
	out := page[sessionStatus]{Total: len(all), Offset: offset, Limit: limit, Items: []sessionStatus{}}
	for _, s := range window(all, offset, limit) {
		out.Items = append(out.Items, describeSession(s, now))
	}
	writeJSON(w, http.StatusOK, out)
}

// describeSession returns s's entry in /status/sessions.
func describeSession(s *session.Session, now time.Time) sessionStatus {
	st := s.Stats()
	names := s.Channels()
	slices.Sort(names)
	ss := sessionStatus{
		ID: s.ID().String(), Start: s.Started().UTC(), DurationSeconds: now.Sub(s.Started()).Seconds(),
		Channels: len(names), ChannelNames: names[:min(len(names), maxChannelNames)],
		MessagesIn: st.MessagesReceived, MessagesHandled: st.MessagesHandled,
		Pending: st.Pending, PendingBytes: st.PendingBytes, Backpressure: s.BackpressureActive(),
	}
	if c := s.Conn(); c != nil {
		ss.Remote = c.RemoteAddr().String()
		ss.MessagesOut = c.Stats().MessagesSent
	} else {
		ss.Detached = true
	}
	return ss
}

// subscriptionsReply is the body of /status/subscriptions.
type subscriptionsReply struct {
	Mode          string                   `json:"mode"`
	Subscriptions page[subscriptionStatus] `json:"subscriptions"`
	Cluster       *clusterStatus           `json:"cluster,omitempty"` // with -cluster
}

// subscriptionStatus is one subject or pattern and group in
// /status/subscriptions.
type subscriptionStatus struct {
	Subject     string `json:"subject"`
	Group       string `json:"group,omitempty"`
	Subscribers int    `json:"subscribers"`
}

// clusterStatus is the node's interest in the cluster (-cluster).
type clusterStatus struct {
	NodeID    string           `json:"node_id"`
	Connected bool             `json:"connected"`
	Interest  []interestStatus `json:"interest"` // one entry per subject and group with local subscribers
}

// interestStatus is one subject or pattern and group the node asks the
// cluster for.
type interestStatus struct {
	Subject    string `json:"subject"`
	Group      string `json:"group,omitempty"`
	Subscribed bool   `json:"subscribed"` // its NATS subscription is in place
}

func (p *statusPage) serveSubscriptions(w http.ResponseWriter, r *http.Request) {
	limit, offset, err := pagination(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	reply := subscriptionsReply{Mode: p.mode, Subscriptions: page[subscriptionStatus]{Offset: offset, Limit: limit, Items: []subscriptionStatus{}}}
	var subs []relay.SubscriptionInfo
	if p.h.relay != nil {
		subs = p.h.relay.Subscriptions()
	}
	reply.Subscriptions.Total = len(subs)
	for _, si := range window(subs, offset, limit) {
		reply.Subscriptions.Items = append(reply.Subscriptions.Items, subscriptionStatus(si))
	}
	if bp := p.h.backplane; bp != nil {
		cs := &clusterStatus{NodeID: bp.NodeID(), Connected: bp.Connected(), Interest: []interestStatus{}}
		for _, in := range bp.Interests() {
			cs.Interest = append(cs.Interest, interestStatus(in))
		}
		reply.Cluster = cs
	}
	writeJSON(w, http.StatusOK, reply)
}

// pagination reads ?limit and ?offset: limit 1 to maxStatusLimit
// (default defaultStatusLimit), offset from 0.
func pagination(r *http.Request) (limit, offset int, err error) {
	limit, offset = defaultStatusLimit, 0
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		limit, err = strconv.Atoi(v)
		if err != nil || limit < 1 || limit > maxStatusLimit {
			return 0, 0, fmt.Errorf("limit %q: want an integer from 1 to %d", v, maxStatusLimit)
		}
	}
	if v := q.Get("offset"); v != "" {
		offset, err = strconv.Atoi(v)
		if err != nil || offset < 0 {
			return 0, 0, fmt.Errorf("offset %q: want an integer from 0", v)
		}
	}
	return limit, offset, nil
}

// window returns the items of s from offset, at most limit of them.
func window[T any](s []T, offset, limit int) []T {
	if offset >= len(s) {
		return nil
	}
	return s[offset:min(len(s), offset+limit)]
}

// writeJSON writes v as indented JSON with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
