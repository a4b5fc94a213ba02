// Package rank orders the candidate root causes of an incident: given the
// anomalous series it saw (Observation) and the call graph it ran over
// (Topology), Rank reasons along the calls and returns the suspects
// (Suspect), each with the evidence it rests on.
package rank

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/model/baseline"
)

// SuspectKind says what a suspect is blamed for.
type SuspectKind string

// Suspect kinds.
const (
	// SuspectLatency: the service's own (self) time rose.
	SuspectLatency SuspectKind = "latency"
	// SuspectErrors: errors originate here (its calls fail while its
	// callees' do not).
	SuspectErrors SuspectKind = "errors"
	// SuspectNetwork: the time between caller and callee grew (client
	// span minus server span), not the time inside the callee.
	SuspectNetwork SuspectKind = "network"
	// SuspectDependency: an uninstrumented dependency (database, cache,
	// queue, external host) answers slower or fails.
	SuspectDependency SuspectKind = "dependency"
	// SuspectDown: callers' calls fail with no answer at all.
	SuspectDown SuspectKind = "unreachable"
)

// Evidence is one observation that points at a suspect.
type Evidence struct {
	Series   string       `json:"series"`    // "edge a->b:op" or "op service/op", for people
	SeriesID graph.Series `json:"series_id"` // the same, typed, for programs
	Feature  string       `json:"feature"`   // "self time", "p50", "client-server gap", "error ratio"
	Current  float64      `json:"current"`
	Baseline float64      `json:"baseline"`
	Unit     string       `json:"unit"`
	Spreads  float64      `json:"spreads"`
	Windows  int          `json:"windows"` // anomalous windows seen
	// Calls, Hits, Over and HorizonS say what evidence that accumulated
	// over several windows rests on: Hits of Calls calls over HorizonS
	// seconds were beyond the usual Over quantile ("p90", "p99"), or
	// failed when Over is empty. Absent for a judgement of single windows.
	Calls    int64   `json:"calls,omitempty"`
	Hits     int64   `json:"hits,omitempty"`
	Over     string  `json:"over,omitempty"`
	HorizonS float64 `json:"horizon_s,omitempty"`
	// Exemplars are trace ids of calls that show it.
	Exemplars []string `json:"exemplar_trace_ids,omitempty"`
	// Text says it in words, as Describe.
	Text string `json:"text,omitempty"`

	kind baseline.Kind // what Feature measures, for the summary
}

// Suspect is one candidate root cause with its score and evidence.
type Suspect struct {
	Service   string         `json:"service"`             // service or virtual node
	Operation string         `json:"operation,omitempty"` // the operation most to blame, if any
	Kind      SuspectKind    `json:"kind"`
	NodeKind  graph.NodeKind `json:"node_kind"`
	// Caller and Callee name the edge of a network suspect whose evidence
	// is on one caller's calls only: the network between the two.
	Caller   string     `json:"caller,omitempty"`
	Callee   string     `json:"callee,omitempty"`
	Score    float64    `json:"score"`
	Summary  string     `json:"summary"`
	Evidence []Evidence `json:"evidence"`
}

// Observation is what the ranking is given for one anomalous series: its
// latest verdict and how many anomalous windows it had in the incident.
type Observation struct {
	baselines.Finding
	Windows   int
	Exemplars []string
	NodeKind  graph.NodeKind // kind of the edge's target
	// ClientOp marks an operation that is a client call: its self time is
	// the wait for its callee, evidence about the callee, which the edge
	// carries, not about the caller.
	ClientOp bool
	// Callee is the service that answered a client operation's calls,
	// when it is instrumented: the operation's self time is then the time
	// its calls lost between the two ends, evidence about the edge.
	Callee string
}

