package baselines

import (
	"fmt"
	"math"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/baseline"
	"github.com/causeway/causeway/model/evidence"
	"github.com/causeway/causeway/model/sketch"
)

// The sequential check: evidence that accumulates, for every series at
// any rate, until it is significant (model/evidence). It complements the
// regime baselines, which judge each window on its own and need a handful
// of calls in it: an edge called once a minute never has that, a busy one
// does every window.
//
// Each series keeps a reference of the calls it made while normal (a
// coarse latency sketch, and decayed counts of calls and errors). Each
// window's calls are sorted into categories against it — within the usual
// p90, between the usual p90 and p99, beyond the usual p99 (each with a
// minimum effect); succeeded or failed — and the windows' log-likelihood
// ratios of "a clear shift" against "as usual" accumulate in a CUSUM. A
// series is anomalous once the statistic crosses SeqThreshold. Calls are held back from the reference while a
// run is undecided: learned when it fades, dropped when it alarms.
const (
	// SeqThreshold is the CUSUM threshold h, in nats: under the reference
	// a series crosses it about once in e^h windows.
	SeqThreshold = 12
	// SeqWarmUp is how much event time must have passed since the first
	// window before any series alarms: until then every window is
	// learned, so whatever happens early (a job's first run) is known
	// when it recurs.
	SeqWarmUp = 10 * time.Minute
	// SeqMinHistory is the fewest normal calls the reference needs: with
	// fewer, no bound on the usual p90 is worth a test (latP0 weighs what
	// a short reference can vouch for).
	SeqMinHistory = 20
	// seqCap bounds the statistic while alarmed, in thresholds, so that
	// a long fault does not take as long again to be forgotten.
	seqCap = 1.5
	// seqRecurAfter is how long after an earlier episode a similar one
	// counts as its recurrence (a periodic job), not as a new fault.
	seqRecurAfter = 5 * time.Minute
	// seqRecurTolerance is how close two episodes' profiles must be to
	// match: medians within this fraction, failed shares within this
	// share of the calls.
	seqRecurTolerance = 0.25
	// seqIdle is how long an episode of a series that stopped being
	// called is still reported: a quiet edge's episode spans the windows
	// between its calls, and one whose callers gave up ends.
	seqIdle = 2 * time.Minute
	// seqSupport is the share of the threshold from which a series'
	// evidence supports an incident others opened: within an incident
	// the question is which series are to blame, not whether anything is
	// wrong, and a quiet series may have had too few calls to be sure on
	// its own.
	seqSupport = 0.5
	// seqMemory is the reference's memory in event time: its call and
	// error counts decay by a window's share of it per window, so a
	// slowly changing error rate is followed.
	seqMemory = 6 * time.Hour
)

// Categories of the latency test: within the usual p90, up to the usual
// p99, beyond it, and far beyond it (ExtremeFactor times the p99): a
// timeout, a retry, a dead connection rather than a slow call. Under the
// alternative an alarm is worth, half the calls are beyond the usual p90
// and a fifth beyond its p99.
var latP1 = []float64{0.50, 0.30, 0.15, 0.05}

const (
	ExtremeFactor = 3
	extremeFloor  = 1e-4
	extremeCap    = 0.005 // at most half of what lies beyond the p99
)

// latP0 returns the latency categories' probabilities under a reference
// of n calls, of which kSlow, kFar and kExt lie beyond the categories'
// bounds. They are those of the quantiles (before the minimum effect,
// which only makes the test more conservative), but never below what a
// reference of n calls can vouch for: a new call exceeds the k-th largest
// of n exchangeable calls with probability k/(n+1), so beyond a bound that
// k calls of the reference exceed, (k+1)/(n+1) at most. On a short
// reference (a quiet series' first hour) a slow call therefore weighs
// less, and the test can start early without crying wolf. Bounds for the
// slow categories make the vector sum to more than one; the test is then
// only more conservative. The extreme category is as the reference shows
// it, never under extremeFloor (a rate a few hours of history cannot tell
// apart from zero).
func latP0(n, kSlow, kFar, kExt float64) []float64 {
	e := min(max(kExt/n, extremeFloor), extremeCap)
	vouch := func(k float64) float64 { return (k + 1) / (n + 1) }
	return []float64{0.90, max(0.09, vouch(kSlow)), max(0.01-e, vouch(kFar)), e}
}

