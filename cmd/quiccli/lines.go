package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// lineReader reads lines from an input on its own goroutine, so that the
// command can stop waiting for input when it is interrupted.
//
// A read of a file such as stdin cannot be interrupted portably, so the
// goroutine is not waited for: stop makes it return before delivering another
// line, and a read blocked on a terminal ends with the next line typed, or
// with the process.
type lineReader struct {
	lines chan []byte   // closed after the last line; then err is set
	stop  chan struct{} // closed by Stop
	once  sync.Once
	err   error // the read error, nil at EOF; read it after lines is closed
}

// errLineTooLong is wrapped when a line exceeds the reader's maximum.
var errLineTooLong = errors.New("line too long")

// readLines starts reading r line by line; lines longer than max bytes end
// the reading with an error wrapping errLineTooLong. Line endings ("\n" or
// "\r\n") are removed.
func readLines(r io.Reader, max int) *lineReader {
	lr := &lineReader{lines: make(chan []byte, 16), stop: make(chan struct{})}
	go func() {
		defer close(lr.lines)
		sc := bufio.NewScanner(r)
		// Room for a line of max bytes and its "\r\n".
		sc.Buffer(make([]byte, 0, min(max+2, 64<<10)), max+2)
		n := 0
		for sc.Scan() {
			n++
			if len(sc.Bytes()) > max {
				lr.err = fmt.Errorf("line %d is %d bytes: %w", n, len(sc.Bytes()), errLineTooLong)
				return
			}
			select {
			case lr.lines <- bytes.Clone(sc.Bytes()):
			case <-lr.stop:
				return
			}
		}
		if errors.Is(sc.Err(), bufio.ErrTooLong) {
			lr.err = fmt.Errorf("line %d is longer than %d bytes: %w", n+1, max, errLineTooLong)
			return
		}
		lr.err = sc.Err()
	}()
	return lr
}

// Stop tells the reader to deliver no more lines. It is idempotent.
func (lr *lineReader) Stop() { lr.once.Do(func() { close(lr.stop) }) }
