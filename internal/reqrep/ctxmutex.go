package reqrep

import (
	"context"
	"sync"
)

// CtxMutex is a mutex whose Lock gives up when its ctx ends, so that a
// caller with a short deadline does not wait out the holder's longer one.
// The zero value is unlocked.
type CtxMutex struct {
	once sync.Once
	ch   chan struct{} // holds a token while locked
}

func (m *CtxMutex) init() { m.once.Do(func() { m.ch = make(chan struct{}, 1) }) }

// Lock locks m, or returns ctx's error if ctx ends first.
func (m *CtxMutex) Lock(ctx context.Context) error {
	m.init()
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock unlocks m, which must be locked.
func (m *CtxMutex) Unlock() { <-m.ch }