// Intra-window correlation of latencies and of failures: a window's
// latencies share its load and pauses, so a busy window weighs as about
// five independent calls; failures are nearly independent per call
// (retries aside), so a busy window's failures count nearly in full.
const (
	latRho = 0.2
	errRho = 0.02
)

// Error test: the reference rate is learned with a weak prior of one
// error in 100 calls, and never taken below errFloor (a rate that low is
// not learned reliably in hours); the alternative is ErrRel times it or
// errAbs more, whichever is higher.
const (
	errPriorCalls = 100
	errFloor      = 0.001
	errRel        = 3
	errAbs        = 0.05
)

// Minimum effect of a slow call: beyond the usual quantile by 20% (as for
// the regime baselines' latency features) and half a millisecond (less is
// scheduling noise; a sub-millisecond service that triples is still seen).
const (
	seqMinRel = 0.2
	seqMinAbs = 0.5
)

// seqSeries is the sequential check's state for one series.
type seqSeries struct {
	Ref    *sketch.Latency // calls of normal windows
	Calls  float32         // decayed calls of normal windows
	Errors float32         // decayed errors among them
	Called int64           // unix ns of the end of the last window with calls
	Lat    evidence.CUSUM
	Err    evidence.CUSUM
	// Alarm: an episode is raised (Lat or Err crossed the threshold and
	// has not fallen back); Silent marks one that is not reported
	// (warm-up, or a recurrence of the last episode).
	Alarm, Silent bool
	// Last is the profile of the latest episode, to recognise it when it
	// recurs; LastEnd is when it ended (unix ns), 0 while none did.
	Last    seqProfile
	LastEnd int64
	// Pending holds the run's calls until the run is decided.
	// PendingLearned: the run began in the warm-up, and its calls were
	// learned as they came; Pending then only gives the run's profile.
	Pending        *graph.EdgeStats
	PendingLearned bool
}

// seqProfile describes an episode by what its calls looked like, not
// by how they compared with the reference (which learns in between): the
// median of its calls as a logLevel and the share that failed, in
// hundredths. Three bytes: it is kept for every series.
type seqProfile struct {
	Level  uint16
	Failed uint8
}

// logLevel is a latency in ms to within 1% in two bytes: 1 + 100 (ln ms +
// logLevelShift), 0 for none. The shift keeps any positive latency down to
// nanoseconds above 1.
func logLevel(ms float64) uint16 {
	if !(ms > 0) {
		return 0
	}
	return uint16(min(math.MaxUint16, max(1, math.Round(1+100*(math.Log(ms)+logLevelShift)))))
}

const logLevelShift = 20

// near reports whether two episodes look alike: medians within a
// quarter of each other, failed shares within a quarter of the calls.
func (p seqProfile) near(q seqProfile) bool {
	if p.Level == 0 || q.Level == 0 {
		return false
	}
	return math.Abs(float64(p.Level)-float64(q.Level)) <= 100*math.Log(1+seqRecurTolerance) &&
		math.Abs(float64(p.Failed)-float64(q.Failed)) <= 100*seqRecurTolerance
}

func newSeqSeries() *seqSeries {
	return &seqSeries{Ref: sketch.NewCompact(exceedAccuracy)}
}

// errorRate is the learned reference error rate.
func (s *seqSeries) errorRate() float64 {
	return max(errFloor, float64(s.Errors+1)/float64(s.Calls+errPriorCalls))
}

// beyond is the latency a call must exceed to count as beyond the
// reference quantile q, minimum effect included.
func (s *seqSeries) beyond(q float64) float64 {
	v := s.Ref.Quantile(q)
	return max(v*(1+seqMinRel), v+seqMinAbs)
}

// seqWindow is what the check reads of one window of a series.
type seqWindow struct {
	calls, errors float64
	lat           *sketch.Latency
	// vetted: the regime baseline judged this window on its own calls
	// and found it normal (a known regime, a familiar mode, a recurring
	// job). A busy series has its fast path there; the window may then
	// only lower the statistic. Its failures are vetted only when there
	// were enough of them for the regime baseline to judge
	// (MinErrorEvents): below that it never looked at them.
	vetted bool
}

// errorsVetted reports whether the regime baseline's verdict covers the
// window's failures too.
func (w seqWindow) errorsVetted() bool { return w.vetted && w.errors >= MinErrorEvents }

// seqWeight is what one window of a series weighs in its tests: the
// log-likelihood ratios of its latencies and of its failures, and how
// many of its calls were slow (beyond the usual p90) and far (beyond the
// usual p99). ok is false while the reference has too few calls to judge.
type seqWeight struct {
	lat, err  float64
	slow, far float64
	ok        bool
}

