// Package baselines judges the windows graph closes: it keeps a learned
// baseline (model/baseline) and a sequential check (model/evidence) for
// every edge and operation, scores each closed window against them
// (Baselines.Observe), and returns the series that are anomalous
// (Finding). Snapshots of its state survive restarts.
package baselines

import (
	"hash/fnv"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/baseline"
)

// Edge and operation feature vectors, in this order.
const (
	fP50 = iota
	fP90
	fP99
	fErrors
	fRate
	fExtra // edges: client-minus-server gap (ms); operations: mean self time (log ms)
	nFeatures
)

// MinRequests is the fewest calls a window needs on an edge or operation
// before it is scored or learned from: quantiles of fewer say too little.
// Tail quantiles need more: p90 is a feature only from MinP90Requests
// calls, p99 only from MinP99Requests (below, one slow call is the p99,
// and one slow call is not an incident).
const (
	MinRequests    = 5
	MinP90Requests = 30
	MinP99Requests = 200
)

// MaxSparseWindows bounds how many consecutive windows a quiet series is
// pooled over to reach MinRequests; calls of a series that stays below it
// that long are dropped. A service called a few times a minute is judged
// once a minute instead of never.
const MaxSparseWindows = 6

// sparse pools the windows of a quiet series until it has enough calls.
type sparse[S any] struct {
	stats   S
	start   time.Time
	windows int
}

func logMS(v float64) float64 {
	if math.IsNaN(v) {
		return v
	}
	return math.Log(max(v, 0.001))
}

// edgeVector is the feature vector of an edge's window of the given length.
func edgeVector(e *graph.EdgeStats, seconds float64) []float64 {
	x := latencyVector(e.Requests, e.Errors, e.Latency.Quantile, seconds)
	x[fExtra] = math.NaN()
	if e.GapCount > 0 {
		x[fExtra] = e.MeanGapMS()
	}
	return x
}

func opVector(o *graph.OpStats, seconds float64) []float64 {
	x := latencyVector(o.Requests, o.Errors, o.Duration.Quantile, seconds)
	x[fExtra] = logMS(o.SelfTime.Quantile(0.5))
	return x
}

func latencyVector(requests, errors int64, q func(float64) float64, seconds float64) []float64 {
	x := make([]float64, nFeatures)
	x[fP50], x[fP90], x[fP99] = logMS(q(0.5)), math.NaN(), math.NaN()
	if requests >= MinP90Requests {
		x[fP90] = logMS(q(0.9))
	}
	if requests >= MinP99Requests {
		x[fP99] = logMS(q(0.99))
	}
	x[fErrors] = float64(errors) / float64(requests)
	x[fRate] = math.Log(float64(requests) / seconds)
	return x
}

// Finding is one edge or operation scored in a closed window.
type Finding struct {
	Edge  *graph.EdgeKey // set for an edge
	Op    *graph.OpKey   // set for an operation
	Score baseline.Score
}

// SeriesOf is the series a finding is about.
func SeriesOf(f Finding) graph.Series {
	if f.Edge != nil {
		return graph.EdgeSeries(*f.Edge)
	}
	return graph.OpSeries(*f.Op)
}

