package baseline

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Every stored value comes back within the precision vectors.go promises,
// missing values stay missing, and snapshots round-trip exactly.
func TestVectorsPrecision(t *testing.T) {
	features := []Feature{
		{Name: "p50", Scale: Log, MinSpread: 0.04},
		{Name: "error ratio", Percent: true, MinSpread: 0.01},
		{Name: "gap", Unit: "ms", MinSpread: 0.3},
	}
	r := rand.New(rand.NewPCG(7, 8))
	vs := newVectors(newCodec(features), 0, 1000)
	var want [][]float64
	for range 1000 {
		x := []float64{
			math.Log(math.Exp(r.Float64()*22 - 7)), // 0.001 ms to an hour
			r.Float64(),
			(r.Float64()*2 - 1) * math.Exp(r.Float64()*15), // either sign, to 55 minutes
		}
		if r.IntN(10) == 0 {
			x[r.IntN(3)] = math.NaN()
		}
		vs.push(x)
		want = append(want, x)
	}
	got := make([]float64, 3)
	for i, x := range want {
		vs.row(i, got)
		for d := range x {
			if math.IsNaN(x[d]) != math.IsNaN(got[d]) {
				t.Fatalf("vector %d feature %d: %v stored as %v", i, d, x[d], got[d])
			}
		}
		// A log-scale value: within 0.4% of the latency, a tenth of the
		// narrowest spread.
		if e := math.Abs(got[0] - x[0]); e > 0.004 || e > features[0].MinSpread/10 {
			t.Fatalf("log value %v stored as %v", x[0], got[0])
		}
		if e := math.Abs(got[1] - x[1]); e > 0.0005 {
			t.Fatalf("ratio %v stored as %v", x[1], got[1])
		}
		// A linear value: within 0.01 ms below a few ms, 0.2% to 1.5 s,
		// 0.4% beyond.
		bound := 0.002
		if math.Abs(x[2]) > 1490 { // sinh(8): the next binade
			bound = 0.004
		}
		if e := math.Abs(got[2] - x[2]); !math.IsNaN(x[2]) && e > max(bound*math.Abs(x[2]), 0.01) {
			t.Fatalf("gap %v stored as %v", x[2], got[2])
		}
	}
	snap := vs.float32s()
	back := vectors{c: vs.c}
	back.setFloat32s(snap, 1000)
	if !slices.Equal(back.v, vs.v) {
		t.Fatal("a snapshot's values do not restore the same half-precision values")
	}
}

// The sample holds half-precision vectors, a quarter of float64's memory,
// and a whole sample is allocated once.
func TestSampleAllocatedOnce(t *testing.T) {
	cfg := &Config{Features: []Feature{{Name: "a", Scale: Log, MinSpread: 0.1}, {Name: "b", MinSpread: 0.1}}}
	b := New(cfg, 1)
	for i := range 200 {
		b.Observe(int64(i), []float64{1 + 0.01*float64(i%7), 2}, 100)
	}
	if b.sample.len() != 96 || cap(b.sample.v) != 96*2 {
		t.Fatalf("sample of %d vectors in room for %d values", b.sample.len(), cap(b.sample.v))
	}
}