// weigh judges window w against the reference, without changing it.
func (s *seqSeries) weigh(w seqWindow) seqWeight {
	if w.calls <= 0 || s.Ref.Count() < SeqMinHistory {
		return seqWeight{}
	}
	bounds := []float64{s.beyond(0.9), s.beyond(0.99), ExtremeFactor * s.Ref.Quantile(0.99)}
	var got, ref [3]float64 // the window's calls beyond each bound, and the reference's
	w.lat.CountsAbove(bounds, got[:])
	s.Ref.CountsAbove(bounds, ref[:])
	slow := min(got[0], w.calls)
	far := min(got[1], slow)
	ext := min(got[2], far)
	p0 := latP0(s.Ref.Count(), ref[0], ref[1], ref[2])
	lat := evidence.LLR([]float64{w.calls - slow, slow - far, far - ext, ext}, p0, latP1, latRho)
	e0 := s.errorRate()
	e1 := max(e0*errRel, e0+errAbs)
	err := evidence.LLR([]float64{w.calls - w.errors, w.errors}, []float64{1 - e0, e0}, []float64{1 - e1, e1}, errRho)
	if w.vetted {
		lat = min(lat, 0)
	}
	if w.errorsVetted() {
		err = min(err, 0)
	}
	return seqWeight{lat: lat, err: err, slow: slow, far: far, ok: true}
}

// observe runs the check on one window starting at start and ending at
// end; it returns a score when the series is in a reported episode.
// feature is the kind of latency (KindP50 for calls and spans' durations,
// KindSelfTime for operations' own time).
func (s *seqSeries) observe(w seqWindow, start, end, first int64, feature baseline.Kind) (baseline.Score, bool) {
	return s.step(w, s.weigh(w), start, end, first, feature)
}

// step is observe with the window already weighed.
func (s *seqSeries) step(w seqWindow, wt seqWeight, start, end, first int64, feature baseline.Kind) (baseline.Score, bool) {
	if w.calls <= 0 {
		return baseline.Score{}, false
	}
	s.Called = end
	armed := end-first >= int64(SeqWarmUp) && s.Ref.Count() >= SeqMinHistory
	if wt.ok {
		s.Lat.Step(wt.lat, start, w.calls, wt.slow, wt.far)
		s.Err.Step(wt.err, start, w.calls, w.errors, 0)
	}
	running := s.Lat.S > 0 || s.Err.S > 0
	if running && armed && s.PendingLearned {
		// The run began in the warm-up, whose calls are learned already:
		// from here on they are held back as usual.
		s.Pending, s.PendingLearned = nil, false
	}
	if running {
		if s.Pending == nil {
			s.Pending = &graph.EdgeStats{Latency: sketch.NewCompact(exceedAccuracy)}
			s.PendingLearned = !armed
		}
		s.Pending.Requests += int64(w.calls)
		s.Pending.Errors += int64(w.errors)
		s.Pending.Latency.Merge(w.lat)
	}
	crossed := func(c *evidence.CUSUM) bool {
		return c.S >= SeqThreshold
	}
	if !s.Alarm && (crossed(&s.Lat) || crossed(&s.Err)) {
		s.Alarm = true
		p := s.profile()
		s.Silent = !armed || (s.LastEnd > 0 && start-s.LastEnd >= int64(seqRecurAfter) && p.near(s.Last))
		s.Last = p
	}
	if s.Alarm {
		for _, c := range []*evidence.CUSUM{&s.Lat, &s.Err} {
			c.S = min(c.S, seqCap*SeqThreshold)
		}
		if s.Lat.S < SeqThreshold && s.Err.S < SeqThreshold {
			s.Alarm, s.LastEnd = false, end
			if !s.Silent {
				s.Pending = nil // a fault's calls are not normal
			}
		}
	}
	switch {
	case !running:
		if s.Pending != nil && !s.PendingLearned {
			s.learn(float64(s.Pending.Requests), float64(s.Pending.Errors), s.Pending.Latency, end-start)
		}
		s.Pending, s.PendingLearned = nil, false
		s.learn(w.calls, w.errors, w.lat, end-start)
	case !armed:
		// During the warm-up every window is learned, runs included: a
		// run then is what this series does, and holding its calls back
		// until it fades could leave the reference with only its calmest
		// first minutes for good (a tail mode the first calls happened
		// to miss would be a fault ever after). The run's calls are kept
		// too, for its profile.
		s.learn(w.calls, w.errors, w.lat, end-start)
	}
	switch {
	case s.reported():
		return s.score(feature, end, SeqThreshold), true
	case armed && !s.Alarm && (supports(&s.Lat) || supports(&s.Err)):
		sc := s.score(feature, end, seqSupport*SeqThreshold)
		sc.Anomalous, sc.Active, sc.Supporting = false, false, true
		return sc, true
	}
	return baseline.Score{}, false
}

