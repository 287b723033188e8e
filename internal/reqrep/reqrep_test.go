package reqrep

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var errNoResponders = errors.New("no responders")

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
	r := New[string](errNoResponders)
	a, err := r.Begin()
	require.NoError(t, err)
	b, err := r.Begin()
	require.NoError(t, err)
	require.Equal(t, "1", a.ID())
	require.Equal(t, "2", b.ID())
	defer a.Done()
	defer b.Done()

	require.True(t, r.Dispatch(b.ID(), "", "for b"))
	require.True(t, r.Dispatch(a.ID(), "", "for a"))
	got, err := b.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, "for b", got)
	got, err = a.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, "for a", got)
	require.Zero(t, r.InFlight())
	require.Zero(t, r.Unmatched())
}

func TestStatus503IsNoResponders(t *testing.T) {
	r := New[string](errNoResponders)
	c, err := r.Begin()
	require.NoError(t, err)
	defer c.Done()
	require.True(t, r.Dispatch(c.ID(), StatusNoResponders, "ignored"))
	got, err := c.Wait(context.Background())
	require.ErrorIs(t, err, errNoResponders)
	require.Empty(t, got)
}

func TestLateReplyIsCountedAndDiscarded(t *testing.T) {
	r := New[string](errNoResponders)
	c, err := r.Begin()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Wait(ctx)
	require.ErrorIs(t, err, context.Canceled)
	c.Done()
	c.Done() // idempotent

	require.False(t, r.Dispatch(c.ID(), "", "late"))
	require.False(t, r.Dispatch("no such id", "", "stray"))
	require.False(t, r.Dispatch("", "", "no in-reply-to"))
	require.Equal(t, uint64(3), r.Unmatched())
	require.Zero(t, r.InFlight())
}

func TestDuplicateReplyIsUnmatched(t *testing.T) {
	r := New[string](errNoResponders)
	c, err := r.Begin()
	require.NoError(t, err)
	defer c.Done()
	require.True(t, r.Dispatch(c.ID(), "", "first"))
	require.False(t, r.Dispatch(c.ID(), "", "second"))
	got, err := c.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, "first", got)
	require.Equal(t, uint64(1), r.Unmatched())
}

func TestFailEndsRequestsInFlightAndLater(t *testing.T) {
	r := New[string](errNoResponders)
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
	r := New[string](errNoResponders)
	const n = 64
	calls := make(chan *Call[string], n)
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
			if err == nil && got != "re:"+c.ID() {
				err = errors.New("reply " + got + " to request " + c.ID())
			}
			errs <- err
		})
	}
	// Answer in reverse order of arrival.
	var all []*Call[string]
	for range n {
		all = append(all, <-calls)
	}
	for i := len(all) - 1; i >= 0; i-- {
		require.True(t, r.Dispatch(all[i].ID(), "", "re:"+all[i].ID()))
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