// Baselines keeps a learned baseline for every edge and operation and
// scores each closed window against them. Observe runs on the
// aggregator's goroutine (as its WindowFunc, or called from one); the
// read methods may be called from any goroutine.
type Baselines struct {
	edgeCfg, opCfg *baseline.Config
	m              *Metrics

	mu       sync.RWMutex // guards the maps and the baselines in them
	seqEdges map[graph.EdgeKey]*seqSeries
	seqOps   map[graph.OpKey]*seqSeries
	// seqOpDur tests operations' durations, as seqOps their self time:
	// a callee's operations that got slower as a whole tell its callers'
	// slower calls from a slower network.
	seqOpDur map[graph.OpKey]*seqSeries
	// alarmedEdges and alarmedOps are the series in a reported
	// sequential episode, reported in windows without calls too.
	alarmedEdges map[graph.EdgeKey]bool
	alarmedOps   map[graph.OpKey]bool
	alarmedDur   map[graph.OpKey]bool
	// seqSvc pools each service's operations' own time
	// (evidence_service.go).
	seqSvc map[string]*seqService
	// first is when the first window began (unix ns): the sequential
	// check's warm-up counts from it, so a series first called late (a
	// quiet one) is judged as soon as its reference has enough calls.
	first       int64
	edges       map[graph.EdgeKey]*series
	ops         map[graph.OpKey]*series
	sparseEdges map[graph.EdgeKey]*sparse[*graph.EdgeStats]
	sparseOps   map[graph.OpKey]*sparse[*graph.OpStats]
	windows     int64
	// window is the length of the windows observed, recorded in
	// snapshots (SetWindow); zero: not known.
	window time.Duration
}

// SetWindow records the length of the windows the baselines will observe,
// before the first: the regime baselines' horizons (regimeFill,
// regimeMemory, regimeRecluster) become that many windows, and a snapshot
// learned from windows of another length is refused (OtherWindowError)
// instead of being read as if nothing had changed. Without it the
// horizons are those of 10 s windows.
func (bs *Baselines) SetWindow(d time.Duration) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.window = d
	if d <= 0 {
		return
	}
	windows := func(h time.Duration) int { return max(1, int(h/d)) }
	for _, cfg := range []*baseline.Config{bs.edgeCfg, bs.opCfg} {
		cfg.Fill, cfg.Horizon, cfg.Recluster = windows(regimeFill), windows(regimeMemory), windows(regimeRecluster)
	}
}

// Horizons of the regime baselines in event time, whatever the window
// length. Counts that are sample sizes, not time (the windows a regime
// needs to start, the run that opens or closes an episode, the sample
// kept for clustering), stay counts of windows.
const (
	// regimeFill: until the sample holds this much history, every window
	// is learned and the threshold is half as high again (at most the
	// sample's size in windows).
	regimeFill = 8 * time.Minute
	// regimeMemory is how much history the sample represents: past it,
	// new windows replace random old ones.
	regimeMemory = 6 * time.Hour
	// regimeRecluster is how much learned history passes between two
	// re-clusterings; in between, regimes follow the data online.
	regimeRecluster = 5 * time.Minute
)

// Horizon is how much event time the baselines learn from, the longest
// of their memories: what a fleet's windows topic must keep for a new
// member to rebuild them (fleet.Config.WindowsRetention).
const Horizon = max(regimeMemory, seqMemory)

// series is one learned baseline and its latest verdict.
type series struct {
	b    *baseline.Baseline
	last baseline.Score
	at   time.Time
}

// New returns empty baselines with the default features and
// settings, recording metrics in m (which may be nil).
func New(m *Metrics) *Baselines {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Baselines{
		edgeCfg:      &baseline.Config{Features: EdgeFeatures()},
		opCfg:        &baseline.Config{Features: OpFeatures()},
		m:            m,
		edges:        make(map[graph.EdgeKey]*series),
		ops:          make(map[graph.OpKey]*series),
		seqEdges:     make(map[graph.EdgeKey]*seqSeries),
		seqOps:       make(map[graph.OpKey]*seqSeries),
		seqOpDur:     make(map[graph.OpKey]*seqSeries),
		alarmedDur:   make(map[graph.OpKey]bool),
		seqSvc:       make(map[string]*seqService),
		alarmedEdges: make(map[graph.EdgeKey]bool),
		alarmedOps:   make(map[graph.OpKey]bool),
		sparseEdges:  make(map[graph.EdgeKey]*sparse[*graph.EdgeStats]),
		sparseOps:    make(map[graph.OpKey]*sparse[*graph.OpStats]),
	}
}