// idle is observe for a window without calls: an episode under way is
// still reported, until the series has had no calls for seqIdle.
func (s *seqSeries) idle(end int64, feature baseline.Kind) (baseline.Score, bool) {
	if !s.Alarm || s.Silent {
		return baseline.Score{}, false
	}
	if end-s.Called >= int64(seqIdle) {
		s.Alarm, s.LastEnd, s.Pending = false, end, nil
		s.Lat.Reset()
		s.Err.Reset()
		return baseline.Score{}, false
	}
	return s.score(feature, end, SeqThreshold), true
}

// supports reports whether a test's evidence is enough to support an
// incident: half way to the threshold, on more than one call (one slow
// call is nothing, however slow).
func supports(c *evidence.CUSUM) bool {
	return c.S >= seqSupport*SeqThreshold && c.Hits >= 2
}

// reported reports whether the series is in an episode that is reported.
func (s *seqSeries) reported() bool { return s.Alarm && !s.Silent }

// learn adds normal calls to the reference.
func (s *seqSeries) learn(calls, errors float64, lat *sketch.Latency, window int64) {
	decay := float32(seqDecay(window))
	s.Calls = s.Calls*decay + float32(calls)
	s.Errors = s.Errors*decay + float32(errors)
	s.Ref.Merge(lat)
}

// seqDecay is what the reference's counts keep of themselves over one
// window of the given length (unix ns).
func seqDecay(window int64) float64 {
	return max(0, 1-float64(window)/float64(seqMemory))
}

// profile describes the current run.
func (s *seqSeries) profile() seqProfile {
	var p seqProfile
	if s.Pending != nil {
		p.Level = logLevel(s.Pending.Latency.Quantile(0.5))
	}
	if s.Err.Calls > 0 {
		p.Failed = uint8(math.Round(float64(100 * s.Err.Hits / s.Err.Calls)))
	}
	return p
}

// score is the verdict of a series in a reported episode: one feature
// per test that crossed, with how many calls over how long it rests on.
func (s *seqSeries) score(feature baseline.Kind, end int64, threshold float64) baseline.Score {
	sc := baseline.Score{Anomalous: true, Active: true}
	add := func(fs baseline.FeatureScore, c *evidence.CUSUM) {
		fs.Z = math.Sqrt(2 * c.S)
		fs.Counts = c.S >= threshold
		fs.Calls, fs.Hits = int64(c.Calls), int64(c.Hits)
		fs.Horizon = time.Duration(end - c.Start)
		sc.Features = append(sc.Features, fs)
		if fs.Counts && fs.Z > sc.Value {
			sc.Value, sc.Feature = fs.Z, fs.Name
			sc.Explanation = fs.Describe()
		}
	}
	if s.Lat.S > 0 {
		cur := math.NaN()
		if s.Pending != nil {
			cur = s.Pending.Latency.Quantile(0.5)
		}
		over, hits := "p90", s.Lat.Hits
		if s.Lat.Far*2 >= s.Lat.Hits { // most slow calls are beyond the p99
			over, hits = "p99", s.Lat.Far
		}
		fs := baseline.FeatureScore{Name: graph.KindName(feature), Kind: feature, Current: graph.Round(cur), Expected: graph.Round(s.Ref.Quantile(0.5)), Over: over}
		c := s.Lat
		c.Hits = hits
		add(fs, &c)
	}
	if s.Err.S > 0 {
		fs := baseline.FeatureScore{Name: graph.KindName(graph.KindErrors), Kind: graph.KindErrors, Current: graph.Round(100 * float64(s.Err.Hits) / float64(max(1, s.Err.Calls))), Expected: graph.Round(100 * s.errorRate())}
		add(fs, &s.Err)
	}
	sc.P = 0.5 * math.Erfc(sc.Value/math.Sqrt2)
	if sc.Explanation == "" {
		sc.Explanation = fmt.Sprintf("%s: evidence accumulating", graph.KindName(feature))
	}
	return sc
}
