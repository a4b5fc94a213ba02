package baseline

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/causeway/causeway/model/cluster"

	"github.com/causeway/causeway/model/splitmix"
)

// Config is shared by every Baseline of one kind of series. The zero value
// of each field means its default; Features is required.
type Config struct {
	Features []Feature
	// Threshold is the score (in regime spreads) from which a window is
	// anomalous. Default 4.
	Threshold float64
	// Consecutive is the run of suspect windows that opens an episode. A
	// window is suspect from Threshold/sqrt(Consecutive); the run opens an
	// episode once its combined evidence (sum of scores over sqrt of its
	// length, as in Stouffer's method) reaches Threshold. So a strong shift
	// opens after Consecutive windows, and so does a moderate one that
	// persists, which a per-window threshold would miss. Default 3.
	Consecutive int
	// Strong is the multiple of Threshold from which a single window
	// opens an episode at once, even while the sample is filling (once it
	// holds WarmUp windows): a tenfold slowdown or a dead callee needs no
	// second opinion. Only windows of StrongCalls calls or more qualify:
	// the mean of a handful says too little. Default 3.
	Strong float64
	// StrongCalls is the fewest calls a window needs to open an episode on
	// its own. Default 30.
	StrongCalls float64
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
	// Fill is how many windows the sample must hold before episodes may
	// open; until then every window is learned and the threshold is half
	// as high again. Default 48 (8 minutes of 10 s windows).
	Fill int
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
	// RecurAfter is how much event time (in the unit of Observe's at:
	// nanoseconds) must separate two episodes for the later to count as
	// a recurrence of the earlier. It is time, not windows observed: a
	// quiet series pooled over several windows observes fewer. Default 5
	// minutes.
	RecurAfter int64
	// RecurMatches is how many suspect windows of an earlier episode a
	// window must match to count as recurring. Default 3.
	RecurMatches int
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

	codec *codec // how vectors store each feature; set by defaults
}