// Rank orders the candidate root causes behind a set of anomalous series.
//
// It reasons along the calls. A service whose operations' self time rose
// is a suspect; one whose latency rose only because a callee got slower is
// a victim (its self time did not move). A dependency without spans of its
// own (database, cache, external host) is judged by its callers' view of
// it. A grown client-minus-server gap blames the network in front of the
// callee; errors that rise on calls to a callee whose own operations do
// not fail, or that get no answer at all, blame the callee. What remains
// is ordered by a random walk with restart over the anomalous call graph,
// started from the evidence and flowing from callers to callees, so that
// among comparable suspects the most downstream wins.
//
// topo, when given, is the call graph the incident ran over: how many
// distinct callees and callers each node had. It tells a caller whose every
// call got slower (itself at fault) from one whose call to a single callee
// did (that callee at fault).
func Rank(obs []Observation, topo *Topology) []Suspect {
	r := newRanking(obs, topo)
	r.ownTime()
	r.calls()
	r.clientWaits()
	r.gapEnds()
	r.errorOrigins()
	return r.order()
}

// ranking is one Rank in progress: what the observations say about each
// service, and the candidates with their evidence so far. Its steps run in
// the order Rank calls them.
type ranking struct {
	obs   []Observation
	topo  *Topology
	cands map[string]*candidate

	opErrors   map[string]bool    // services whose own operations fail
	opSlow     map[string]bool    // services whose own operations got slower
	callErrors map[string]bool    // services whose outgoing calls fail
	pairs      map[[2]string]bool // anomalous caller -> callee pairs, for the walk
	gaps       []gapEvidence      // time lost between caller and callee
	gapPairs   map[[2]string]bool // pairs whose edges' own gap is anomalous
}

// candidate is a suspect being built: its strength is that of its
// strongest evidence, best, which its summary describes.
type candidate struct {
	s        Suspect
	strength float64
	best     Evidence
}

// newRanking reads what every observation says of its service: whether
// its operations fail or got slower, and whether its calls out fail.
func newRanking(obs []Observation, topo *Topology) *ranking {
	r := &ranking{obs: obs, topo: topo, cands: map[string]*candidate{},
		opErrors: map[string]bool{}, opSlow: map[string]bool{}, callErrors: map[string]bool{}, pairs: map[[2]string]bool{}, gapPairs: map[[2]string]bool{}}
	for i := range obs {
		o := &obs[i]
		for _, fs := range o.Score.Features {
			if !fs.Counts {
				continue
			}
			switch {
			case o.Edge != nil && fs.Kind == graph.KindErrors:
				r.callErrors[o.Edge.Source] = true
			case o.Op != nil && fs.Kind == graph.KindErrors:
				r.opErrors[o.Op.Service] = true
			case o.Op != nil:
				r.opSlow[o.Op.Service] = true
			}
		}
	}
	return r
}

// get is the candidate blaming name for kind, created on first use.
func (r *ranking) get(name string, kind SuspectKind, nk graph.NodeKind) *candidate {
	key := name + "\x00" + string(kind)
	c, ok := r.cands[key]
	if !ok {
		c = &candidate{s: Suspect{Service: name, Kind: kind, NodeKind: nk}}
		r.cands[key] = c
	}
	return c
}

// weigh records evidence for c, its strength scaled by w; op names the
// operation most to blame should this evidence be c's strongest.
func (r *ranking) weigh(c *candidate, o *Observation, fs baseline.FeatureScore, unit string, series graph.Series, op string, w float64) {
	z := magnitude(fs, unit) * weightOf(o.Windows) * confidence(o) * w
	ev := Evidence{Series: series.String(), SeriesID: series, Feature: fs.Name, Current: fs.Current,
		Baseline: fs.Expected, Unit: unit, Spreads: graph.Round(fs.Z), Windows: o.Windows, Exemplars: o.Exemplars,
		Calls: fs.Calls, Hits: fs.Hits, Over: fs.Over, HorizonS: fs.Horizon.Seconds(), kind: fs.Kind}
	c.s.Evidence = append(c.s.Evidence, ev)
	if z > c.strength || c.best.Series == "" {
		c.best = ev
	}
	if z > c.strength {
		c.strength = z
		if op != "" {
			c.s.Operation = op
		}
	}
}

func (r *ranking) add(c *candidate, o *Observation, fs baseline.FeatureScore, unit string, series graph.Series, op string) {
	r.weigh(c, o, fs, unit, series, op, 1)
}

