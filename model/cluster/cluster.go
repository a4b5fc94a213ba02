// Package cluster groups feature vectors into regimes: k-means with
// k-means++ seeding for each candidate number of clusters, the number
// chosen by the Bayesian information criterion of the diagonal Gaussian
// mixture the clusters imply. Missing values (NaN) are allowed and ignored
// dimension by dimension.
package cluster

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/stat"

	"github.com/causeway/causeway/model/splitmix"
)

// Options bound a fit. The zero value is usable.
type Options struct {
	// MaxK is the largest number of clusters tried. Default 4.
	MaxK int
	// MinSupport is the fewest points a cluster may have; a k that leaves
	// a smaller cluster is not chosen. Default 5.
	MinSupport int
	// MinSpread floors each dimension's standard deviation when computing
	// likelihoods, so a constant feature cannot make a cluster infinitely
	// likely. Indexed like the points' dimensions; missing entries mean 1e-3.
	MinSpread []float64
	// Seed makes the k-means++ seeding reproducible.
	Seed uint64
}

// Result is a fit: how many clusters, which point went where, and the
// information criterion that chose it.
type Result struct {
	K      int
	Labels []int // Labels[i] is point i's cluster, in [0, K)
	BIC    float64
}

// Fit clusters points (each of the same length). With fewer than
// 2*MinSupport points it returns a single cluster.
func Fit(points [][]float64, o Options) Result {
	if o.MaxK <= 0 {
		o.MaxK = 4
	}
	if o.MinSupport <= 0 {
		o.MinSupport = 5
	}
	n := len(points)
	best := Result{K: 1, Labels: make([]int, n)}
	if n == 0 {
		return best
	}
	best.BIC = bic(points, best.Labels, 1, o.MinSpread)
	rng := splitmix.Source(o.Seed | 1)
	for k := 2; k <= o.MaxK && k*o.MinSupport <= n; k++ {
		labels := kmeans(points, k, &rng)
		if !supported(labels, k, o.MinSupport) {
			continue
		}
		if b := bic(points, labels, k, o.MinSpread); b < best.BIC {
			best = Result{K: k, Labels: labels, BIC: b}
		}
	}
	return best
}

func supported(labels []int, k, min int) bool {
	counts := make([]int, k)
	for _, l := range labels {
		counts[l]++
	}
	return slices.Min(counts) >= min
}

// dist2 is the squared distance over the dimensions both points have.
func dist2(a, b []float64) float64 {
	var d float64
	for i := range a {
		if x := a[i] - b[i]; !math.IsNaN(x) {
			d += x * x
		}
	}
	return d
}

// kmeans runs Lloyd's algorithm from a k-means++ seeding.
func kmeans(points [][]float64, k int, rng *splitmix.Source) []int {
	n, dims := len(points), len(points[0])
	centers := make([][]float64, 0, k)
	centers = append(centers, slices.Clone(points[int(rng.Uint64()%uint64(n))]))
	d2 := make([]float64, n)
	for len(centers) < k {
		var sum float64
		for i, p := range points {
			d2[i] = math.Inf(1)
			for _, c := range centers {
				d2[i] = min(d2[i], dist2(p, c))
			}
			sum += d2[i]
		}
		pick, r := n-1, rng.Float64()*sum
		for i := range d2 {
			if r -= d2[i]; r <= 0 {
				pick = i
				break
			}
		}
		centers = append(centers, slices.Clone(points[pick]))
	}
	labels := make([]int, n)
	sums := make([]float64, k*dims) // per center and dimension
	cnts := make([]float64, k*dims)
	for iter := 0; iter < 50; iter++ {
		changed := false
		for i, p := range points {
			bestK, bestD := 0, math.Inf(1)
			for j, c := range centers {
				if d := dist2(p, c); d < bestD {
					bestK, bestD = j, d
				}
			}
			if labels[i] != bestK || iter == 0 {
				changed = changed || labels[i] != bestK
				labels[i] = bestK
			}
		}
		if !changed && iter > 0 {
			break
		}
		// Each center moves to the mean of its points, summed in the
		// points' order: one pass over them for every center.
		clear(sums)
		clear(cnts)
		for i, p := range points {
			at := labels[i] * dims
			for d, x := range p {
				if !math.IsNaN(x) {
					sums[at+d] += x
					cnts[at+d]++
				}
			}
		}
		for j := range centers {
			for d := range dims {
				if c := cnts[j*dims+d]; c > 0 {
					centers[j][d] = sums[j*dims+d] / c
				}
			}
		}
	}
	return labels
}

// bic is the Bayesian information criterion of the diagonal Gaussian
// mixture with one component per cluster: lower is better.
func bic(points [][]float64, labels []int, k int, minSpread []float64) float64 {
	n, dims := len(points), len(points[0])
	var ll float64
	col := make([]float64, 0, n)
	for j := 0; j < k; j++ {
		members := 0
		for _, l := range labels {
			if l == j {
				members++
			}
		}
		logw := math.Log(float64(members) / float64(n))
		ll += float64(members) * logw
		for d := 0; d < dims; d++ {
			col = col[:0]
			for i, p := range points {
				if labels[i] == j && !math.IsNaN(p[d]) {
					col = append(col, p[d])
				}
			}
			if len(col) == 0 {
				continue
			}
			mean, variance := stat.PopMeanVariance(col, nil)
			floor := 1e-3
			if d < len(minSpread) && minSpread[d] > 0 {
				floor = minSpread[d]
			}
			variance = max(variance, floor*floor)
			norm := -0.5 * math.Log(2*math.Pi*variance)
			for _, x := range col {
				ll += norm - (x-mean)*(x-mean)/(2*variance)
			}
		}
	}
	params := float64(k*2*dims + k - 1)
	return -2*ll + params*math.Log(float64(n))
}
