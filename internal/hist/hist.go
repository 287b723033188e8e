// Package hist is a latency histogram in the style of HdrHistogram: values
// are counted in log-linear buckets, so that memory stays bounded whatever
// the range of values recorded, while every percentile is reported with a
// bounded relative error.
//
// Values below [SubBuckets] are counted exactly. Above that, each power of two
// [2^k, 2^(k+1)) is split into SubBuckets/2 equal buckets, so a reported
// percentile is at most 1/(SubBuckets/2) (1.6 %) above the true value and
// never below it, and never above the largest value recorded. Counts live in
// a slice that grows with the largest value recorded, up to [MaxBuckets]
// counters (about 30 KiB) for the full int64 range: for latencies in
// nanoseconds up to one second, about 1,600 counters (13 KiB).
//
// The minimum, maximum and mean are exact.
package hist

import (
	"math"
	"math/bits"
)

const (
	// subBits is log2(SubBuckets).
	subBits = 7
	// SubBuckets is the number of buckets below which values are counted
	// exactly; each power of two above it has SubBuckets/2 buckets.
	SubBuckets = 1 << subBits
	half       = SubBuckets / 2
	// MaxBuckets is the largest number of counters a Histogram holds: the
	// exact range plus SubBuckets/2 buckets for each power of two up to 2^63.
	MaxBuckets = SubBuckets + (64-subBits-1)*half
)

// Histogram counts non-negative int64 values (for example latencies in
// nanoseconds). The zero value is an empty histogram ready to use. A
// Histogram is not safe for concurrent use: give each goroutine its own and
// [Histogram.Merge] them.
type Histogram struct {
	counts []uint64
	total  uint64
	min    int64
	max    int64
	sum    float64
}

// index returns the bucket of v, which must not be negative.
func index(v int64) int {
	if v < SubBuckets {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits // at least 1
	sub := int(v >> shift)                   // in [half, SubBuckets)
	return SubBuckets + (shift-1)*half + sub - half
}

// upper returns the largest value that falls into bucket i.
func upper(i int) int64 {
	if i < SubBuckets {
		return int64(i)
	}
	j := i - SubBuckets
	shift := j/half + 1
	sub := int64(j%half + half)
	hi := (sub+1)<<shift - 1
	if hi < 0 { // the top bucket of the int64 range
		return math.MaxInt64
	}
	return hi
}

// Record counts v once. Negative values are counted as 0.
func (h *Histogram) Record(v int64) { h.RecordN(v, 1) }

// RecordN counts v n times. Negative values are counted as 0.
func (h *Histogram) RecordN(v int64, n uint64) {
	if n == 0 {
		return
	}
	v = max(v, 0)
	i := index(v)
	if i >= len(h.counts) {
		h.grow(i + 1)
	}
	h.counts[i] += n
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if h.total == 0 || v > h.max {
		h.max = v
	}
	h.total += n
	h.sum += float64(v) * float64(n)
}

// grow makes room for n buckets, growing by at least one power of two at a
// time so that rising values do not reallocate on every record.
func (h *Histogram) grow(n int) {
	n = min(max(n, len(h.counts)+half, SubBuckets), MaxBuckets)
	c := make([]uint64, n)
	copy(c, h.counts)
	h.counts = c
}

// Count returns how many values were recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Min returns the smallest value recorded, or 0 if none was.
func (h *Histogram) Min() int64 { return h.min }

// Max returns the largest value recorded, or 0 if none was.
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the mean of the values recorded, or 0 if none was.
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns the value below or at which a fraction q (0 to 1) of the
// recorded values fall: Quantile(0.99) is the 99th percentile. The result is
// the upper end of the bucket holding that rank, clamped to [Min, Max], so
// it is never below the true value and at most 1.6 % above it. q outside
// [0, 1] is clamped; an empty histogram returns 0.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	if !(q > 0) { // also NaN
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(upper(i), h.min), h.max)
		}
	}
	return h.max
}

// Merge adds every value recorded in o to h. o is not changed.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.grow(len(o.counts))
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if h.total == 0 || o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Reset empties h, keeping its memory.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.total, h.min, h.max, h.sum = 0, 0, 0, 0
}

// Summary is a histogram's usual figures.
type Summary struct {
	Count uint64
	Min   int64
	Mean  float64
	P50   int64
	P90   int64
	P99   int64
	P999  int64 // 99.9th percentile
	Max   int64
}

// Summary returns the count, minimum, mean, maximum and the 50th, 90th, 99th
// and 99.9th percentiles.
func (h *Histogram) Summary() Summary {
	return Summary{
		Count: h.total,
		Min:   h.min,
		Mean:  h.Mean(),
		P50:   h.Quantile(0.50),
		P90:   h.Quantile(0.90),
		P99:   h.Quantile(0.99),
		P999:  h.Quantile(0.999),
		Max:   h.max,
	}
}
