package sim

import "math"

// rng is a small SplitMix64 generator. The simulator uses its own generator
// rather than math/rand so that its output depends only on the seed, never on
// the Go release. The zero value is usable but every stream is seeded through
// newRNG.
type rng struct{ s uint64 }

// Stream numbers keep the generator streams of one simulation apart: every
// trace has its own stream (its sequence number), so a fault that changes one
// trace's shape leaves the arrival process and every other trace untouched.
const (
	streamArrivals  = 1 << 62
	streamNoise     = 1<<62 + 1<<40
	streamInstances = 1<<62 + 1<<41
	// Batch job: one stream for arrivals, one per job request.
	streamJobArrivals = 1<<62 + 1<<42
	streamJobs        = 1<<62 + 1<<43
)

// newRNG returns the generator for one stream of a seed.
func newRNG(seed int64, stream uint64) rng {
	r := rng{s: uint64(seed) ^ mix64(stream+0x632be59bd9b4e019)}
	r.Uint64()
	return r
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Uint64 returns 64 pseudo-random bits.
func (r *rng) Uint64() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// Float64 returns a uniform value in [0, 1).
func (r *rng) Float64() float64 { return float64(r.Uint64()>>11) / (1 << 53) }

// IntN returns a uniform value in [0, n); n must be positive and below 2^31.
func (r *rng) IntN(n int) int { return int((r.Uint64() >> 32) * uint64(n) >> 32) }

// Normal returns a standard normal value (Box-Muller, one of the pair).
func (r *rng) Normal() float64 {
	u1 := 1 - r.Float64() // (0, 1]
	u2 := r.Float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// Exp returns an exponential value with mean 1.
func (r *rng) Exp() float64 { return -math.Log(1 - r.Float64()) }

// lognormal is a log-normal latency distribution given by its median (in
// nanoseconds) and the standard deviation of its logarithm. p99/p50 is
// exp(2.33*Sigma): 0.5 gives 3.2x, 0.7 gives 5x.
type lognormal struct {
	Median float64
	Sigma  float64
}

func (l lognormal) sample(r *rng) float64 {
	return l.Median * math.Exp(l.Sigma*r.Normal())
}

// ms returns a log-normal with the given median in milliseconds.
func ms(median, sigma float64) lognormal {
	return lognormal{Median: median * 1e6, Sigma: sigma}
}
