package sketch

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch"
)

// TestIndexTableMatchesMapping cross-checks the table against the
// library's logarithmic mapping it stands for: at every bucket boundary
// in its range and a few floats either side, at the first and last value
// of every row, and at a million log-uniform values.
func TestIndexTableMatchesMapping(t *testing.T) {
	m := defaultMapping
	check := func(v float64) {
		t.Helper()
		got, ok := defaultIndex.index(v)
		if !ok {
			t.Fatalf("%v (bits %x) is outside the table", v, math.Float64bits(v))
		}
		if want := m.Index(v); got != want {
			t.Fatalf("index of %v (bits %x) is %d, mapping says %d", v, math.Float64bits(v), got, want)
		}
	}
	lo, hi := m.Index(indexRange[0])+1, m.Index(indexRange[1])
	for i := lo; i <= hi; i++ {
		b := math.Float64bits(m.LowerBound(i))
		for d := uint64(0); d <= 6; d++ {
			check(math.Float64frombits(b + d - 3))
		}
	}
	for r := range defaultIndex.rows {
		start := uint64(defaultIndex.first+r) << rowShift
		if v := math.Float64frombits(start); v >= indexRange[0] && v <= indexRange[1] {
			check(v)
			check(math.Float64frombits(start + 1<<rowShift - 1))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	span := math.Log(indexRange[1] / indexRange[0])
	for range 1_000_000 {
		check(indexRange[0] * math.Exp(rng.Float64()*span))
	}
	for _, v := range []float64{0, -1, math.NaN(), math.Inf(1), indexRange[0] / 4, indexRange[1] * 4, 5e-324} {
		if _, ok := defaultIndex.index(v); ok {
			t.Fatalf("%v is inside the table", v)
		}
	}
}

// A window's sketch (NewLatency, indexed through the table) holds the
// same buckets as the library's DDSketch fed the same values, including
// zeros and values beyond the table's range.
func TestWindowSketchMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for run := range 20 {
		got := NewLatency()
		want, _ := ddsketch.NewDefaultDDSketch(RelativeAccuracy)
		centre := math.Exp(rng.NormFloat64() * 4)
		for range 2000 {
			v := centre * math.Exp(rng.NormFloat64()*float64(run%5))
			switch rng.IntN(100) {
			case 0:
				v = 0
			case 1:
				v = indexRange[1] * 10
			case 2:
				v = indexRange[0] / 10
			}
			got.Add(v)
			_ = want.Add(v)
		}
		var g, w []bin
		got.d.GetPositiveValueStore().ForEach(func(i int, c float64) bool { g = append(g, bin{i, c}); return false })
		want.GetPositiveValueStore().ForEach(func(i int, c float64) bool { w = append(w, bin{i, c}); return false })
		if !slices.Equal(g, w) || got.d.GetZeroCount() != want.GetZeroCount() {
			t.Fatalf("run %d: bins %v zero %v, library %v zero %v", run, g, got.d.GetZeroCount(), w, want.GetZeroCount())
		}
		for _, q := range []float64{0.01, 0.5, 0.9, 0.99} {
			wv, _ := want.GetValueAtQuantile(q)
			if gv := got.Quantile(q); math.Abs(gv-wv) > 1e-9*wv && gv != got.st.Min() && gv != got.st.Max() {
				t.Fatalf("run %d: q%v %v, library %v", run, q, gv, wv)
			}
		}
	}
}

// The shared mappings' value tables hold what the mappings compute, and
// Quantile, which reads them, answers as the library's
// GetValueAtQuantile (clamped to the exact extremes) for sketches of
// every accuracy, zeros and values beyond the tables included.
func TestValueTablesAndQuantile(t *testing.T) {
	for _, rel := range []float64{RelativeAccuracy, 0.02, 0.05} {
		m := mappingFor(rel)
		lo, hi := m.Index(indexRange[0])-3, m.Index(indexRange[1])+3
		for i := lo; i <= hi; i++ {
			if got, want := value(m, i), m.Value(i); got != want {
				t.Fatalf("accuracy %v: value of bucket %d is %v, mapping says %v", rel, i, got, want)
			}
		}
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for run := range 30 {
		var l *Latency
		switch run % 3 {
		case 0:
			l = NewLatency()
		case 1:
			l = NewCompact(0.02)
		default:
			l = NewCompact(0.05)
		}
		for range 1 + rng.IntN(500) {
			v := math.Exp(rng.NormFloat64()*3 + 2)
			switch rng.IntN(50) {
			case 0:
				v = 0
			case 1:
				v = indexRange[1] * 100
			}
			l.Add(v)
		}
		for _, q := range []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1, -0.1, 1.1, math.NaN()} {
			want, err := l.d.GetValueAtQuantile(q)
			if err != nil {
				want = math.NaN()
			} else {
				want = min(max(want, l.st.Min()), l.st.Max())
			}
			if got := l.Quantile(q); got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Fatalf("run %d: q%v = %v, library %v", run, q, got, want)
			}
		}
	}
	if !math.IsNaN(NewLatency().Quantile(0.5)) {
		t.Fatal("an empty sketch has a median")
	}
}