// exceedAccuracy is the relative accuracy of the sequential check's
// reference sketches: it compares with a 20% margin, so 5% is ample, and
// it needs a fifth of the bins of 1%.
const exceedAccuracy = 0.05

// sequential runs the sequential check of series k on its calls of
// window w; a score is returned when it is in a reported episode, and the
// window's weight in every case.
func sequential[K comparable](all map[K]*seqSeries, alarmed map[K]bool, k K, sw seqWindow, w *graph.Window, feature baseline.Kind, first int64) (baseline.Score, bool, seqWeight) {
	s, ok := all[k]
	if !ok {
		s = newSeqSeries()
		all[k] = s
	}
	wt := s.weigh(sw)
	sc, ok := s.step(sw, wt, w.Start.UnixNano(), w.End.UnixNano(), first, feature)
	if s.reported() {
		alarmed[k] = true
	} else {
		delete(alarmed, k)
	}
	return sc, ok, wt
}

// merge combines two sequential scores of one series (self time and
// duration): the features of both, the worse one's value.
func merge(a baseline.Score, aOK bool, b baseline.Score, bOK bool) (baseline.Score, bool) {
	switch {
	case !bOK:
		return a, aOK
	case !aOK:
		return b, bOK
	}
	out := a
	if b.Value > a.Value && b.Active == a.Active || b.Active && !a.Active {
		out = b
	}
	out.Features = append(append([]baseline.FeatureScore(nil), a.Features...), b.Features...)
	return out, true
}

// pick chooses the finding of a series in a window, if any: the regime
// baseline's when it is in an episode, else the sequential check's when
// it is, else the regime baseline's anomalous window (not yet an
// episode), else the sequential check's supporting evidence.
func pick(regime *baseline.Score, seq baseline.Score, seqOK bool) (baseline.Score, bool) {
	switch {
	case regime != nil && regime.Active:
		return *regime, true
	case seqOK && seq.Active:
		return seq, true
	case regime != nil && regime.Anomalous:
		return *regime, true
	case seqOK:
		return seq, true // supporting evidence
	}
	return baseline.Score{}, false
}

// idleSequential reports, for a window w, the series in a reported
// episode that had no calls in it (absent from seen).
func idleSequential[K comparable, S any](all map[K]*seqSeries, alarmed map[K]bool, seen map[K]S, w *graph.Window, feature baseline.Kind, cmp func(a, b K) int, found func(K, baseline.Score)) {
	for _, k := range graph.SortedKeys(alarmed, cmp) {
		if _, ok := seen[k]; ok {
			continue
		}
		s := all[k]
		sc, ok := s.idle(w.End.UnixNano(), feature)
		if !s.reported() {
			delete(alarmed, k)
		}
		if ok {
			found(k, sc)
		}
	}
}

// pool returns the stats to judge for a series in window w: its own when
// it has enough calls, else those of the windows pooled so far once they
// add up; ok is false while they do not.
func pool[K comparable, S interface {
	Merge(S)
	Calls() int64
}](pending map[K]*sparse[S], k K, cur S, fresh func() S, w *graph.Window) (st S, start time.Time, ok bool) {
	acc, pooling := pending[k]
	if !pooling && cur.Calls() >= MinRequests {
		return cur, w.Start, true
	}
	if !pooling {
		acc = &sparse[S]{stats: fresh(), start: w.Start}
		pending[k] = acc
	}
	acc.stats.Merge(cur)
	acc.windows++
	if acc.stats.Calls() < MinRequests {
		if acc.windows >= MaxSparseWindows {
			delete(pending, k)
		}
		return st, start, false
	}
	delete(pending, k)
	return acc.stats, acc.start, true
}

