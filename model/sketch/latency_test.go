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
