package baseline

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/gonum/stat"

	"github.com/causeway/causeway/model/cluster"
)

// Config is shared by every Baseline of one kind of series. The zero value
// of each field means its default; Features is required.
type Config struct {
	Features []Feature
	// Threshold is the score (in regime spreads) from which a window is
	// anomalous. Default 4.
	Threshold float64
	// Consecutive anomalous windows open an episode. Default 2.
	Consecutive int
	// Recover is how many normal windows in a row close an episode.
	// Default 3.
	Recover int
	// WarmUp is how many normal windows are needed before scoring starts;
	// until then, and until clustering has enough points, one regime from
	// the median and MAD stands in. Default 12.
	WarmUp int
	// Recluster is how many learned windows pass between re-clusterings;
	// in between, regimes follow the data online. Default 30.
	Recluster int
	// MaxRegimes bounds the regimes found. Default 4.
	MaxRegimes int
	// Sample is how many past normal windows are kept for clustering.
	// Default 96.
	Sample int
	// Horizon is how many windows of history the sample represents: once
	// more have been seen, each new normal window replaces a random old
	// one with probability Sample/Horizon. Default 2160 (6 hours of 10 s
	// windows).
	Horizon int
	// Recent is how many of the latest windows are kept, with their
	// scores, to show. Default 30.
	Recent int
	// Learn is the weight of a new normal window in its regime's online
	// update. Default 0.02.
	Learn float64
	// Elasticity is how a log-scale feature that goes wrong upwards
	// (latency) follows load between and beyond regimes. When the first
	// context feature (log rate) is above a regime's by more than its
	// spread, the expected value rises by Elasticity times the excess: with
	// 0.5, three times the traffic may bring sqrt(3) = 1.73 times the
	// latency (queues do this; it is not a fault). When it is below, the
	// expected value falls likewise, but never under the quietest regime's,
	// so peak latency at off-peak load is judged as the fault it is.
	// Default 0.5; negative disables it.
	Elasticity float64
}

