package main

import (
	"fmt"
	"strings"
	"time"
)

// startProgress redraws a progress line on stderr every progressEvery while
// the run lasts, if stderr is a terminal. The returned function stops it,
// waits for it and clears the line.
func (b *bench) startProgress() (stop func()) {
	if !isTerminal(b.g.stderr) {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(exited)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		var prev uint64
		prevAt := start
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				sent, delivered := b.sent(), b.delivered()
				rate := float64(delivered-min(prev, delivered)) / now.Sub(prevAt).Seconds()
				prev, prevAt = delivered, now
				fmt.Fprintf(b.g.stderr, "\r%s  sent %s  delivered %s  %s msg/s\033[K",
					progressBar(b.progress(now.Sub(start), sent), 30), thousands(sent), thousands(delivered), thousands(uint64(rate)))
			}
		}
	}()
	return func() {
		close(done)
		<-exited
		fmt.Fprint(b.g.stderr, "\r\033[K")
	}
}

// progress returns the fraction of the run done: of -duration, or of -count
// when that is further along.
func (b *bench) progress(elapsed time.Duration, sent uint64) float64 {
	f := elapsed.Seconds() / b.o.duration.Seconds()
	if b.o.count > 0 {
		f = max(f, float64(sent)/float64(b.o.count))
	}
	return min(f, 1)
}

// progressBar draws f (0 to 1) as a bar of width characters and a
// percentage.
func progressBar(f float64, width int) string {
	n := int(f * float64(width))
	return fmt.Sprintf("[%s%s] %3.0f%%", strings.Repeat("=", n), strings.Repeat(" ", width-n), f*100)
}
