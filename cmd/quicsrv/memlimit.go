package main

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// byteUnits are the suffixes -memory-limit accepts, those of GOMEMLIMIT.
var byteUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseByteSize parses a size as GOMEMLIMIT writes it: a whole number of
// bytes, optionally followed by B, KiB, MiB, GiB or TiB. It refuses
// negative sizes, other units (MB, G) and sizes beyond math.MaxInt64.
func parseByteSize(s string) (int64, error) {
	num, shift := s, uint(0)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want a size such as 600MiB or 2GiB (units B, KiB, MiB, GiB, TiB)", s)
	}
	if v > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return v << shift, nil
}

// applyMemoryLimit sets the Go runtime's soft memory limit to limit bytes
// (-memory-limit) when it is positive. run calls it before the session
// server is made, whose default budget of pending messages is a share of
// the limit (session.DefaultServerPendingBytes).
func applyMemoryLimit(limit int64) {
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
}
