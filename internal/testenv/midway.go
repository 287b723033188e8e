package testenv

import (
	"context"
	"errors"
	"sync"
)

// Midway runs every worker on a goroutine of its own and calls event once
// the workers together have reported at progress at least at times (each
// call of the progress function they get counts one), so that event
// happens while their work is under way. It waits for every worker and
// returns event's error and the workers' errors joined. If ctx ends
// before the mark, event is not called.
func Midway(ctx context.Context, workers []func(progress func()) error, at int, event func() error) (eventErr, workErr error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		n    int
		mark = make(chan struct{})
		errs = make([]error, len(workers))
	)
	progress := func() {
		mu.Lock()
		defer mu.Unlock()
		if n++; n == at {
			close(mark)
		}
	}
	for i, w := range workers {
		wg.Go(func() { errs[i] = w(progress) })
	}
	select {
	case <-mark:
		eventErr = event()
	case <-ctx.Done():
	}
	wg.Wait()
	return eventErr, errors.Join(errs...)
}