func (c *Config) defaults() {
	if c.codec == nil || len(c.codec.linear) != len(c.Features) {
		c.codec = newCodec(c.Features)
	}
	if c.Threshold <= 0 {
		c.Threshold = 4
	}
	if c.Consecutive <= 0 {
		c.Consecutive = 3
	}
	if c.Strong <= 0 {
		c.Strong = 3
	}
	if c.StrongCalls <= 0 {
		c.StrongCalls = 30
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
	if c.Fill <= 0 {
		c.Fill = 48
	}
	if c.Fill > c.Sample {
		c.Fill = c.Sample
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
	if c.RecurAfter <= 0 {
		c.RecurAfter = int64(5 * time.Minute)
	}
	if c.RecurMatches <= 0 {
		c.RecurMatches = 3
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
	// Kind is the feature's Kind, for the code that reasons on it (Name is
	// for people). Beside Counts, it takes no room of its own.
	Kind Kind `json:"-"`
	// Calls, Hits and Horizon are set when the evidence accumulated over
	// several windows (a sequential test): Hits of Calls calls over the
	// Horizon were beyond the usual Over quantile ("p90", "p99"), or
	// failed when Over is empty. Z is then the statistic's equivalent
	// in standard deviations.
	Calls   int64         `json:"calls,omitempty"`
	Hits    int64         `json:"hits,omitempty"`
	Horizon time.Duration `json:"horizon,omitempty"`
	Over    string        `json:"over,omitempty"`
}

// Describe says what the feature shows in one phrase, e.g. "12 of 14
// calls over 2m0s above the usual p99 (median 412 ms vs 96 ms)".
func (fs FeatureScore) Describe() string {
	if fs.Calls == 0 {
		return fmt.Sprintf("%s %.3g vs %.3g expected (%.1f spreads)", fs.Name, fs.Current, fs.Expected, fs.Z)
	}
	what := "failed"
	if fs.Over != "" {
		what = "above the usual " + fs.Over
	}
	calls := "calls"
	if fs.Calls == 1 {
		calls = "call"
	}
	return fmt.Sprintf("%d of %d %s over %s %s (%s %.3g vs %.3g normally)", fs.Hits, fs.Calls, calls, fs.Horizon.Round(time.Second), what, fs.Name, fs.Current, fs.Expected)
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
	// Anomalous: Value reached the threshold in this window, or the window
	// belongs to a run of suspect windows whose combined evidence did.
	Anomalous bool `json:"anomalous"`
	// Active: the series is in an anomalous episode (Consecutive anomalous
	// windows seen, not yet Recover normal ones). Opened and Closed mark
	// the windows where an episode starts and ends.
	Active bool `json:"active"`
	Opened bool `json:"opened,omitempty"`
	Closed bool `json:"closed,omitempty"`
	// Warming: too few windows yet to judge.
	Warming bool `json:"warming,omitempty"`
	// Recurring: the window was off every regime but matched earlier
	// windows: normal ones in the sample (a mode too small to be a regime
	// of its own), or suspect windows of an earlier, separate episode. A
	// pattern that comes back (a batch job, a nightly cache flush) is
	// learned as normal rather than alarmed on each time.
	Recurring bool `json:"recurring,omitempty"`
	// Supporting: not anomalous on its own, but evidence has been
	// accumulating towards it (a sequential test half way to its
	// threshold). It may support an incident that other series opened,
	// never open one.
	Supporting bool `json:"supporting,omitempty"`
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

	sample   vectors // up to cfg.Sample vectors
	seen     int64   // normal windows offered to the sample
	regimes  []Regime
	sinceFit int
	rng      splitmix.Source

	run, calm int     // consecutive suspect windows; consecutive normal ones while active
	runSum    float64 // sum of the scores of the current run
	active    bool
	seq       int64 // windows observed
	runStart  int64 // seq of the first window of the current run

	recent     *ring
	quarantine *ring // recent suspect windows: At holds their time, Score their run's start; nil until the first
}

// quarantineSize is how many suspect windows are kept to recognise a
// pattern that recurs.
const quarantineSize = 24

// New returns an empty baseline. cfg is shared and must not change
// afterwards; seed makes its sampling reproducible (use a hash of the
// series name).
func New(cfg *Config, seed uint64) *Baseline {
	cfg.defaults()
	d := len(cfg.Features)
	return &Baseline{cfg: cfg, dims: d, rng: splitmix.Source(seed | 1), sample: vectors{c: cfg.codec}, recent: newRing(cfg.Recent, cfg.codec)}
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
	b.seq++
	var s Score
	var v verdict
	if len(b.regimes) == 0 {
		s.Warming = true
	} else {
		s, v = b.score(x, n)
	}
	if b.isSuspect(&s) && (b.familiar(x, &s) || b.recurs(at, x, &s)) {
		s.Recurring = true
	}
	suspect := b.advance(&s, n)
	if (s.Anomalous || s.Active) && !s.Warming {
		// Only a window someone will read about gets each feature's
		// values: most are normal, and judge drops them from those.
		b.describe(&s, x, n, v)
	}
	if suspect {
		if b.quarantine == nil { // most series never have a suspect window
			b.quarantine = newRing(quarantineSize, b.cfg.codec)
		}
		b.quarantine.push(at, x, float64(b.runStart), false)
	}
	switch {
	case b.filling():
		// Until the sample is full nothing is known to be abnormal: learn
		// every window, so what happens early (a batch run) is not
		// mistaken for a fault for ever after.
		b.learn(x, &s)
	case !suspect && !s.Active:
		b.learn(x, &s)
	}
	b.recent.push(at, x, s.Value, s.Anomalous)
	return s
}

// filling reports whether the sample holds fewer than Fill windows.
func (b *Baseline) filling() bool { return b.sample.len() < b.cfg.Fill }

// tail reports whether the named feature is a tail statistic.
func (b *Baseline) tail(name string) bool {
	for _, f := range b.cfg.Features {
		if f.Name == name {
			return f.Tail
		}
	}
	return false
}

// isSuspect reports whether a score is high enough to be part of a run.
func (b *Baseline) isSuspect(s *Score) bool {
	return !s.Warming && !s.Recurring && s.Value >= b.threshold()/math.Sqrt(float64(b.cfg.Consecutive))
}

// regimeOf returns the regime a score was judged against.
func (b *Baseline) regimeOf(s *Score) *Regime {
	for i := range b.regimes {
		if b.regimes[i].Name == s.Regime {
			return &b.regimes[i]
		}
	}
	return nil
}

// near reports whether x and the stored vector v are within two spreads of
// r on every feature both have; context features count only when withCtx.
func (b *Baseline) near(x, v []float64, r *Regime, withCtx bool) bool {
	for d := range b.dims {
		u := v[d]
		if !withCtx && b.cfg.Features[d].Direction == Context || math.IsNaN(u) || math.IsNaN(x[d]) {
			continue
		}
		if math.Abs(x[d]-u) > 2*r.Spread[d] {
			return false
		}
	}
	return true
}

// familiar reports whether suspect window x lies, load included, within
// two spreads of at least RecurMatches normal windows of the sample: a mode
// of normal too small to be a regime of its own is still normal.
func (b *Baseline) familiar(x []float64, s *Score) bool {
	r := b.regimeOf(s)
	if r == nil {
		return false
	}
	n := 0
	v := make([]float64, b.dims)
	for i := range b.sample.len() {
		if b.near(x, b.sample.row(i, v), r, true) {
			if n++; n >= b.cfg.RecurMatches {
				s.Explanation = fmt.Sprintf("off every regime but close to %d normal windows of the sample", n)
				return true
			}
		}
	}
	return false
}

// recurs reports whether suspect window x matches at least RecurMatches
// quarantined windows from an earlier run at least RecurAfter of event
// time before at, within two spreads of s's regime on every feature both have. If
// so, x and the windows it matched join the sample and the regimes are
// refitted at the next learned window: the pattern is normal now.
func (b *Baseline) recurs(at int64, x []float64, s *Score) bool {
	r := b.regimeOf(s)
	if r == nil {
		return false
	}
	current := b.seq
	if b.run > 0 {
		current = b.runStart
	}
	q := b.quarantine
	if q == nil {
		return false
	}
	var matched, fresh []int
	v := make([]float64, b.dims)
	for i := range q.at {
		if q.at[i] == 0 || int64(q.score[i]) == current || at-q.at[i] < b.cfg.RecurAfter {
			continue
		}
		if b.near(x, q.values.row(i, v), r, false) {
			matched = append(matched, i)
			if !q.anom[i] { // anom marks a quarantined window already adopted
				fresh = append(fresh, i)
			}
		}
	}
	if len(matched) < b.cfg.RecurMatches {
		return false
	}
	for _, i := range fresh {
		b.adopt(q.values.row(i, v))
		q.anom[i] = true
	}
	b.adopt(x)
	b.sinceFit = b.cfg.Recluster
	s.Explanation = fmt.Sprintf("recurring pattern: matches %d windows of an earlier episode; learned as normal", len(matched))
	return true
}

// adopt puts x into the sample for certain, replacing a random window
// when it is full.
func (b *Baseline) adopt(x []float64) {
	if b.sample.len() < b.cfg.Sample {
		b.reserve()
		b.sample.push(x)
		return
	}
	b.sample.set(int(b.rng.Uint64()%uint64(b.cfg.Sample)), x)
}

// reserve makes room for the whole sample, and no more, on first use.
func (b *Baseline) reserve() {
	if cap(b.sample.v) == 0 {
		b.sample = newVectors(b.cfg.codec, 0, b.cfg.Sample)
	}
}

// advance moves the episode state machine by one window and reports
// whether the window was suspect (kept out of learning).
func (b *Baseline) advance(s *Score, n float64) (suspect bool) {
	suspect = b.isSuspect(s)
	if suspect {
		if b.run == 0 {
			b.runStart = b.seq
		}
		b.run++
		b.runSum += s.Value
		b.calm = 0
		combined := b.runSum / math.Sqrt(float64(b.run))
		strong := s.Value >= b.cfg.Strong*b.threshold() && n >= b.cfg.StrongCalls && !b.tail(s.Feature) &&
			b.sample.len() >= b.cfg.WarmUp
		s.Anomalous = s.Value >= b.threshold() || b.run >= b.cfg.Consecutive && combined >= b.threshold()
		if !b.active && (strong || !b.filling() && b.run >= b.cfg.Consecutive && combined >= b.threshold()) {
			b.active, s.Opened = true, true
		}
	} else {
		b.run, b.runSum = 0, 0
		s.Anomalous = false
		if b.active {
			b.calm++
			if b.calm >= b.cfg.Recover {
				b.active, b.calm, s.Closed = false, 0, true
			}
		}
	}
	s.Active = b.active
	return suspect
}

// verdict is one regime's judgement of a window.
type verdict struct {
	regime   int       // index of the regime judging
	val      float64   // worst counted z against the load-adjusted expectation
	worst    int       // its feature, -1 when none counts
	ctx      float64   // squared distance on context features: how well the load matches
	expected []float64 // load-adjusted expectation per feature
}

// judge scores x against regime r.
func (b *Baseline) judge(x []float64, n float64, r *Regime) verdict {
	v := verdict{worst: -1, expected: make([]float64, b.dims)}
	shift := b.loadShift(x, r)
	for d := range b.dims {
		v.expected[d] = r.Centroid[d]
		if math.IsNaN(x[d]) || math.IsNaN(r.Centroid[d]) {
			continue
		}
		f := &b.cfg.Features[d]
		if f.Direction == Context {
			z := (x[d] - r.Centroid[d]) / r.Spread[d]
			v.ctx += z * z
			continue
		}
		if f.Scale == Log && shift != 0 {
			v.expected[d] += shift
			if shift < 0 {
				v.expected[d] = max(v.expected[d], b.floor(d))
			}
		}
		if z := (x[d] - v.expected[d]) / r.Spread[d]; z > v.val && f.effect(x[d], v.expected[d], n) {
			v.val, v.worst = z, d
		}
	}
	return v
}

// score judges x against every regime. The verdict is the most lenient
// regime's; when every regime finds the window anomalous, the one whose
// load matches best speaks, as it is the fairest comparison to show.
// describe adds each feature's values.
func (b *Baseline) score(x []float64, n float64) (Score, verdict) {
	vs := make([]verdict, len(b.regimes))
	best := 0
	for i := range b.regimes {
		vs[i] = b.judge(x, n, &b.regimes[i])
		if vs[i].val < vs[best].val || vs[i].val == vs[best].val && vs[i].ctx < vs[best].ctx {
			best = i
		}
	}
	thr := b.threshold()
	if vs[best].val >= thr/math.Sqrt(float64(b.cfg.Consecutive)) {
		for i := range vs {
			if vs[i].ctx < vs[best].ctx {
				best = i
			}
		}
	}
	r, v := &b.regimes[best], vs[best]
	v.regime = best
	s := Score{Value: v.val, Regime: r.Name}
	s.P = 0.5 * math.Erfc(s.Value/math.Sqrt2)
	if w := v.worst; w >= 0 {
		f := &b.cfg.Features[w]
		s.Feature = f.Name
		s.Explanation = fmt.Sprintf("%s %s vs %s expected in regime '%s' (%.1f spreads)",
			f.Name, f.format(x[w]), f.format(v.expected[w]), r.Name, (x[w]-v.expected[w])/r.Spread[w])
	}
	return s, v
}

// describe sets the features of s, the score of window x (n calls) with
// verdict v.
func (b *Baseline) describe(s *Score, x []float64, n float64, v verdict) {
	r := &b.regimes[v.regime]
	s.Features = make([]FeatureScore, 0, b.dims)
	for d := range b.dims {
		if math.IsNaN(x[d]) || math.IsNaN(r.Centroid[d]) {
			continue
		}
		f := &b.cfg.Features[d]
		z := (x[d] - v.expected[d]) / r.Spread[d]
		s.Features = append(s.Features, FeatureScore{Name: f.Name, Kind: f.Kind, Current: round3(f.shown(x[d])),
			Expected: round3(f.shown(v.expected[d])), Z: round3(z),
			Counts: f.Direction != Context && z > 0 && f.effect(x[d], v.expected[d], n)})
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// learn adds a normal window to the sample and to its regime, and
// re-clusters when due.
func (b *Baseline) learn(x []float64, s *Score) {
	b.seen++
	if b.sample.len() < b.cfg.Sample {
		b.reserve()
		b.sample.push(x)
	} else if p := float64(b.cfg.Sample) / float64(min(b.seen, int64(b.cfg.Horizon))); b.rng.Float64() < p {
		b.sample.set(int(b.rng.Uint64()%uint64(b.cfg.Sample)), x)
	}
	if s.Regime != "" {
		for i := range b.regimes {
			if b.regimes[i].Name == s.Regime {
				b.follow(&b.regimes[i], x)
			}
		}
	}
	b.sinceFit++
	if n := b.sample.len(); n >= b.cfg.WarmUp && (len(b.regimes) == 0 || b.sinceFit >= b.cfg.Recluster) {
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
	n := b.sample.len()
	pts := make([][]float64, n)
	flat := make([]float64, 2*n*b.dims) // the points' values, then their standardised ones
	for i := range pts {
		pts[i] = b.sample.row(i, flat[:b.dims:b.dims])
		flat = flat[b.dims:]
	}
	col := make([]float64, 0, n) // medianMAD's room
	// Cluster on standardised features, so no unit dominates.
	center, scale := make([]float64, b.dims), make([]float64, b.dims)
	minSpread := make([]float64, b.dims)
	for d := range b.dims {
		center[d], scale[d] = medianMAD(pts, nil, d, &col)
		scale[d] = max(scale[d], b.cfg.Features[d].MinSpread, 1e-9)
		minSpread[d] = b.cfg.Features[d].MinSpread / scale[d]
	}
	z := make([][]float64, n)
	for i, p := range pts {
		z[i] = flat[:b.dims:b.dims]
		flat = flat[b.dims:]
		for d := range p {
			z[i][d] = (p[d] - center[d]) / scale[d]
		}
	}
	res := cluster.Fit(z, cluster.Options{MaxK: b.cfg.MaxRegimes, MinSupport: max(5, n/20), MinSpread: minSpread, Seed: b.rng.Uint64()})

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
			m, s := medianMAD(pts, members, d, &col)
			r.Centroid[d], r.Spread[d] = m, max(s, b.cfg.Features[d].MinSpread)
		}
		regimes[k] = r
	}
	b.regimes = b.name(regimes)
}

// threshold is the score from which a window is anomalous: the configured
// one, raised by half while the sample is filling, when spreads rest on
// few windows and are easily too narrow.
func (b *Baseline) threshold() float64 {
	if b.filling() {
		return 1.5 * b.cfg.Threshold
	}
	return b.cfg.Threshold
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
// when members is nil) and a robust standard deviation: the larger of the
// scaled MAD and the scaled 10-90% range. scratch is room it may reuse.
func medianMAD(pts [][]float64, members []int, d int, scratch *[]float64) (float64, float64) {
	col := (*scratch)[:0]
	defer func() { *scratch = col }()
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
	// The 10-90% range catches a heavier tail than the MAD alone: latency
	// features have one, and an underestimated spread means false alarms.
	tail := (stat.Quantile(0.9, stat.LinInterp, col, nil) - stat.Quantile(0.1, stat.LinInterp, col, nil)) / 2.563
	for i := range col {
		col[i] = math.Abs(col[i] - med)
	}
	slices.Sort(col)
	return med, max(1.4826*stat.Quantile(0.5, stat.LinInterp, col, nil), tail)
}

// String renders the regimes on one line, for test failures.
func (b *Baseline) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "seen=%d sample=%d", b.seen, b.sample.len())
	for _, r := range b.regimes {
		fmt.Fprintf(&sb, " %s(w=%.2f", r.Name, r.Weight)
		for d, f := range b.cfg.Features {
			fmt.Fprintf(&sb, " %s=%s±%.3g", f.Name, f.format(r.Centroid[d]), r.Spread[d])
		}
		sb.WriteString(")")
	}
	return sb.String()
}