func (c *Config) defaults() {
	if c.Threshold <= 0 {
		c.Threshold = 4
	}
	if c.Consecutive <= 0 {
		c.Consecutive = 2
	}
	if c.Recover <= 0 {
		c.Recover = 3
	}
	if c.WarmUp <= 0 {
		c.WarmUp = 12
	}
	if c.Recluster <= 0 {
		c.Recluster = 30
	}
	if c.MaxRegimes <= 0 {
		c.MaxRegimes = 4
	}
	if c.Sample <= 0 {
		c.Sample = 96
	}
	if c.Horizon <= 0 {
		c.Horizon = 2160
	}
	if c.Recent <= 0 {
		c.Recent = 30
	}
	if c.Learn <= 0 {
		c.Learn = 0.02
	}
	if c.Elasticity == 0 {
		c.Elasticity = 0.5
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if len(c.Features) == 0 {
		return fmt.Errorf("baseline: no features")
	}
	for i, f := range c.Features {
		if f.Name == "" {
			return fmt.Errorf("baseline: feature %d has no name", i)
		}
	}
	return nil
}

// Regime is one normal mode of a series.
type Regime struct {
	Name     string    `json:"name"`
	Centroid []float64 `json:"centroid"`
	Spread   []float64 `json:"spread"`
	Weight   float64   `json:"weight"`
}

// FeatureScore is one feature of a scored window.
type FeatureScore struct {
	Name     string  `json:"name"`
	Current  float64 `json:"current"`  // shown units
	Expected float64 `json:"expected"` // the regime's centroid, shown units
	Z        float64 `json:"z"`        // (current - expected) / spread, in the feature's own units
	Counts   bool    `json:"counts"`   // a change for the worse beyond the minimum effect
}

// Score is the verdict on one window.
type Score struct {
	// Value is how far the window is, in the best regime's spreads, beyond
	// it on its worst feature (only changes for the worse beyond the
	// minimum effect count); 0 when normal or warming up.
	Value float64 `json:"score"`
	// P is the upper tail probability of Value under a standard normal: a
	// calibrated "how surprising".
	P float64 `json:"p"`
	// Anomalous: Value reached the threshold in this window.
	Anomalous bool `json:"anomalous"`
	// Active: the series is in an anomalous episode (Consecutive anomalous
	// windows seen, not yet Recover normal ones). Opened and Closed mark
	// the windows where an episode starts and ends.
	Active bool `json:"active"`
	Opened bool `json:"opened,omitempty"`
	Closed bool `json:"closed,omitempty"`
	// Warming: too few windows yet to judge.
	Warming bool `json:"warming,omitempty"`
	// Regime is the regime the window was judged against.
	Regime string `json:"regime,omitempty"`
	// Feature is the worst feature; Explanation says it in words:
	// "p99 412 ms vs 96 ms in regime 'peak'".
	Feature     string         `json:"feature,omitempty"`
	Explanation string         `json:"explanation,omitempty"`
	Features    []FeatureScore `json:"features,omitempty"`
}

// Baseline learns one series. It is not safe for concurrent use.
type Baseline struct {
	cfg  *Config
	dims int

	sample   []float32 // up to cfg.Sample vectors, flat
	seen     int64     // normal windows offered to the sample
	regimes  []Regime
	sinceFit int
	rng      uint64

	run, calm int // consecutive anomalous windows; consecutive normal ones while active
	active    bool

	recent *ring
}

// New returns an empty baseline. cfg is shared and must not change
// afterwards; seed makes its sampling reproducible (use a hash of the
// series name).
func New(cfg *Config, seed uint64) *Baseline {
	cfg.defaults()
	d := len(cfg.Features)
	return &Baseline{cfg: cfg, dims: d, rng: seed | 1, recent: newRing(cfg.Recent, d)}
}

// Regimes returns the current regimes, lowest context (rate) first. The
// result is a copy.
func (b *Baseline) Regimes() []Regime {
	out := make([]Regime, len(b.regimes))
	for i, r := range b.regimes {
		out[i] = Regime{Name: r.Name, Centroid: slices.Clone(r.Centroid), Spread: slices.Clone(r.Spread), Weight: r.Weight}
	}
	return out
}

// Observe scores the window x (one value per feature, NaN when missing)
// with n observations behind it (calls in the window), then learns from it
// if it was normal. at is the window's time, kept with the recent windows.
func (b *Baseline) Observe(at int64, x []float64, n float64) Score {
	if len(x) != b.dims {
		panic(fmt.Sprintf("baseline: %d values for %d features", len(x), b.dims))
	}
	var s Score
	if len(b.regimes) == 0 {
		s.Warming = true
	} else {
		s = b.score(x, n)
	}
	b.advance(&s)
	if !s.Anomalous && !s.Active {
		b.learn(x, &s)
	}
	b.recent.push(at, x, s.Value, s.Anomalous)
	return s
}

// advance moves the episode state machine by one window.
func (b *Baseline) advance(s *Score) {
	if s.Anomalous {
		b.run++
		b.calm = 0
		if !b.active && b.run >= b.cfg.Consecutive {
			b.active, s.Opened = true, true
		}
	} else {
		b.run = 0
		if b.active {
			b.calm++
			if b.calm >= b.cfg.Recover {
				b.active, b.calm, s.Closed = false, 0, true
			}
		}
	}
	s.Active = b.active
}

// score judges x against every regime and keeps the most lenient verdict.
func (b *Baseline) score(x []float64, n float64) Score {
	best, bestVal, bestDist := -1, math.Inf(1), math.Inf(1)
	worst := make([]int, len(b.regimes))
	for ri := range b.regimes {
		r := &b.regimes[ri]
		shift := b.loadShift(x, r)
		val, dist := 0.0, 0.0
		worst[ri] = -1
		for d := range b.dims {
			if math.IsNaN(x[d]) || math.IsNaN(r.Centroid[d]) {
				continue
			}
			f := &b.cfg.Features[d]
			z := (x[d] - r.Centroid[d]) / r.Spread[d]
			dist += z * z
			if f.Direction == Context {
				continue
			}
			expected := r.Centroid[d]
			if f.Scale == Log && shift != 0 {
				expected += shift
				if shift < 0 {
					expected = max(expected, b.floor(d))
				}
			}
			if z := (x[d] - expected) / r.Spread[d]; z > val && f.effect(x[d], expected, n) {
				val, worst[ri] = z, d
			}
		}
		if val < bestVal || val == bestVal && dist < bestDist {
			best, bestVal, bestDist = ri, val, dist
		}
	}
	r := &b.regimes[best]
	s := Score{Value: bestVal, Regime: r.Name}
	s.P = 0.5 * math.Erfc(s.Value/math.Sqrt2)
	s.Anomalous = s.Value >= b.cfg.Threshold
	s.Features = make([]FeatureScore, 0, b.dims)
	for d := range b.dims {
		if math.IsNaN(x[d]) || math.IsNaN(r.Centroid[d]) {
			continue
		}
		f := &b.cfg.Features[d]
		z := (x[d] - r.Centroid[d]) / r.Spread[d]
		s.Features = append(s.Features, FeatureScore{Name: f.Name, Current: round3(f.shown(x[d])),
			Expected: round3(f.shown(r.Centroid[d])), Z: round3(z),
			Counts: f.Direction != Context && z > 0 && f.effect(x[d], r.Centroid[d], n)})
	}
	if w := worst[best]; w >= 0 {
		f := &b.cfg.Features[w]
		s.Feature = f.Name
		s.Explanation = fmt.Sprintf("%s %s vs %s in regime '%s' (%.1f spreads)",
			f.Name, f.format(x[w]), f.format(r.Centroid[w]), r.Name, (x[w]-r.Centroid[w])/r.Spread[w])
	}
	return s
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// learn adds a normal window to the sample and to its regime, and
// re-clusters when due.
func (b *Baseline) learn(x []float64, s *Score) {
	b.seen++
	k := len(b.sample) / max(1, b.dims)
	switch {
	case k < b.cfg.Sample:
		for _, v := range x {
			b.sample = append(b.sample, float32(v))
		}
	default:
		p := float64(b.cfg.Sample) / float64(min(b.seen, int64(b.cfg.Horizon)))
		if b.uniform() < p {
			slot := int(b.next() % uint64(b.cfg.Sample))
			for d, v := range x {
				b.sample[slot*b.dims+d] = float32(v)
			}
		}
	}
	if s.Regime != "" {
		for i := range b.regimes {
			if b.regimes[i].Name == s.Regime {
				b.follow(&b.regimes[i], x)
			}
		}
	}
	b.sinceFit++
	if n := len(b.sample) / b.dims; n >= b.cfg.WarmUp && (len(b.regimes) == 0 || b.sinceFit >= b.cfg.Recluster) {
		b.fit()
	}
}

// follow moves a regime towards a normal window: an exponentially weighted
// mean and variance, the spread floored by the feature's minimum.
func (b *Baseline) follow(r *Regime, x []float64) {
	a := b.cfg.Learn
	for d := range b.dims {
		if math.IsNaN(x[d]) {
			continue
		}
		if math.IsNaN(r.Centroid[d]) { // first value of a feature the regime lacked
			r.Centroid[d], r.Spread[d] = x[d], b.cfg.Features[d].MinSpread
			continue
		}
		diff := x[d] - r.Centroid[d]
		r.Centroid[d] += a * diff
		r.Spread[d] = max(b.cfg.Features[d].MinSpread, math.Sqrt((1-a)*r.Spread[d]*r.Spread[d]+a*diff*diff))
	}
}

// fit re-clusters the sample into regimes.
func (b *Baseline) fit() {
	b.sinceFit = 0
	n := len(b.sample) / b.dims
	pts := make([][]float64, n)
	for i := range pts {
		p := make([]float64, b.dims)
		for d := range p {
			p[d] = float64(b.sample[i*b.dims+d])
		}
		pts[i] = p
	}
	// Cluster on standardised features, so no unit dominates.
	center, scale := make([]float64, b.dims), make([]float64, b.dims)
	minSpread := make([]float64, b.dims)
	for d := range b.dims {
		center[d], scale[d] = medianMAD(pts, nil, d)
		scale[d] = max(scale[d], b.cfg.Features[d].MinSpread, 1e-9)
		minSpread[d] = b.cfg.Features[d].MinSpread / scale[d]
	}
	z := make([][]float64, n)
	for i, p := range pts {
		z[i] = make([]float64, b.dims)
		for d := range p {
			z[i][d] = (p[d] - center[d]) / scale[d]
		}
	}
	res := cluster.Fit(z, cluster.Options{MaxK: b.cfg.MaxRegimes, MinSupport: max(5, n/20), MinSpread: minSpread, Seed: b.next()})

	regimes := make([]Regime, res.K)
	for k := range regimes {
		var members []int
		for i, l := range res.Labels {
			if l == k {
				members = append(members, i)
			}
		}
		r := Regime{Centroid: make([]float64, b.dims), Spread: make([]float64, b.dims), Weight: float64(len(members)) / float64(n)}
		for d := range b.dims {
			m, s := medianMAD(pts, members, d)
			r.Centroid[d], r.Spread[d] = m, max(s, b.cfg.Features[d].MinSpread)
		}
		regimes[k] = r
	}
	b.regimes = b.name(regimes)
}

// loadShift is how far (in log units) the load difference between x and
// regime r moves the expected value of log-scale features: Elasticity
// times the first context feature's distance from the regime beyond one
// spread, up or down.
func (b *Baseline) loadShift(x []float64, r *Regime) float64 {
	if b.cfg.Elasticity < 0 {
		return 0
	}
	for d, f := range b.cfg.Features {
		if f.Direction != Context || f.Scale != Log {
			continue
		}
		if math.IsNaN(x[d]) || math.IsNaN(r.Centroid[d]) {
			return 0
		}
		switch diff := x[d] - r.Centroid[d]; {
		case diff > r.Spread[d]:
			return b.cfg.Elasticity * (diff - r.Spread[d])
		case diff < -r.Spread[d]:
			return b.cfg.Elasticity * (diff + r.Spread[d])
		}
		return 0
	}
	return 0
}

// floor is the lowest regime centroid of feature d: load falling below a
// regime never lowers the expectation further than the quietest normal.
func (b *Baseline) floor(d int) float64 {
	f := math.Inf(1)
	for _, r := range b.regimes {
		if !math.IsNaN(r.Centroid[d]) {
			f = min(f, r.Centroid[d])
		}
	}
	return f
}

// name orders regimes by their first context feature (load) and names them.
func (b *Baseline) name(rs []Regime) []Regime {
	ctx := -1
	for d, f := range b.cfg.Features {
		if f.Direction == Context {
			ctx = d
			break
		}
	}
	if ctx >= 0 {
		slices.SortStableFunc(rs, func(a, c Regime) int {
			switch {
			case a.Centroid[ctx] < c.Centroid[ctx]:
				return -1
			case a.Centroid[ctx] > c.Centroid[ctx]:
				return 1
			}
			return 0
		})
	}
	names := map[int][]string{1: {"normal"}, 2: {"off-peak", "peak"}, 3: {"low", "mid", "peak"}, 4: {"low", "mid", "high", "peak"}}[len(rs)]
	for i := range rs {
		if i < len(names) {
			rs[i].Name = names[i]
		} else {
			rs[i].Name = fmt.Sprintf("regime-%d", i+1)
		}
	}
	return rs
}

// medianMAD returns the median of dimension d over the members (all points
// when members is nil) and the MAD scaled to a standard deviation.
func medianMAD(pts [][]float64, members []int, d int) (float64, float64) {
	var col []float64
	add := func(i int) {
		if v := pts[i][d]; !math.IsNaN(v) {
			col = append(col, v)
		}
	}
	if members == nil {
		for i := range pts {
			add(i)
		}
	} else {
		for _, i := range members {
			add(i)
		}
	}
	if len(col) == 0 {
		return math.NaN(), 0
	}
	slices.Sort(col)
	med := stat.Quantile(0.5, stat.LinInterp, col, nil)
	for i := range col {
		col[i] = math.Abs(col[i] - med)
	}
	slices.Sort(col)
	return med, 1.4826 * stat.Quantile(0.5, stat.LinInterp, col, nil)
}

// next is splitmix64; the state is part of the snapshot, so a restored
// baseline samples exactly as the original would have.
func (b *Baseline) next() uint64 {
	b.rng += 0x9e3779b97f4a7c15
	z := b.rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (b *Baseline) uniform() float64 { return float64(b.next()>>11) / (1 << 53) }

// String renders the regimes on one line, for test failures.
func (b *Baseline) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "seen=%d sample=%d", b.seen, len(b.sample)/max(1, b.dims))
	for _, r := range b.regimes {
		fmt.Fprintf(&sb, " %s(w=%.2f", r.Name, r.Weight)
		for d, f := range b.cfg.Features {
			fmt.Fprintf(&sb, " %s=%s±%.3g", f.Name, f.format(r.Centroid[d]), r.Spread[d])
		}
		sb.WriteString(")")
	}
	return sb.String()
}