// ownTime judges services by their own operations: more self time blames
// the service; slower spans without it are what a victim looks like.
func (r *ranking) ownTime() {
	for i := range r.obs {
		o := &r.obs[i]
		if o.Op == nil || o.ClientOp { // a client call is judged through its edge
			continue
		}
		series := graph.OpSeries(*o.Op)
		for _, fs := range o.Score.Features {
			if !fs.Counts || fs.Kind != graph.KindSelfTime && !graph.IsLatency(fs.Kind) {
				continue
			}
			c := r.get(o.Op.Service, SuspectLatency, graph.NodeService)
			switch {
			case fs.Kind == graph.KindSelfTime && !r.callErrors[o.Op.Service]:
				r.add(c, o, fs, "ms", series, o.Op.Operation)
			case fs.Kind == graph.KindSelfTime:
				// Its calls out fail: the time is spent waiting on and
				// retrying them, as a victim's is.
				r.weigh(c, o, fs, "ms", series, o.Op.Operation, victimWeight)
			default:
				// Slower without more self time: weak evidence on its own.
				before := c.strength
				r.add(c, o, fs, "ms", series, o.Op.Operation)
				c.strength = max(before, c.strength*victimWeight)
			}
		}
	}
}

// calls judges the callees of anomalous calls. A dependency without spans
// is judged by its callers' view of it; calls that fail to a service whose
// own operations do not fail get no answer; time lost between caller and
// callee is set aside for gapEnds.
func (r *ranking) calls() {
	for i := range r.obs {
		o := &r.obs[i]
		e := o.Edge
		if e == nil {
			continue
		}
		series := graph.EdgeSeries(*e)
		r.pairs[[2]string{e.Source, e.Target}] = true
		virtual := o.NodeKind != graph.NodeService && o.NodeKind != ""
		for _, fs := range o.Score.Features {
			if !fs.Counts {
				continue
			}
			switch {
			case fs.Kind == graph.KindGap:
				// A failed call's gap says little: the server side may
				// have given up long before the client did.
				if !failing(o) {
					r.gaps = append(r.gaps, gapEvidence{o: o, fs: fs, series: series, w: 1})
					r.gapPairs[[2]string{e.Source, e.Target}] = true
				}
			case fs.Kind == graph.KindErrors && virtual:
				r.add(r.get(e.Target, SuspectDependency, o.NodeKind), o, fs, "%", series, e.Operation)
			case fs.Kind == graph.KindErrors && !r.opErrors[e.Target]:
				r.add(r.get(e.Target, SuspectDown, graph.NodeService), o, fs, "%", series, e.Operation)
			case virtual: // a latency feature of a call to a dependency
				r.add(r.get(e.Target, SuspectDependency, o.NodeKind), o, fs, "ms", series, e.Operation)
			case !r.opSlow[e.Target] && !failing(o):
				// Calls to a service got slower while its own operations
				// did not: the time went between them, as with a grown
				// gap. A tail quantile alone weighs less.
				w := 1.0
				if fs.Kind != graph.KindP50 {
					w = tailWeight
				}
				r.gaps = append(r.gaps, gapEvidence{o: o, fs: fs, series: series, w: w})
			}
		}
	}
}

// clientWaits reads a client operation's self time, when a service's spans
// answer its calls, as the time lost between caller and callee: the same
// measure as the edge's client-server gap, from the caller's operation. It
// speaks where the edge's own gap is not anomalous (a quiet edge, whose
// operation's calls add up to significance first, or a shift under the
// gap's minimum effect that accumulated over many calls); where it is, the
// edge's gap is that evidence already.
func (r *ranking) clientWaits() {
	for i := range r.obs {
		o := &r.obs[i]
		if o.Op == nil || !o.ClientOp || o.Callee == "" || o.Callee == o.Op.Service || failing(o) ||
			r.gapPairs[[2]string{o.Op.Service, o.Callee}] {
			continue
		}
		edge := &Observation{Finding: o.Finding, Windows: o.Windows, Exemplars: o.Exemplars, NodeKind: graph.NodeService}
		edge.Edge = &graph.EdgeKey{Source: o.Op.Service, Target: o.Callee, Operation: o.Op.Operation}
		r.pairs[[2]string{o.Op.Service, o.Callee}] = true
		for _, fs := range o.Score.Features {
			if fs.Counts && fs.Kind == graph.KindSelfTime {
				fs.Name, fs.Kind = graph.KindName(graph.KindGap), graph.KindGap
				r.gaps = append(r.gaps, gapEvidence{o: edge, fs: fs, series: graph.OpSeries(*o.Op), w: 1})
			}
		}
	}
}

