// Package sketch holds mergeable latency sketches: quantiles within a fixed
// relative error, from any number of observations, in bounded memory.
package sketch

import (
	"fmt"
	"math"
	"sync"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/stat"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// RelativeAccuracy is the guaranteed relative error of every quantile a
// Latency returns: the value reported for quantile q is within 1% of the
// exact value at that rank.
const RelativeAccuracy = 0.01

// Latency is a mergeable quantile sketch of non-negative durations (any unit;
// Causeway records milliseconds). It also keeps exact count, sum, min and max.
//
// It is DDSketch from github.com/DataDog/sketches-go: a published,
// well-tested algorithm with a relative-error guarantee and lossless merges,
// which per-window edge statistics and cross-instance summaries both need,
// beside the library's exact summary statistics. Both are held in the
// Latency itself rather than through the library's
// DDSketchWithExactSummaryStatistics, which takes four allocations per
// sketch where this takes one: a detector keeps several sketches per edge
// (see store.go). Encoding goes through the library's type, so the format
// is its own.
//
// A Latency is not safe for concurrent use. The zero value is not usable;
// call NewLatency or NewCompact.
type Latency struct {
	d  ddsketch.DDSketch
	st stat.SummaryStatistics
	// add is d's positive store when it is a window's (NewLatency), for
	// Add to increment directly.
	add *windowStore
}

// NewLatency returns an empty sketch with RelativeAccuracy, built for
// adding to: a window's. Its store is built for that (window_store.go),
// and a value's bucket is found without a logarithm (index.go).
func NewLatency() *Latency {
	w := newWindowStore()
	l := newLatency(defaultMapping, w)
	l.add = w
	return l
}

// NewCompact returns an empty sketch whose quantiles are within rel (in
// (0, 1)) of the exact ones, built to be kept: its store holds exactly the
// bins in use and no spare room, so it is small, and adding a value beyond
// its range costs a copy of the bins. Coarser sketches are smaller: 5%
// needs about a fifth of the bins of 1%. Merging a sketch of another
// accuracy into it (Merge) re-bins that sketch's buckets.
func NewCompact(rel float64) *Latency {
	return newLatency(mappingFor(rel), &compactStore{})
}

// Compact returns a compact copy of l (see NewCompact), of its accuracy.
func (l *Latency) Compact() *Latency {
	c := newLatency(l.d.IndexMapping, &compactStore{})
	c.Merge(l)
	return c
}

// defaultMapping maps values to buckets for every sketch of
// RelativeAccuracy. A mapping is immutable, so all sketches of one
// accuracy share one rather than each allocating its own.
var (
	defaultMapping = newMapping(RelativeAccuracy)
	defaultIndex   = newIndexTable(defaultMapping)
	mappings       sync.Map // relative accuracy -> mapping.IndexMapping
)

// mappingFor returns the shared mapping for rel.
func mappingFor(rel float64) mapping.IndexMapping {
	if rel == RelativeAccuracy {
		return defaultMapping
	}
	if m, ok := mappings.Load(rel); ok {
		return m.(mapping.IndexMapping)
	}
	m, loaded := mappings.LoadOrStore(rel, newMapping(rel))
	if !loaded {
		sharedRels.Store(m, rel)
		addValueTable(m.(mapping.IndexMapping))
	}
	return m.(mapping.IndexMapping)
}

// sharedRels holds the relative accuracy each shared mapping was made for,
// by mapping: what names a rebinTable.
var sharedRels sync.Map

func init() {
	sharedRels.Store(defaultMapping, RelativeAccuracy)
	addValueTable(defaultMapping)
}

// newMapping returns DDSketch's logarithmic mapping for rel, its default.
func newMapping(rel float64) mapping.IndexMapping {
	m, err := mapping.NewLogarithmicMapping(rel)
	if err != nil {
		panic(fmt.Sprintf("sketch: relative accuracy %v: %v", rel, err))
	}
	return m
}

// shared returns the shared mapping equal to m, or m when there is none.
func shared(m mapping.IndexMapping) mapping.IndexMapping {
	if defaultMapping.Equals(m) {
		return defaultMapping
	}
	if s := mappingFor(m.RelativeAccuracy()); s.Equals(m) {
		return s
	}
	return m
}

// newLatency returns an empty sketch on m with the given store for
// positive values; durations are never negative, so every sketch shares
// one empty store for those.
func newLatency(m mapping.IndexMapping, positive store.Store) *Latency {
	return &Latency{d: *ddsketch.NewDDSketch(m, positive, emptyStore), st: *stat.NewSummaryStatistics()}
}

// Add records one observation. Negative and NaN values are recorded as zero,
// since a duration cannot be negative.
func (l *Latency) Add(v float64) {
	if !(v > 0) {
		v = 0
	}
	l.st.Add(v, 1)
	if l.d.IndexMapping == defaultMapping {
		if i, ok := defaultIndex.index(v); ok {
			if l.add != nil {
				l.add.inc(i)
			} else {
				l.d.GetPositiveValueStore().Add(i)
			}
			return
		}
	}
	_ = l.d.Add(v) // cannot fail for finite non-negative values
}

// ForEach calls f with every bucket's representative value and count.
func (l *Latency) ForEach(f func(v, n float64)) {
	l.d.ForEach(func(v, n float64) bool { f(v, n); return false })
}

// Merge adds every observation of o into l. o is unchanged. A sketch of
// another accuracy (or one encoded by another DDSketch implementation) is
// added bucket by bucket, each by its representative value: within both
// sketches' accuracies. The exact statistics merge as they are.
func (l *Latency) Merge(o *Latency) {
	if o == nil || o.st.Count() == 0 {
		return
	}
	if l.d.MergeWith(&o.d) != nil {
		if c, ok := l.d.GetPositiveValueStore().(*compactStore); ok {
			if ps := o.d.GetPositiveValueStore(); !ps.IsEmpty() {
				lo, _ := ps.MinIndex()
				hi, _ := ps.MaxIndex()
				c.reserve(l.d.Index(o.d.Value(lo)), l.d.Index(o.d.Value(hi)))
			}
		}
		l.rebin(o)
	}
	l.st.MergeWith(&o.st)
}

// rebin adds o's buckets, of another mapping, to l, each by its
// representative value, as Merge documents.
func (l *Latency) rebin(o *Latency) {
	t := rebinTableFor(o.d.IndexMapping, l.d.IndexMapping)
	if t == nil {
		o.d.ForEach(func(v, n float64) bool {
			_ = l.d.AddWithCount(v, n)
			return false
		})
		return
	}
	// What ForEach would add, in its order (zero, then positive buckets
	// up; durations have no negative ones), with the target bucket of
	// each positive one looked up rather than computed.
	if z := o.d.GetZeroCount(); z != 0 {
		_ = l.d.AddWithCount(0, z)
	}
	ps := l.d.GetPositiveValueStore()
	o.d.GetPositiveValueStore().ForEach(func(i int, n float64) bool {
		if j := i - t.lo; j >= 0 && j < len(t.to) {
			ps.AddWithCount(int(t.to[j]), n)
		} else {
			_ = l.d.AddWithCount(o.d.Value(i), n)
		}
		return false
	})
}

// rebinTable maps the buckets of one shared mapping to those of another:
// bucket i of the first, represented by its value Value(i), falls in
// bucket to[i-lo] of the second. Merging a window's sketch into a kept
// one of another accuracy (the service graph's totals, the exceedance
// references) computed that per bucket, an exponential and a logarithm
// each, for every series in every window; the table computes it once per
// bucket, for the durations rebinRange covers, and is read without locks.
type rebinTable struct {
	lo int
	to []int32
}

// rebinRange is the range of durations (in the unit sketches are fed:
// milliseconds) whose buckets a rebinTable covers; buckets outside it are
// computed as before.
var rebinRange = [2]float64{1e-6, 1e10}

var rebinTables sync.Map // [2]float64{from, to relative accuracy} -> *rebinTable

// rebinTableFor returns the table from one mapping to another when both
// are shared mappings (mappingFor), nil otherwise: a sketch decoded with
// a mapping of its own is rebinned bucket by bucket, and no table is kept
// for it.
func rebinTableFor(from, to mapping.IndexMapping) *rebinTable {
	fr, ok := sharedRels.Load(from)
	if !ok {
		return nil
	}
	tr, ok := sharedRels.Load(to)
	if !ok {
		return nil
	}
	key := [2]float64{fr.(float64), tr.(float64)}
	if t, ok := rebinTables.Load(key); ok {
		return t.(*rebinTable)
	}
	lo, hi := from.Index(rebinRange[0]), from.Index(rebinRange[1])
	t := &rebinTable{lo: lo, to: make([]int32, hi-lo+1)}
	for i := range t.to {
		t.to[i] = int32(to.Index(from.Value(lo + i)))
	}
	got, _ := rebinTables.LoadOrStore(key, t)
	return got.(*rebinTable)
}

// Quantile returns the value at quantile q in [0, 1], or NaN when the sketch
// is empty. It lies within the exact minimum and maximum.
func (l *Latency) Quantile(q float64) float64 {
	// The library's GetValueAtQuantile, with the bucket's value read from
	// its mapping's table (durations have no negative bucket).
	count := l.d.GetCount()
	if q < 0 || q > 1 || count == 0 {
		return math.NaN()
	}
	rank := float64(q * (count - 1)) // no fused multiply-add, as the library
	v := 0.0
	if z := l.d.GetZeroCount(); !(rank < z) {
		v = value(l.d.IndexMapping, l.d.GetPositiveValueStore().KeyAtRank(rank-z))
	}
	return min(max(v, l.st.Min()), l.st.Max())
}

// Count returns the number of observations.
func (l *Latency) Count() float64 { return l.st.Count() }

// Sum returns the exact sum of the observations.
func (l *Latency) Sum() float64 { return l.st.Sum() }

// Mean returns the exact mean, or NaN when empty.
func (l *Latency) Mean() float64 {
	if l.st.Count() == 0 {
		return math.NaN()
	}
	return l.st.Sum() / l.st.Count()
}

// Max returns the exact largest observation, or NaN when empty.
func (l *Latency) Max() float64 {
	if l.st.Count() == 0 {
		return math.NaN()
	}
	return l.st.Max()
}

// Clone returns an independent copy, with a store of the same kind.
func (l *Latency) Clone() *Latency {
	c := &Latency{d: *l.d.Copy(), st: *l.st.Copy()}
	c.add, _ = c.d.GetPositiveValueStore().(*windowStore)
	return c
}

// String returns count and the usual quantiles on one line, for test failures.
func (l *Latency) String() string {
	return fmt.Sprintf("n=%g p50=%.3g p90=%.3g p99=%.3g max=%.3g",
		l.Count(), l.Quantile(0.5), l.Quantile(0.9), l.Quantile(0.99), l.Max())
}

// MarshalBinary encodes the sketch with its accuracy, in DDSketch's own
// compact format (that of DDSketchWithExactSummaryStatistics), so windows
// can travel between detector instances.
func (l *Latency) MarshalBinary() ([]byte, error) {
	w, err := ddsketch.NewDDSketchWithExactSummaryStatisticsFromData(&l.d, &l.st)
	if err != nil {
		return nil, fmt.Errorf("encode latency sketch: %w", err)
	}
	var b []byte
	w.Encode(&b, false)
	return b, nil
}

// UnmarshalBinary replaces the sketch with the one encoded in b, built for
// adding to as NewLatency's are (Compact makes a kept one of it). A sketch
// with negative values, which another implementation could send, is an
// error: durations are never negative.
func (l *Latency) UnmarshalBinary(b []byte) error {
	// Decoded straight into the store it is kept in: no intermediate
	// store to grow bin by bin and copy (it was most of a fleet member's
	// merge cost, BenchmarkSummary).
	d, err := ddsketch.DecodeDDSketchWithExactSummaryStatistics(b, store.BufferedPaginatedStoreConstructor, nil)
	if err != nil {
		return fmt.Errorf("decode latency sketch: %w", err)
	}
	if !d.GetNegativeValueStore().IsEmpty() {
		return fmt.Errorf("decode latency sketch: %w", errNegative)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	if !d.IsEmpty() {
		lo, _ = d.GetMinValue()
		hi, _ = d.GetMaxValue()
	}
	st, err := stat.NewSummaryStatisticsFromData(d.GetCount(), d.GetSum(), lo, hi)
	if err != nil {
		return fmt.Errorf("decode latency sketch: %w", err)
	}
	s := newLatency(shared(d.IndexMapping), d.GetPositiveValueStore())
	if z := d.GetZeroCount(); z > 0 {
		if err := s.d.AddWithCount(0, z); err != nil {
			return fmt.Errorf("decode latency sketch: %w", err)
		}
	}
	s.st = *st
	*l = *s
	return nil
}

// CountsAbove sets n[i] to how many observations lie above vs[i], within
// the sketch's relative accuracy (each bucket counts by its
// representative value), for every i, in one walk over the buckets: a
// series' window is counted against three bounds. Buckets are ordered by
// value, so only the bucket holding a bound needs its value; the others
// count by their index alone.
func (l *Latency) CountsAbove(vs []float64, n []float64) {
	var ks [4]int
	keys := ks[:0]
	if len(vs) > len(ks) {
		keys = make([]int, 0, len(vs))
	}
	walk := false
	for i, v := range vs {
		n[i] = 0
		k := math.MaxInt
		switch {
		case math.IsNaN(v), math.IsInf(v, 1): // nothing is above
		case v < 0:
			n[i] = l.d.GetCount()
		case v == 0:
			n[i] = l.d.GetCount() - l.d.GetZeroCount()
		default:
			k, walk = l.d.Index(v), true
		}
		keys = append(keys, k)
	}
	if !walk {
		return
	}
	l.d.GetPositiveValueStore().ForEach(func(j int, c float64) bool {
		for i, k := range keys {
			if j > k || (j == k && value(l.d.IndexMapping, j) > vs[i]) {
				n[i] += c
			}
		}
		return false
	})
}
