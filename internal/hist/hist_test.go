package hist

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// exactQuantile is the reference: the value at rank ceil(q*n) of sorted.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func TestEmptyHistogramReportsZeros(t *testing.T) {
	var h Histogram
	require.Zero(t, h.Count())
	require.Zero(t, h.Min())
	require.Zero(t, h.Max())
	require.Zero(t, h.Mean())
	require.Zero(t, h.Quantile(0.5))
	require.Equal(t, Summary{}, h.Summary())
}

func TestSmallValuesAreExact(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	require.EqualValues(t, 100, h.Count())
	require.EqualValues(t, 1, h.Min())
	require.EqualValues(t, 100, h.Max())
	require.InDelta(t, 50.5, h.Mean(), 1e-9)
	require.EqualValues(t, 50, h.Quantile(0.5))
	require.EqualValues(t, 90, h.Quantile(0.9))
	require.EqualValues(t, 99, h.Quantile(0.99))
	require.EqualValues(t, 100, h.Quantile(0.999))
	require.EqualValues(t, 100, h.Quantile(1))
	require.EqualValues(t, 1, h.Quantile(0))
}

func TestPercentilesStayWithinRelativeErrorOverWideRange(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	values := make([]int64, 0, 100_000)
	for range cap(values) {
		// Log-uniform from 1 ns to about 17 minutes.
		v := int64(math.Exp(rnd.Float64() * math.Log(1e12)))
		values = append(values, v)
		h.Record(v)
	}
	slices.Sort(values)
	for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999} {
		want := exactQuantile(values, q)
		got := h.Quantile(q)
		require.GreaterOrEqual(t, got, want, "q=%v", q)
		require.LessOrEqual(t, float64(got-want), float64(want)/half, "q=%v: got %d want %d", q, got, want)
	}
	require.Equal(t, values[0], h.Min())
	require.Equal(t, values[len(values)-1], h.Max())
	require.Equal(t, values[len(values)-1], h.Quantile(1))
}

func TestEveryValueLandsInABucketThatHoldsIt(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	check := func(v int64) {
		i := index(v)
		require.Less(t, i, MaxBuckets, "v=%d", v)
		require.GreaterOrEqual(t, upper(i), v, "v=%d", v)
		if i > 0 {
			require.Less(t, upper(i-1), v, "v=%d", v)
		}
	}
	for v := int64(0); v < 4096; v++ {
		check(v)
	}
	for range 10_000 {
		check(rnd.Int64())
	}
	for s := range 63 {
		check(int64(1) << s)
		check(int64(1)<<s - 1)
	}
	check(math.MaxInt64)
}

func TestMemoryIsBoundedWhateverIsRecorded(t *testing.T) {
	var h Histogram
	h.Record(math.MaxInt64)
	h.Record(0)
	require.LessOrEqual(t, len(h.counts), MaxBuckets)
	require.EqualValues(t, math.MaxInt64, h.Quantile(0.9))
	require.EqualValues(t, 0, h.Quantile(0.5))

	var small Histogram
	for v := range int64(1e9) / 1e6 {
		small.Record(v * 1e6) // up to one second in nanoseconds
	}
	require.Less(t, len(small.counts), 1700, "one second of nanoseconds needs about 1,600 buckets")
}

func TestNegativeValuesCountAsZero(t *testing.T) {
	var h Histogram
	h.Record(-5)
	h.Record(10)
	require.EqualValues(t, 0, h.Min())
	require.EqualValues(t, 0, h.Quantile(0.5))
	require.EqualValues(t, 10, h.Quantile(1))
}

func TestMergeEqualsRecordingEverythingInOne(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	var all, a, b Histogram
	for i := range 20_000 {
		v := rnd.Int64N(1e9)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var merged Histogram
	merged.Merge(&a)
	merged.Merge(&b)
	merged.Merge(&Histogram{}) // merging an empty one changes nothing
	require.Equal(t, all.Summary().Count, merged.Summary().Count)
	require.Equal(t, all.Min(), merged.Min())
	require.Equal(t, all.Max(), merged.Max())
	require.InEpsilon(t, all.Mean(), merged.Mean(), 1e-9)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		require.Equal(t, all.Quantile(q), merged.Quantile(q), "q=%v", q)
	}

	// Merging into a histogram with a lower minimum keeps it.
	var low Histogram
	low.Record(0)
	low.Merge(&a)
	require.EqualValues(t, 0, low.Min())
	require.Equal(t, a.Max(), low.Max())
}

func TestRecordNCountsRepeats(t *testing.T) {
	var h Histogram
	h.RecordN(1000, 99)
	h.RecordN(5000, 1)
	h.RecordN(7, 0)
	require.EqualValues(t, 100, h.Count())
	require.EqualValues(t, 1000, h.Min())
	require.GreaterOrEqual(t, h.Quantile(0.99), int64(1000))
	require.LessOrEqual(t, h.Quantile(0.99), int64(1000+1000/half))
	require.EqualValues(t, 5000, h.Quantile(0.999))
	require.InDelta(t, 1040, h.Mean(), 1e-9)
}

func TestPercentilesOfOneRepeatedValueAreThatValue(t *testing.T) {
	var h Histogram
	h.RecordN(123_456, 1000)
	s := h.Summary()
	require.Equal(t, Summary{Count: 1000, Min: 123_456, Mean: 123_456, P50: 123_456, P90: 123_456, P99: 123_456, P999: 123_456, Max: 123_456}, s,
		"clamped to the values seen, not the bucket's end")
}

func TestResetEmptiesTheHistogram(t *testing.T) {
	var h Histogram
	h.Record(123456)
	h.Reset()
	require.Equal(t, Summary{}, h.Summary())
	h.Record(7)
	require.EqualValues(t, 7, h.Min())
	require.EqualValues(t, 7, h.Max())
}

func TestSummaryHasOrderedPercentiles(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 10_000; v++ {
		h.Record(v * 1000)
	}
	s := h.Summary()
	require.EqualValues(t, 10_000, s.Count)
	require.True(t, s.Min <= s.P50 && s.P50 <= s.P90 && s.P90 <= s.P99 && s.P99 <= s.P999 && s.P999 <= s.Max, "%+v", s)
	require.InEpsilon(t, 5_000_000, s.P50, 1.0/half)
	require.InEpsilon(t, 9_990_000, s.P999, 1.0/half)
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	rnd := rand.New(rand.NewPCG(7, 8))
	vals := make([]int64, 1024)
	for i := range vals {
		vals[i] = rnd.Int64N(1e8)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h.Record(vals[i&1023])
	}
}
