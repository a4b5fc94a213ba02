package sketch

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// exact returns the lower-rank exact quantile DDSketch is specified against.
func exact(sorted []float64, q float64) float64 {
	return sorted[int(q*float64(len(sorted)-1))]
}

func TestLatencyQuantilesWithinOnePercent(t *testing.T) {
	dists := map[string]func(r *rand.Rand) float64{
		"lognormal-5ms": func(r *rand.Rand) float64 { return math.Exp(math.Log(5) + 0.6*r.NormFloat64()) },
		"bimodal":       func(r *rand.Rand) float64 { return []float64{0.3, 40}[r.IntN(2)] * (1 + 0.2*r.Float64()) },
		"pareto-tail":   func(r *rand.Rand) float64 { return 1 / math.Pow(1-r.Float64(), 1/1.5) },
	}
	for name, draw := range dists {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			// Two halves merged, to check Merge keeps the guarantee.
			a, b := NewLatency(), NewLatency()
			var all []float64
			for i := range 20000 {
				v := draw(r)
				all = append(all, v)
				if i%2 == 0 {
					a.Add(v)
				} else {
					b.Add(v)
				}
			}
			a.Merge(b)
			slices.Sort(all)
			if a.Count() != float64(len(all)) {
				t.Fatalf("count %g, want %d", a.Count(), len(all))
			}
			for _, q := range []float64{0.5, 0.9, 0.99} {
				got, want := a.Quantile(q), exact(all, q)
				if rel := math.Abs(got-want) / want; rel > RelativeAccuracy {
					t.Errorf("p%g = %g, exact %g: relative error %.4f > %g", q*100, got, want, rel, RelativeAccuracy)
				}
			}
			if a.Max() != all[len(all)-1] {
				t.Errorf("max %g, want %g", a.Max(), all[len(all)-1])
			}
		})
	}
}

func TestLatencyEmptyAndNegative(t *testing.T) {
	l := NewLatency()
	if !math.IsNaN(l.Quantile(0.5)) || !math.IsNaN(l.Mean()) {
		t.Fatalf("empty sketch: %v", l)
	}
	l.Add(-3)
	l.Add(math.NaN())
	if l.Count() != 2 || l.Quantile(0.99) != 0 {
		t.Fatalf("negative and NaN must count as zero: %v", l)
	}
}

func TestLatencyBinaryRoundTrip(t *testing.T) {
	l := NewLatency()
	for i := range 1000 {
		l.Add(float64(i%97) * 1.7)
	}
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Latency
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if back.String() != l.String() || back.Sum() != l.Sum() || back.Count() != l.Count() {
		t.Fatalf("round trip %s (sum %v), want %s (sum %v)", back.String(), back.Sum(), l.String(), l.Sum())
	}
	// A decoded sketch is added to and merges with a fresh one.
	back.Add(3.4)
	if back.Count() != l.Count()+1 {
		t.Fatalf("count %v after adding one to a decoded sketch of %v", back.Count(), l.Count())
	}
	back = Latency{}
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	m := NewLatency()
	m.Add(1000)
	m.Merge(&back)
	if m.Count() != 1001 || m.Max() != 1000 {
		t.Fatalf("merged %s", m)
	}
	if err := back.UnmarshalBinary([]byte{0xff, 0x01}); err == nil {
		t.Error("garbage decoded without error")
	}
}

// A sketch encoded with another mapping (here DDSketch's cubically
// interpolated one) still merges, by value, within the accuracy.
func TestMergeOtherMapping(t *testing.T) {
	m, err := mapping.NewCubicallyInterpolatedMapping(RelativeAccuracy)
	if err != nil {
		t.Fatal(err)
	}
	old := ddsketch.NewDDSketchWithExactSummaryStatistics(m, store.DefaultProvider)
	cur := NewLatency()
	for i := 1; i <= 1000; i++ {
		_ = old.Add(float64(i))
		cur.Add(float64(i))
	}
	var b []byte
	old.Encode(&b, false)
	var decoded Latency
	if err := decoded.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	cur.Merge(&decoded)
	if cur.Count() != 2000 {
		t.Fatalf("count %v after merge, want 2000", cur.Count())
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := q * 1000
		if got := cur.Quantile(q); math.Abs(got-want) > 2*RelativeAccuracy*want+1 {
			t.Errorf("q%v = %v, want %v within %v%%", q, got, want, 2*RelativeAccuracy*100)
		}
	}
}

