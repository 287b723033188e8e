package client

import (
	"fmt"
	"time"
)

// Status is where a Client stands.
type Status int

// Client statuses.
const (
	StatusConnected Status = iota
	StatusReconnecting
	StatusClosed
)

func (s Status) String() string {
	switch s {
	case StatusConnected:
		return "connected"
	case StatusReconnecting:
		return "reconnecting"
	case StatusClosed:
		return "closed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// EventType says what happened.
type EventType int

// Event types.
const (
	EventConnected      EventType = iota // the first connection is up
	EventDisconnected                    // the connection ended; Err says why
	EventReconnecting                    // attempt Attempt starts after Delay; Err says why the previous attempt failed
	EventReconnected                     // a new connection is up; Resumed says whether the session went on
	EventClosed                          // the client was closed; Err reports undelivered messages
	EventResumeFailed                    // the server would not resume the session; Err is a *ResumeFailedError
	EventMessageRefused                  // a new connection refused a buffered message; Err is a *RefusedError
)

func (t EventType) String() string {
	switch t {
	case EventConnected:
		return "connected"
	case EventDisconnected:
		return "disconnected"
	case EventReconnecting:
		return "reconnecting"
	case EventReconnected:
		return "reconnected"
	case EventClosed:
		return "closed"
	case EventMessageRefused:
		return "message refused"
	case EventResumeFailed:
		return "resume failed"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is a connection event delivered to Config.OnEvent.
type Event struct {
	Type     EventType
	Addr     string        // the server address concerned
	Attempt  int           // EventReconnecting: 0-based attempt number
	Delay    time.Duration // EventReconnecting: wait before the attempt
	Used0RTT bool          // EventConnected, EventReconnected: the connection resumed with 0-RTT
	// Resumed, on EventReconnected, reports that the connection resumed the
	// client's session: what the lost connection had not delivered, in
	// either direction, is sent again, and nothing is in doubt.
	Resumed bool
	Err     error // EventDisconnected: the cause; EventReconnecting: why the previous attempt failed (nil before the first); EventClosed: undelivered messages, if any; EventResumeFailed: a *ResumeFailedError; EventMessageRefused: a *RefusedError
}

// startEvents starts dispatch, when Config.OnEvent is set.
func (c *Client) startEvents() {
	if c.cfg.OnEvent == nil {
		return
	}
	c.events = make(chan Event, c.cfg.EventQueueSize+1)
	c.wg.Add(1)
	go c.dispatch()
}

// emit queues e for the dispatcher without ever blocking. It leaves the
// queue's last place free for EventClosed: an ordinary event that finds
// EventQueueSize events waiting is dropped and counted.
func (c *Client) emit(e Event) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if c.events == nil || c.evClosed {
		return
	}
	// Only dispatch takes from the queue, so it cannot fill up between the
	// check and the send.
	if len(c.events) >= cap(c.events)-1 {
		c.eventsDropped.Add(1)
		return
	}
	c.events <- e
}

// closeEvents queues last, in the place emit keeps for it, and ends the
// dispatcher once it has delivered what is queued.
func (c *Client) closeEvents(last Event) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if c.events != nil && !c.evClosed {
		c.evClosed = true
		c.events <- last
		close(c.events)
	}
}

// dispatch delivers events to OnEvent, one at a time, until the queue
// closes. It is started by Dial and stopped by closeEvents, in shutdown.
func (c *Client) dispatch() {
	defer c.wg.Done()
	for e := range c.events {
		c.cfg.OnEvent(e)
	}
}
