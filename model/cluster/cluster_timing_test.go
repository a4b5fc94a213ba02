package cluster

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkFit is one refit of a series' baseline: a full sample of 96
// windows of seven features in two regimes (peak and off-peak).
func BenchmarkFit(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	pts := blobs(r, 48, 0.4, []float64{0, 1, 2, 0, 1, 0, 3}, []float64{2, 1.5, 2.5, 0.2, 1, 0, 3.5})
	b.ReportAllocs()
	for b.Loop() {
		Fit(pts, Options{MinSupport: 5, Seed: 9})
	}
}
