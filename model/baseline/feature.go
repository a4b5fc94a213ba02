// Package baseline learns what normal looks like for one series of window
// feature vectors and scores each new window against it.
//
// Normal is a small set of regimes (peak and off-peak, a recurring batch
// job, cache warm or cold), found by clustering a bounded, time-decayed
// sample of past normal windows; each regime keeps a centroid, a robust
// spread and a weight. A window is scored against the regime that explains
// it best, feature by feature in that regime's own spread, counting only
// changes for the worse that are large enough to matter; features marked as
// context (request rate) only decide which regime applies, so a traffic
// surge whose latency matches a known peak regime is normal. Until enough
// windows exist, one regime from the median and MAD stands in.
//
// The package knows nothing of spans: callers name the features.
package baseline

import (
	"fmt"
	"math"
)

// Scale says how a feature's values relate to what people read.
type Scale uint8

// Scales.
const (
	// Linear values are shown as they are.
	Linear Scale = iota
	// Log values are natural logarithms of a positive quantity (latency in
	// ms, a rate); they are shown exponentiated.
	Log
)

// Direction says which way a feature goes wrong.
type Direction uint8

// Directions.
const (
	// Higher is worse: latency, error ratio, self time, network gap.
	Higher Direction = iota
	// Context features never count as anomalous themselves; they choose the
	// regime a window is judged against (request rate).
	Context
)

// Kind is the caller's label for what a feature measures. The package
// does not interpret it; it carries it into every FeatureScore so that
// callers reason on kinds, not on display names. Zero is unlabelled.
type Kind uint8

// Feature describes one dimension of the vectors a Baseline sees.
type Feature struct {
	Name      string // short name used in explanations: "p99", "error ratio"
	Kind      Kind   // the caller's label, copied into scores
	Unit      string // unit of the shown value: "ms", "%", "/s"
	Scale     Scale
	Direction Direction
	// MinSpread floors the spread of every regime, in the feature's own
	// (possibly log) units, so a near-constant history cannot make a tiny
	// change look huge.
	MinSpread float64
	// MinAbs and MinRel are the least change, in shown units and as a
	// fraction of the regime's value, that may count as anomalous: both
	// must be exceeded (e.g. +2 ms and +20%).
	MinAbs, MinRel float64
	// MinEvents, for a ratio, is the fewest events (value × window count)
	// that may count as anomalous, so one error in five calls is not an
	// incident.
	MinEvents float64
	// Percent shows the value multiplied by 100.
	Percent bool
	// Tail marks a tail statistic (p90, p99): a few slow calls move it, so
	// it needs persistence and never opens an episode on one window.
	Tail bool
}

// shown converts a value of the feature into the units people read.
func (f *Feature) shown(v float64) float64 {
	if f.Scale == Log {
		v = math.Exp(v)
	}
	if f.Percent {
		v *= 100
	}
	return v
}

// format renders a value for an explanation: "412 ms", "3.1%".
func (f *Feature) format(v float64) string {
	s := f.shown(v)
	var num string
	switch {
	case math.Abs(s) >= 100:
		num = fmt.Sprintf("%.0f", s)
	case math.Abs(s) >= 10:
		num = fmt.Sprintf("%.1f", s)
	default:
		num = fmt.Sprintf("%.2g", s)
	}
	if f.Unit == "%" {
		return num + "%"
	}
	return num + " " + f.Unit
}

// effect reports whether the change from expected to v is large enough to
// matter under the feature's minimum effect size; n is the window's count.
func (f *Feature) effect(v, expected, n float64) bool {
	a, b := f.shown(v), f.shown(expected)
	if f.MinAbs > 0 && a-b < f.MinAbs {
		return false
	}
	if f.MinRel > 0 && b > 0 && a < b*(1+f.MinRel) {
		return false
	}
	if f.MinEvents > 0 && v*n < f.MinEvents {
		return false
	}
	return true
}
