// Package sketch holds mergeable latency sketches: quantiles within a fixed
// relative error, from any number of observations, in bounded memory.
package sketch

import (
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// RelativeAccuracy is the guaranteed relative error of every quantile a
// Latency returns: the value reported for quantile q is within 1% of the
// exact value at that rank.
const RelativeAccuracy = 0.01

// Latency is a mergeable quantile sketch of non-negative durations (any unit;
// Causeway records milliseconds). It also keeps exact count, sum, min and max.
//
// It wraps DDSketch from github.com/DataDog/sketches-go: a published,
// well-tested algorithm with a relative-error guarantee and lossless merges,
// which per-window edge statistics and cross-instance summaries both need.
// A Latency is not safe for concurrent use. The zero value is not usable;
// call NewLatency.
type Latency struct {
	s *ddsketch.DDSketchWithExactSummaryStatistics
}

// NewLatency returns an empty sketch with RelativeAccuracy.
func NewLatency() *Latency { return newLatency(defaultMapping) }

// NewLatencyAccuracy returns an empty sketch whose quantiles are within rel
// (in (0, 1)) of the exact ones. Coarser sketches are smaller: 5% needs
// about a fifth of the memory of 1%. Sketches merge only with sketches of
// the same accuracy.
func NewLatencyAccuracy(rel float64) *Latency {
	if rel == RelativeAccuracy {
		return NewLatency()
	}
	return newLatency(newMapping(rel))
}

// defaultMapping maps values to buckets for every sketch of
// RelativeAccuracy. A mapping is immutable, so all of them share one
// rather than each allocating its own.
var defaultMapping = newMapping(RelativeAccuracy)

// newMapping returns DDSketch's logarithmic mapping for rel, its default.
func newMapping(rel float64) mapping.IndexMapping {
	m, err := mapping.NewLogarithmicMapping(rel)
	if err != nil {
		panic(fmt.Sprintf("sketch: relative accuracy %v: %v", rel, err))
	}
	return m
}

func newLatency(m mapping.IndexMapping) *Latency {
	return &Latency{s: ddsketch.NewDDSketchWithExactSummaryStatistics(m, store.BufferedPaginatedStoreConstructor)}
}

// Add records one observation. Negative and NaN values are recorded as zero,
// since a duration cannot be negative.
func (l *Latency) Add(v float64) {
	if !(v > 0) {
		v = 0
	}
	_ = l.s.Add(v) // cannot fail for finite non-negative values
}

// AddN records n observations of value v.
func (l *Latency) AddN(v, n float64) {
	if !(v > 0) {
		v = 0
	}
	if n > 0 {
		_ = l.s.AddWithCount(v, n)
	}
}

// ForEach calls f with every bucket's representative value and count.
func (l *Latency) ForEach(f func(v, n float64)) {
	l.s.ForEach(func(v, n float64) bool { f(v, n); return false })
}

// Merge adds every observation of o into l. o is unchanged; both must have
// the same accuracy.
func (l *Latency) Merge(o *Latency) {
	if o == nil || o.s.IsEmpty() {
		return
	}
	if l.s.MergeWith(o.s) == nil {
		return
	}
	// Another mapping (a sketch encoded by another DDSketch implementation): add o's
	// buckets by value, each within both sketches' accuracy. The exact
	// summary statistics become those of the representative values.
	o.s.ForEach(func(v, n float64) bool {
		_ = l.s.AddWithCount(v, n)
		return false
	})
}

// Quantile returns the value at quantile q in [0, 1], or NaN when the sketch
// is empty.
func (l *Latency) Quantile(q float64) float64 {
	v, err := l.s.GetValueAtQuantile(q)
	if err != nil {
		return math.NaN()
	}
	return v
}

// Count returns the number of observations.
func (l *Latency) Count() float64 { return l.s.GetCount() }

// Sum returns the exact sum of the observations.
func (l *Latency) Sum() float64 { return l.s.GetSum() }

// Mean returns the exact mean, or NaN when empty.
func (l *Latency) Mean() float64 {
	if l.s.IsEmpty() {
		return math.NaN()
	}
	return l.s.GetSum() / l.s.GetCount()
}

// Max returns the exact largest observation, or NaN when empty.
func (l *Latency) Max() float64 {
	v, err := l.s.GetMaxValue()
	if err != nil {
		return math.NaN()
	}
	return v
}

// Clone returns an independent copy.
func (l *Latency) Clone() *Latency {
	return &Latency{s: l.s.Copy()}
}

// String returns count and the usual quantiles on one line, for test failures.
func (l *Latency) String() string {
	return fmt.Sprintf("n=%g p50=%.3g p90=%.3g p99=%.3g max=%.3g",
		l.Count(), l.Quantile(0.5), l.Quantile(0.9), l.Quantile(0.99), l.Max())
}

// MarshalBinary encodes the sketch with its accuracy, in DDSketch's own
// compact format, so windows can travel between detector instances.
func (l *Latency) MarshalBinary() ([]byte, error) {
	var b []byte
	l.s.Encode(&b, false)
	return b, nil
}

// UnmarshalBinary replaces the sketch with the one encoded in b.
func (l *Latency) UnmarshalBinary(b []byte) error {
	s, err := ddsketch.DecodeDDSketchWithExactSummaryStatistics(b, func() store.Store { return store.NewDenseStore() }, nil)
	if err != nil {
		return fmt.Errorf("decode latency sketch: %w", err)
	}
	l.s = s
	return nil
}