// gapEnds blames one end of the time lost between callers and callees. A
// grown gap - or calls slower towards a service whose own operations are
// not - implicates both ends: the network or ingress of the callee, or the
// caller itself (a starved CPU, a full connection pool stretches its
// client spans). The end that the most such edges share, for the largest
// share of its calls, is the suspect; evidence combines as sums over the
// square root of their number.
func (r *ranking) gapEnds() {
	type end struct {
		sum     float64
		n       int
		callers map[string]bool
		callees map[string]bool
		ev      []gapEvidence
	}
	ends := map[string]*end{}
	for _, g := range r.gaps {
		e := g.o.Edge
		for _, name := range []string{e.Source, e.Target} {
			x, ok := ends[name]
			if !ok {
				x = &end{callers: map[string]bool{}, callees: map[string]bool{}}
				ends[name] = x
			}
			x.sum += magnitude(g.fs, "ms") * weightOf(g.o.Windows) * confidence(g.o) * g.w
			x.n++
			x.ev = append(x.ev, g)
			if name == e.Source {
				x.callees[e.Target] = true
			} else {
				x.callers[e.Source] = true
			}
		}
	}
	for name, x := range ends {
		kind, nk := SuspectNetwork, graph.NodeService
		if len(x.callees) > len(x.callers) {
			kind = SuspectLatency // the calling side stretches its own client spans
		}
		// The share of the node's calls the gap touches: a caller slow
		// itself stretches all its calls, a callee's network all calls to it.
		share := 1.0
		if r.topo != nil {
			if kind == SuspectLatency {
				share = float64(len(x.callees)) / float64(max(len(x.callees), r.topo.Callees[name]))
			} else {
				share = float64(len(x.callers)) / float64(max(len(x.callers), r.topo.Callers[name]))
			}
		}
		for _, g := range x.ev {
			if g.o.Edge.Target == name {
				nk = g.o.NodeKind
			}
		}
		c := r.get(name, kind, nk)
		before := c.strength
		if kind == SuspectNetwork && len(x.callers) == 1 {
			// Calls from one caller only: the suspect is that edge.
			for caller := range x.callers {
				c.s.Caller, c.s.Callee = caller, name
			}
		}
		for _, g := range x.ev {
			r.add(c, g.o, g.fs, "ms", g.series, g.o.Edge.Operation)
		}
		c.strength = before // the gaps count combined, below, not one by one
		c.strength = max(c.strength, x.sum/math.Sqrt(float64(x.n))*math.Sqrt(float64(len(x.callers)+len(x.callees)))*share)
	}
}

// errorOrigins blames the services errors start in: their operations fail
// and neither a callee of theirs nor their calls on the way out do.
func (r *ranking) errorOrigins() {
	for i := range r.obs {
		o := &r.obs[i]
		if o.Op == nil || !r.opErrors[o.Op.Service] || r.callErrors[o.Op.Service] {
			continue
		}
		origin := true
		for p := range r.pairs {
			if p[0] == o.Op.Service && r.opErrors[p[1]] {
				origin = false
			}
		}
		if !origin {
			continue
		}
		for _, fs := range o.Score.Features {
			if fs.Kind == graph.KindErrors && fs.Counts {
				r.add(r.get(o.Op.Service, SuspectErrors, graph.NodeService), o, fs, "%", graph.OpSeries(*o.Op), o.Op.Operation)
			}
		}
	}
}