// TestCountAboveMatchesBucketWalk: CountsAbove, which computes the value
// of only the bucket holding each threshold, counts exactly what walking every
// bucket by its representative value counts, for window and kept sketches
// of several accuracies, at thresholds on, just off and between bucket
// values, and at the edges (zero, negative, NaN, infinite, tiny).
func TestCountAboveMatchesBucketWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	walk := func(l *Latency, v float64) float64 {
		var n float64
		l.ForEach(func(x, c float64) {
			if x > v {
				n += c
			}
		})
		return n
	}
	for _, l := range []*Latency{NewLatency(), NewCompact(0.01), NewCompact(0.05)} {
		for range 2000 {
			l.Add(math.Exp(rng.NormFloat64()*2 + 3))
		}
		l.Add(0)
		l.Add(0)
		thresholds := []float64{0, -1, math.NaN(), math.Inf(1), math.Inf(-1), 1e-300, math.MaxFloat64}
		l.ForEach(func(x, _ float64) {
			thresholds = append(thresholds, x, math.Nextafter(x, 0), math.Nextafter(x, math.Inf(1)), x*0.995, x*1.005)
		})
		for range 2000 {
			thresholds = append(thresholds, math.Exp(rng.NormFloat64()*3+3))
		}
		for _, v := range thresholds {
			var got [1]float64
			if l.CountsAbove([]float64{v}, got[:]); got[0] != walk(l, v) {
				t.Fatalf("%v: CountsAbove(%v) = %v, walking the buckets %v", l, v, got[0], walk(l, v))
			}
		}
		// CountsAbove, several thresholds in one walk: groups of one to
		// six (more than it holds without allocating).
		for i := 0; i < len(thresholds); {
			vs := thresholds[i:min(len(thresholds), i+1+i%6)]
			got := make([]float64, len(vs))
			l.CountsAbove(vs, got)
			for j, v := range vs {
				if want := walk(l, v); got[j] != want {
					t.Fatalf("%v: CountsAbove(%v)[%d] = %v, walking the buckets %v", l, vs, j, got[j], want)
				}
			}
			i += len(vs)
		}
	}
}

// TestRebinTableMatchesBucketWalk: merging a sketch into one of another
// accuracy through the shared mappings' table puts every bucket where
// adding its representative value would, inside the table's range and
// out of it.
func TestRebinTableMatchesBucketWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, rel := range []float64{0.05, 0.02, 0.005} {
		src := NewLatency()
		for range 5000 {
			src.Add(math.Exp(rng.NormFloat64()*4 + 2))
		}
		src.Add(0)
		src.Add(1e-9) // below the table's range
		src.Add(1e13) // above it
		viaTable, walked := NewCompact(rel), NewCompact(rel)
		viaTable.Merge(NewCompact(rel)) // an empty merge first: nothing to add
		viaTable.Merge(src)
		if rebinTableFor(src.d.IndexMapping, viaTable.d.IndexMapping) == nil {
			t.Fatalf("rel %v: no table between two shared mappings", rel)
		}
		src.ForEach(func(v, n float64) { _ = walked.d.AddWithCount(v, n) })
		type bin struct{ v, n float64 }
		var a, b []bin
		viaTable.ForEach(func(v, n float64) { a = append(a, bin{v, n}) })
		walked.ForEach(func(v, n float64) { b = append(b, bin{v, n}) })
		if !slices.Equal(a, b) {
			t.Fatalf("rel %v: merged through the table\n%v\nbucket by bucket\n%v", rel, a, b)
		}
	}
	// A mapping of its own (as a decoded sketch may carry) gets no table.
	own, err := mapping.NewLogarithmicMapping(0.05)
	if err != nil {
		t.Fatal(err)
	}
	if rebinTableFor(own, mappingFor(0.05)) != nil {
		t.Error("a table for a mapping that is not shared")
	}
}
