package reqrep

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var errNoResponders = errors.New("no responders")

// msg is a reply as the tests make them.
type msg struct{ inReplyTo, status, body string }

func newRequester() (*Requester[msg], *atomic.Uint64) {
	var unmatched atomic.Uint64
	return New(Config[msg]{
		NoResponders: errNoResponders,
		Fields:       func(m msg) (string, string) { return m.inReplyTo, m.status },
		Unmatched:    &unmatched,
	}), &unmatched
}

func TestInboxIsPrefixAnd22Base62Characters(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		in := NewInbox()
		require.True(t, strings.HasPrefix(in, InboxPrefix), in)
		tok := strings.TrimPrefix(in, InboxPrefix)
		require.Len(t, tok, inboxTokenLen)
		for _, c := range tok {
			require.Contains(t, base62, string(c))
		}
		require.False(t, seen[in], "inbox %s given out twice", in)
		seen[in] = true
	}
}

func TestReplyGoesToTheRequestItAnswers(t *testing.T) {
	r, _ := newRequester()
	a, err := r.Begin()
	require.NoError(t, err)
	b, err := r.Begin()
	require.NoError(t, err)
	require.Equal(t, "1", a.ID())
	require.Equal(t, "2", b.ID())
	defer a.Done()
	defer b.Done()

	require.True(t, r.Dispatch(msg{b.ID(), "", "for b"}))
	require.True(t, r.Dispatch(msg{a.ID(), "", "for a"}))
	got, err := b.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, "for b", got.body)
	got, err = a.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, "for a", got.body)
	require.Zero(t, r.InFlight())
	require.Zero(t, r.Unmatched())
}

func TestStatus503IsNoResponders(t *testing.T) {
	r, _ := newRequester()
	c, err := r.Begin()
	require.NoError(t, err)
	defer c.Done()
	require.True(t, r.Dispatch(msg{c.ID(), StatusNoResponders, "ignored"}))
	got, err := c.Wait(context.Background())
	require.ErrorIs(t, err, errNoResponders)
	require.Zero(t, got)
}

func TestLateReplyIsCountedAndDiscarded(t *testing.T) {
	r, unmatched := newRequester()
	c, err := r.Begin()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Wait(ctx)
	require.ErrorIs(t, err, context.Canceled)
	c.Done()
	c.Done() // idempotent

	require.False(t, r.Dispatch(msg{c.ID(), "", "late"}))
	require.False(t, r.Dispatch(msg{"no such id", "", "stray"}))
	require.False(t, r.Dispatch(msg{"", "", "no in-reply-to"}))
	require.Equal(t, uint64(3), r.Unmatched())
	require.Equal(t, uint64(3), unmatched.Load(), "the caller's counter too")
	require.Zero(t, r.InFlight())
}

func TestDuplicateReplyIsUnmatched(t *testing.T) {
	r, _ := newRequester()
	c, err := r.Begin()
	require.NoError(t, err)
	defer c.Done()
	require.True(t, r.Dispatch(msg{c.ID(), "", "first"}))
	require.False(t, r.Dispatch(msg{c.ID(), "", "second"}))
	got, err := c.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, "first", got.body)
	require.Equal(t, uint64(1), r.Unmatched())
}

func TestFailEndsRequestsInFlightAndLater(t *testing.T) {
	r, _ := newRequester()
	c, err := r.Begin()
	require.NoError(t, err)
	defer c.Done()
	closed := errors.New("closed")
	r.Fail(closed)
	r.Fail(errors.New("second")) // the first error stays
	_, err = c.Wait(context.Background())
	require.ErrorIs(t, err, closed)
	_, err = r.Begin()
	require.ErrorIs(t, err, closed)
	require.Zero(t, r.InFlight())
}

func TestManyRequestsInFlightConcurrently(t *testing.T) {
	r, _ := newRequester()
	const n = 64
	calls := make(chan *Call[msg], n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			c, err := r.Begin()
			if err != nil {
				errs <- err
				return
			}
			defer c.Done()
			calls <- c
			got, err := c.Wait(context.Background())
			if err == nil && got.body != "re:"+c.ID() {
				err = errors.New("reply " + got.body + " to request " + c.ID())
			}
			errs <- err
		})
	}
	// Answer in reverse order of arrival.
	var all []*Call[msg]
	for range n {
		all = append(all, <-calls)
	}
	for i := len(all) - 1; i >= 0; i-- {
		require.True(t, r.Dispatch(msg{all[i].ID(), "", "re:" + all[i].ID()}))
	}
	wg.Wait()
	for range n {
		require.NoError(t, <-errs)
	}
	ids := make(map[string]bool)
	for _, c := range all {
		_, err := strconv.ParseUint(c.ID(), 10, 64)
		require.NoError(t, err)
		ids[c.ID()] = true
	}
	require.Len(t, ids, n)
	require.Zero(t, r.Unmatched())
}

func TestRequestSendsWithItsIDAndReadDispatchesUntilRecvFails(t *testing.T) {
	r, _ := newRequester()
	inbox := make(chan msg, 4)
	ended := errors.New("inbox ended")
	skipped := errors.New("a gap")
	read := make(chan struct{})
	go func() {
		defer close(read)
		r.Read(func() (msg, error) {
			m, ok := <-inbox
			switch {
			case !ok:
				return msg{}, ended
			case m.body == "gap":
				return msg{}, skipped
			}
			return m, nil
		}, func(err error) bool { return errors.Is(err, skipped) },
			func(err error) error { return fmt.Errorf("closed: %w", err) })
	}()

	got, err := r.Request(context.Background(), func(id string) error {
		inbox <- msg{body: "gap"}
		inbox <- msg{inReplyTo: id, body: "answer to " + id}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, "answer to 1", got.body)

	sendErr := errors.New("send failed")
	_, err = r.Request(context.Background(), func(string) error { return sendErr })
	require.ErrorIs(t, err, sendErr)
	require.Zero(t, r.InFlight(), "a request whose send failed does not wait")

	close(inbox)
	<-read
	_, err = r.Request(context.Background(), func(string) error { return nil })
	require.ErrorIs(t, err, ended, "after Read ended, requests fail with its error")
	require.ErrorContains(t, err, "closed: inbox ended")
}