// order scores the candidates and sorts them, strongest first. A random
// walk with restart over the anomalous call graph, restarting in
// proportion to evidence and walking from callers to callees, lifts the
// most downstream of comparable suspects by up to a third.
func (r *ranking) order() []Suspect {
	if len(r.cands) == 0 {
		return nil
	}
	restart := map[string]float64{}
	for _, c := range r.cands {
		restart[c.s.Service] = max(restart[c.s.Service], c.strength)
	}
	pr := walk(restart, r.pairs)

	out := make([]Suspect, 0, len(r.cands))
	for _, c := range r.cands {
		c.s.Score = graph.Round(c.strength * (0.75 + 0.25*pr[c.s.Service]))
		// The evidence the suspect rests on first, then the rest by
		// how far each is from normal.
		slices.SortFunc(c.s.Evidence, func(a, b Evidence) int {
			return cmp.Or(cmp.Compare(b1(b.same(c.best)), b1(a.same(c.best))), cmp.Compare(b.Spreads, a.Spreads))
		})
		if len(c.s.Evidence) > 5 {
			c.s.Evidence = c.s.Evidence[:5]
		}
		for i := range c.s.Evidence {
			c.s.Evidence[i].Text = c.s.Evidence[i].Describe()
		}
		c.s.Summary = summary(&c.s)
		out = append(out, c.s)
	}
	slices.SortFunc(out, func(a, b Suspect) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}

// magnitude is how much a feature got worse, comparable across features:
// the log of the ratio to its baseline, both plus one unit (latencies in
// ms, error ratios in percent), discounted while barely significant (under
// 4 spreads). An error ratio's is that of its failures or of its
// successes, whichever moved more: calls to a service that usually fails a
// quarter of them and now fails all have lost every success.
func magnitude(fs baseline.FeatureScore, unit string) float64 {
	// One unit of smoothing (1 ms, 1 point): sub-millisecond baselines
	// would otherwise make any change look enormous.
	cur, base := fs.Current+1, fs.Expected+1
	if cur <= 0 || base <= 0 || cur <= base {
		return 0
	}
	m := math.Log(cur / base)
	if unit == "%" {
		m = max(m, math.Log((101-fs.Expected)/(101-min(fs.Current, 100))))
	}
	return m * math.Min(1, fs.Z/4)
}

// Topology counts, per node, the distinct callees and callers it had.
type Topology struct {
	Callees map[string]int
	Callers map[string]int
}

// NewTopology returns an empty topology.
func NewTopology() *Topology {
	return &Topology{Callees: map[string]int{}, Callers: map[string]int{}}
}

// Add counts the edges of a window (each pair once however often seen)
// that carried enough calls to be judged: an edge too quiet to show an
// anomaly is no evidence that a fault spared it.
func (t *Topology) Add(w *graph.Window, seen map[[2]string]bool) {
	for k, st := range w.Edges {
		p := [2]string{k.Source, k.Target}
		if seen[p] || st.Requests < baselines.MinRequests {
			continue
		}
		seen[p] = true
		t.Callees[k.Source]++
		t.Callers[k.Target]++
	}
}

// failing reports whether an observation's error ratio counts.
func failing(o *Observation) bool {
	for _, fs := range o.Score.Features {
		if fs.Kind == graph.KindErrors && fs.Counts {
			return true
		}
	}
	return false
}

// gapEvidence is a grown client-minus-server gap on one edge.
type gapEvidence struct {
	o      *Observation
	fs     baseline.FeatureScore
	series graph.Series
	w      float64 // weight: 1, or less for weaker kinds of evidence
}

// tailWeight scales evidence resting on a tail quantile (p90, p99) alone.
const tailWeight = 0.5

// victimWeight scales evidence that a service is slower overall (not in
// its own time): a callee may explain it.
const victimWeight = 0.3

// confidence is how much an observation's evidence is to be trusted:
// fully when it is significant; evidence that is not significant on its
// own (a quiet series half way there, Score.Supporting) weighs by the
// share of the threshold its statistic reached (its score is the
// statistic's equivalent in standard deviations, sqrt(2 S)).
func confidence(o *Observation) float64 {
	if !o.Score.Supporting {
		return 1
	}
	return min(1, o.Score.Value*o.Score.Value/2/baselines.SeqThreshold)
}

// weightOf favours evidence that persisted: one window counts half, three
// or more fully.
func weightOf(windows int) float64 {
	return math.Min(1, 0.5+float64(windows)/6)
}

// walk runs a random walk with restart (personalised PageRank) from the
// evidence over the caller -> callee graph and returns each node's share,
// scaled so the largest is 1.
func walk(restart map[string]float64, calls map[[2]string]bool) map[string]float64 {
	nodes := map[string]bool{}
	for n := range restart {
		nodes[n] = true
	}
	out := map[string][]string{}
	for p := range calls {
		nodes[p[0]], nodes[p[1]] = true, true
		out[p[0]] = append(out[p[0]], p[1])
	}
	var total float64
	for _, v := range restart {
		total += v
	}
	r := map[string]float64{}
	for n := range nodes {
		r[n] = restart[n] / total
	}
	p := maps.Clone(r)
	const alpha = 0.85
	for range 50 {
		next := map[string]float64{}
		for n := range nodes {
			next[n] = (1 - alpha) * r[n]
		}
		for n, v := range p {
			if len(out[n]) == 0 {
				next[n] += alpha * v // a sink keeps its mass: the walk stops at the bottom
				continue
			}
			for _, m := range out[n] {
				next[m] += alpha * v / float64(len(out[n]))
			}
		}
		p = next
	}
	var top float64
	for _, v := range p {
		top = max(top, v)
	}
	for n := range p {
		p[n] /= top
	}
	return p
}

// b1 is 1 for true, 0 for false.
func b1(v bool) int {
	if v {
		return 1
	}
	return 0
}

// same reports whether e and o describe the same series and feature.
func (e Evidence) same(o Evidence) bool { return e.Series == o.Series && e.Feature == o.Feature }

// Describe says what an evidence shows: "12 of 14 calls over 2m0s above
// the usual p99 (self time 412 ms vs 96 ms normally)" when it accumulated
// over windows, "3 of 4 calls over 1m0s failed (error ratio 75.0% vs 0.2%
// normally)", else "self time 412 ms vs 96 ms normally".
func (e Evidence) Describe() string {
	val := func(v float64) string {
		if e.Unit == "%" {
			return fmt.Sprintf("%.1f%%", v)
		}
		return fmt.Sprintf("%.3g %s", v, e.Unit)
	}
	vs := fmt.Sprintf("%s %s vs %s normally", e.Feature, val(e.Current), val(e.Baseline))
	if e.Calls == 0 {
		return vs
	}
	calls, beyond := "calls", "failed"
	if e.Calls == 1 {
		calls = "call"
	}
	if e.Over != "" {
		beyond = "above the usual " + e.Over
	}
	return fmt.Sprintf("%d of %d %s over %s %s (%s)", e.Hits, e.Calls, calls, time.Duration(e.HorizonS*float64(time.Second)).Round(time.Second), beyond, vs)
}

// summary is the one readable sentence of a suspect, from its first
// evidence's Text.
func summary(s *Suspect) string {
	if len(s.Evidence) == 0 {
		return s.Service
	}
	e := s.Evidence[0]
	switch s.Kind {
	case SuspectLatency:
		switch e.kind {
		case graph.KindGap:
			return fmt.Sprintf("%s itself is slow to send and receive its calls (CPU, GC or connection pool): %s (%s)", s.Service, e.Text, e.Series)
		case graph.KindSelfTime:
			return fmt.Sprintf("%s got slower in its own code: %s (%s)", s.Service, e.Text, e.Series)
		}
		return fmt.Sprintf("%s is slower: %s (%s); its own time did not rise, so a callee may explain it", s.Service, e.Text, e.Series)
	case SuspectErrors:
		return fmt.Sprintf("errors start in %s: %s (%s), while its callees are fine", s.Service, e.Text, e.Series)
	case SuspectNetwork:
		if s.Caller != "" {
			return fmt.Sprintf("the network between %s and %s: %s (%s), while %s itself is not slower", s.Caller, s.Service, e.Text, e.Series, s.Service)
		}
		return fmt.Sprintf("the network in front of %s: %s (%s), while %s itself is not slower", s.Service, e.Text, e.Series, s.Service)
	case SuspectDependency:
		return fmt.Sprintf("%s %s is slower or failing: %s (%s)", s.NodeKind, s.Service, e.Text, e.Series)
	case SuspectDown:
		return fmt.Sprintf("%s does not answer: calls to it fail (%s, %s) while its own operations report no errors", s.Service, e.Text, e.Series)
	}
	return s.Service
}