func seed(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// Observe scores every edge and operation of a closed window with enough
// calls, learns from the normal ones, and returns the findings: every
// series that is anomalous in this window or in an open episode.
func (bs *Baselines) Observe(w *graph.Window) []Finding {
	var out []Finding
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.windows++
	if bs.first == 0 {
		bs.first = w.Start.UnixNano()
	}
	for _, k := range graph.SortedKeys(w.Edges, graph.CompareEdge) {
		raw := w.Edges[k]
		var regime *baseline.Score
		vetted := false
		if e, from, ok := pool(bs.sparseEdges, k, raw, graph.NewEdgeStats, w); ok {
			sc := judge(bs, bs.edges, k, bs.edgeCfg, k.String(), w, from, edgeVector(e, w.End.Sub(from).Seconds()), e.Requests)
			regime = &sc
			vetted = e == raw && !sc.Anomalous && !sc.Active && !sc.Warming
		}
		seq, ok, _ := sequential(bs.seqEdges, bs.alarmedEdges, k, seqWindow{calls: float64(raw.Requests), errors: float64(raw.Errors), lat: raw.Latency, vetted: vetted}, w, graph.KindP50, bs.first)
		if sc, ok := pick(regime, seq, ok); ok {
			out = append(out, Finding{Edge: &k, Score: sc})
		}
	}
	served := map[string][]opWeight{} // server operations' weights by service
	opAt := map[graph.OpKey]int{}     // where out holds each operation's finding
	for _, k := range graph.SortedKeys(w.Ops, graph.CompareOp) {
		raw := w.Ops[k]
		var regime *baseline.Score
		vetted := false
		if o, from, ok := pool(bs.sparseOps, k, raw, graph.NewOpStats, w); ok {
			sc := judge(bs, bs.ops, k, bs.opCfg, k.Service+"\x00"+k.Operation, w, from, opVector(o, w.End.Sub(from).Seconds()), o.Requests)
			regime = &sc
			vetted = o == raw && !sc.Anomalous && !sc.Active && !sc.Warming
		}
		seq, ok, wt := sequential(bs.seqOps, bs.alarmedOps, k, seqWindow{calls: float64(raw.Requests), errors: float64(raw.Errors), lat: raw.SelfTime, vetted: vetted}, w, graph.KindSelfTime, bs.first)
		if !w.ClientOps[k] {
			served[k.Service] = append(served[k.Service], opWeight{op: k, calls: float64(raw.Requests), w: wt})
		}
		// A client call's duration is its edge's latency, and a leaf
		// operation's is its self time: only the others' is tested.
		if _, known := bs.seqOpDur[k]; known || !w.ClientOps[k] && raw.SelfTime.Sum() < raw.Duration.Sum() {
			dur, durOK, _ := sequential(bs.seqOpDur, bs.alarmedDur, k, seqWindow{calls: float64(raw.Requests), lat: raw.Duration, vetted: vetted}, w, graph.KindP50, bs.first)
			seq, ok = merge(seq, ok, dur, durOK)
		}
		if sc, ok := pick(regime, seq, ok); ok {
			opAt[k] = len(out)
			out = append(out, Finding{Op: &k, Score: sc})
		}
	}
	idleSequential(bs.seqEdges, bs.alarmedEdges, w.Edges, w, graph.KindP50, graph.CompareEdge, func(k graph.EdgeKey, sc baseline.Score) {
		out = append(out, Finding{Edge: &k, Score: sc})
	})
	idle := map[graph.OpKey]baseline.Score{}
	idleSequential(bs.seqOps, bs.alarmedOps, w.Ops, w, graph.KindSelfTime, graph.CompareOp, func(k graph.OpKey, sc baseline.Score) { idle[k] = sc })
	idleSequential(bs.seqOpDur, bs.alarmedDur, w.Ops, w, graph.KindP50, graph.CompareOp, func(k graph.OpKey, sc baseline.Score) {
		idle[k], _ = merge(idle[k], len(idle[k].Features) > 0, sc, true)
	})
	for _, k := range graph.SortedKeys(idle, graph.CompareOp) {
		opAt[k] = len(out)
		out = append(out, Finding{Op: &k, Score: idle[k]})
	}
	out = bs.observeServices(w, served, out, opAt)
	bs.m.publish(bs.edges)
	return out
}

// judge scores the vector x of a window (pooled from start from) of the
// series k in all, creating its baseline (seeded by name) on first sight.
func judge[K comparable](bs *Baselines, all map[K]*series, k K, cfg *baseline.Config, name string, w *graph.Window, from time.Time, x []float64, calls int64) baseline.Score {
	s, ok := all[k]
	if !ok {
		s = &series{b: baseline.New(cfg, seed(name))}
		all[k] = s
	}
	sc := s.b.Observe(from.UnixNano(), x, float64(calls))
	bs.m.count(sc)
	s.last, s.at = sc, w.Start
	if !sc.Anomalous && !sc.Active {
		// Kept for every series until its next window: the per-feature
		// detail of a normal one (current and expected values, which the
		// recent windows and regimes show too) was a twentieth of an
		// edge's memory.
		s.last.Features = nil
	}
	return sc
}

// Metrics are the baselines' Prometheus collectors. Scores are
// exported per service-level edge (source, target), the worst operation's,
// and only for edges that are anomalous or in an episode, at most
// MaxScoreSeries of them: cardinality stays bounded whatever the graph.
type Metrics struct {
	score     *prometheus.GaugeVec
	episodes  prometheus.Counter
	windows   *prometheus.CounterVec
	anomalous prometheus.Gauge
	dropped   prometheus.Counter
	exported  map[[2]string]bool
}

// MaxScoreSeries bounds the anomaly score series exported.
const MaxScoreSeries = 200

// NewMetrics creates the collectors and registers them with reg
// (nil registers nothing).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		score: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "causeway_edge_anomaly_score",
			Help: "Anomaly score (regime spreads beyond normal) of the worst operation of an edge that is anomalous or in an episode; absent when normal.",
		}, []string{"source", "target"}),
		episodes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_anomaly_episodes_total", Help: "Anomalous episodes opened on edges and operations.",
		}),
		windows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_baseline_windows_total", Help: "Windows scored against baselines, by verdict (normal, anomalous, warming).",
		}, []string{"verdict"}),
		anomalous: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "causeway_anomalous_edges", Help: "Edges (source, target) in an anomalous episode.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_anomaly_score_series_dropped_total", Help: "Edge scores not exported because MaxScoreSeries was reached.",
		}),
		exported: make(map[[2]string]bool),
	}
	if reg != nil {
		reg.MustRegister(m.score, m.episodes, m.windows, m.anomalous, m.dropped)
	}
	return m
}

func (m *Metrics) count(s baseline.Score) {
	switch {
	case s.Warming:
		m.windows.WithLabelValues("warming").Inc()
	case s.Anomalous:
		m.windows.WithLabelValues("anomalous").Inc()
	default:
		m.windows.WithLabelValues("normal").Inc()
	}
	if s.Opened {
		m.episodes.Inc()
	}
}

// publish sets the score gauges from the edges' latest verdicts.
func (m *Metrics) publish(edges map[graph.EdgeKey]*series) {
	worst := make(map[[2]string]float64)
	for k, s := range edges {
		if !s.last.Active && !s.last.Anomalous {
			continue
		}
		p := [2]string{k.Source, k.Target}
		worst[p] = max(worst[p], s.last.Value)
	}
	active := 0
	for p := range m.exported {
		if _, ok := worst[p]; !ok {
			m.score.DeleteLabelValues(p[0], p[1])
			delete(m.exported, p)
		}
	}
	for p, v := range worst {
		active++
		if !m.exported[p] && len(m.exported) >= MaxScoreSeries {
			m.dropped.Inc()
			continue
		}
		m.exported[p] = true
		m.score.WithLabelValues(p[0], p[1]).Set(v)
	}
	m.anomalous.Set(float64(active))
}
