// Package evidence accumulates, window after window, the evidence that a
// series has left its reference, so that a decision can be made at any
// traffic rate: one slow call on a quiet edge is nothing, a dozen in two
// minutes are significant, and a busy edge gets there in seconds.
//
// The test is Page's one-sided CUSUM of log-likelihood ratios. Each window
// contributes the log-likelihood ratio of how its calls fell into
// categories (within the usual p90, between p90 and p99, beyond p99; or
// succeeded and failed) under an alternative that describes an effect
// worth an alarm, against the reference probabilities. The statistic never
// goes below zero, drifts down while the series behaves, and rises by
// about the information in each call once it does not; crossing a
// threshold h is significant at roughly e^-h per window.
//
// Calls within one window are not independent draws: they share the
// moment's load, garbage collections and noisy neighbours. A window's
// calls therefore count as their effective sample size under an
// intra-window correlation (Kish's design effect), so a busy window weighs
// as a handful of independent calls, never as thousands.
//
// The package knows nothing of spans or latency: callers give counts.
package evidence

import "math"

// LLR returns the log-likelihood ratio of counts (calls per category)
// under the alternative p1 against the reference p0, both probability
// vectors over the same categories, scaled to the calls' effective sample
// size under intra-window correlation rho.
func LLR(counts, p0, p1 []float64, rho float64) float64 {
	var n, llr float64
	for i, k := range counts {
		if k == 0 {
			continue
		}
		n += k
		llr += k * math.Log(p1[i]/p0[i])
	}
	if n == 0 {
		return 0
	}
	return llr * Effective(n, rho) / n
}

// Effective is the effective sample size of n calls that share a window
// with intra-window correlation rho: n / (1 + (n-1) rho), which is n for
// a single call and tends to 1/rho for many.
func Effective(n, rho float64) float64 {
	if n <= 0 {
		return 0
	}
	return n / (1 + (n-1)*rho)
}

// CUSUM is the state of one sequential test and of the run of windows
// behind its statistic: the run starts when the statistic leaves zero and
// ends when it returns there. The zero value is a test with no evidence.
type CUSUM struct {
	// S is the statistic: accumulated log-likelihood ratio, never negative.
	S float64
	// Start is when the run's first window began (unix nanoseconds), 0
	// when there is no run.
	Start int64
	// Windows, Calls and Hits describe the run: windows with calls, their
	// calls, and the calls in the categories that point to the
	// alternative (slow or failed).
	Windows int32
	Calls   float32
	Hits    float32
	// Far counts, of the hits, those in the most extreme category (beyond
	// the usual p99), when the test has one.
	Far float32
}

// Step adds one window's log-likelihood ratio and its counts, starting at
// at (unix nanoseconds). It reports whether the statistic is positive
// after it, that is whether a run is under way.
func (c *CUSUM) Step(llr float64, at int64, calls, hits, far float64) bool {
	if c.S == 0 && llr <= 0 {
		return false
	}
	if c.S == 0 {
		*c = CUSUM{Start: at}
	}
	c.S += llr
	if c.S <= 0 {
		*c = CUSUM{}
		return false
	}
	c.Windows++
	c.Calls += float32(calls)
	c.Hits += float32(hits)
	c.Far += float32(far)
	return true
}

// Reset clears the statistic and the run.
func (c *CUSUM) Reset() { *c = CUSUM{} }
