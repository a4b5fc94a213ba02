package cluster

import (
	"math"
	"math/rand/v2"
	"testing"
)

// blobs draws n points around each centre with standard deviation sd.
func blobs(r *rand.Rand, n int, sd float64, centres ...[]float64) [][]float64 {
	var pts [][]float64
	for _, c := range centres {
		for range n {
			p := make([]float64, len(c))
			for d := range c {
				p[d] = c[d] + sd*r.NormFloat64()
			}
			pts = append(pts, p)
		}
	}
	return pts
}

func TestFitChoosesTheNumberOfRegimes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name    string
		centres [][]float64
	}{
		{"one", [][]float64{{0, 0}}},
		{"peak and off-peak", [][]float64{{0, 0}, {3, 2}}},
		{"three", [][]float64{{0, 0}, {4, 0}, {0, 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pts := blobs(r, 30, 0.3, tc.centres...)
			res := Fit(pts, Options{Seed: 7})
			if res.K != len(tc.centres) {
				t.Fatalf("K = %d, want %d", res.K, len(tc.centres))
			}
			// Points from one blob share a label.
			for b := range tc.centres {
				first := res.Labels[b*30]
				for i := b * 30; i < (b+1)*30; i++ {
					if res.Labels[i] != first {
						t.Fatalf("blob %d split across clusters", b)
					}
				}
			}
		})
	}
}

func TestFitIgnoresMissingValuesAndSmallClusters(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	pts := blobs(r, 40, 0.2, []float64{0, 0, 0})
	for i := range pts {
		if i%3 == 0 {
			pts[i][2] = math.NaN()
		}
	}
	// Three outliers: fewer than MinSupport, so no cluster of their own.
	pts = append(pts, []float64{9, 9, 9}, []float64{9.1, 9, 9}, []float64{9, 9.1, 9})
	if res := Fit(pts, Options{Seed: 1, MinSupport: 5}); res.K != 1 {
		t.Fatalf("K = %d, want 1", res.K)
	}
}

func TestFitDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	pts := blobs(r, 20, 0.5, []float64{0, 0}, []float64{2, 2})
	a, b := Fit(pts, Options{Seed: 9}), Fit(pts, Options{Seed: 9})
	if a.K != b.K || a.BIC != b.BIC {
		t.Fatalf("two fits differ: %v vs %v", a.BIC, b.BIC)
	}
}
