package graph

import (
	"math"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/span"
)

// maxWorkers bounds Config.Workers.
const maxWorkers = 256

// parallel spreads an Aggregator's joining and filing over shards, one
// goroutine each, by trace id, so a trace is always joined whole by one
// shard.
//
// Event time stays with the driving goroutine. For every batch of spans it
// drops the late ones, moves the watermark exactly as one aggregator would,
// and hands each shard its spans with the watermark they were followed by.
// A shard admits its spans and then moves on to that watermark: it finishes
// the same traces and closes the same windows one aggregator would have, at
// the same point of the stream. A merge goroutine merges the shards' parts
// of a window, in shard order, once every shard has closed it, and
// publishes it.
//
// So the windows, and the calls in them, are those of one worker: what
// differs is float rounding in latency sums (added in another order) and,
// among exemplars of equal latency, which are kept. Caps are shared (one
// admission for edges and operations), except MaxPendingSpans, which each
// shard applies to its own share.
type parallel struct {
	a       *Aggregator // the driving side: event time, view, metrics
	shards  []*shardWorker
	reports chan shardReport
	wg      sync.WaitGroup
	// closedHigh is the highest closedTo a shard reported at the last
	// barrier, for ClosedTo after Flush.
	closedHigh int64

	bufs [][]span.Span // spans gathered per shard for the batch at hand
	free chan []span.Span
	sent []int64 // the watermark each shard was last given
	stop func()
}

// shardWorker is one shard: an aggregator of its own, fed over in.
type shardWorker struct {
	agg *Aggregator
	in  chan shardItem
	// closed collects the windows agg closed while handling an item.
	closed []*Window
}

type itemKind uint8

const (
	itemSpans      itemKind = iota // admit spans, then move to wm
	itemFlush                      // finish every trace, close every window
	itemStartAfter                 // StartAfter(wm)
	itemSync                       // nothing: a barrier, after which the shards are idle (SaveState)
)

type shardItem struct {
	kind  itemKind
	spans []span.Span // owned by the shard until it returns them to free
	wm    int64
	done  *barrier // the merge goroutine closes it once every shard has reported it
}

type shardReport struct {
	shard    int
	windows  []*Window
	closedTo int64
	done     *barrier
}

// barrier is a point every shard passes; ch closes once all have, and
// every window closed before it has been published.
type barrier struct {
	flush bool // after it, every shard has closed every window
	seen  int
	ch    chan struct{}
}

// shardQueue bounds the batches waiting for each shard.
const shardQueue = 64

func startParallel(a *Aggregator) *parallel {
	n := a.cfg.Workers
	p := &parallel{
		a:       a,
		reports: make(chan shardReport, n*shardQueue),
		bufs:    make([][]span.Span, n),
		free:    make(chan []span.Span, n*(shardQueue+2)),
		sent:    make([]int64, n),
	}
	shardCfg := a.cfg.SplitPending(n)
	// Shards count into the aggregator's counters; its gauges are set
	// here and by the merge goroutine.
	m := *a.m
	m.pendingSpans = prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_graph_shard_pending_spans"})
	m.pendingBytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_graph_shard_pending_bytes"})
	m.watermark = prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_graph_shard_watermark_seconds"})
	for i := range n {
		sw := &shardWorker{in: make(chan shardItem, shardQueue)}
		sw.agg = newAggregator(shardCfg, func(w *Window) { sw.closed = append(sw.closed, w) }, &m, a.adm)
		sw.agg.shard = true
		p.shards = append(p.shards, sw)
		p.sent[i] = math.MinInt64
	}
	for i, sw := range p.shards {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.runShard(i, sw)
		}()
	}
	merged := make(chan struct{})
	go func() {
		defer close(merged)
		p.runMerge()
	}()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			for _, sw := range p.shards {
				close(sw.in)
			}
			p.wg.Wait()
			close(p.reports)
			<-merged
		})
	}
	return p
}

func (p *parallel) close() { p.stop() }

// shardOf picks the shard of a trace.
func (p *parallel) shardOf(id span.TraceID) int {
	h := uint64(id[0]) | uint64(id[1])<<8 | uint64(id[2])<<16 | uint64(id[3])<<24 |
		uint64(id[12])<<32 | uint64(id[13])<<40 | uint64(id[14])<<48 | uint64(id[15])<<56
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return int(h % uint64(len(p.shards)))
}

// add is Aggregator.add with shards: the late check and event time here,
// the spans to their shards.
func (p *parallel) add(source int, spans []span.Span) (late int) {
	a := p.a
	srcEnd, seen := a.srcMax[source]
	for i := range spans {
		s := &spans[i]
		if a.isLate(s) {
			late++
			continue
		}
		a.maxEnd = max(a.maxEnd, s.End)
		srcEnd = max(srcEnd, s.End)
		k := p.shardOf(s.TraceID)
		if p.bufs[k] == nil {
			p.bufs[k] = p.buffer()
		}
		p.bufs[k] = append(p.bufs[k], *s)
	}
	a.noteSource(source, seen, srcEnd)
	a.m.tooLate.Add(float64(late))
	p.advance(p.bufs)
	var pending, bytes int64
	for _, sw := range p.shards {
		pending += sw.agg.pendingN.Load()
		bytes += sw.agg.pendingB.Load()
	}
	a.m.pendingSpans.Set(float64(pending))
	a.m.pendingBytes.Set(float64(bytes))
	return late
}

// advance hands each shard its spans in bufs (nil: none) and the
// watermark, skipping shards with no spans whose watermark is unchanged.
func (p *parallel) advance(bufs [][]span.Span) {
	a := p.a
	wm := a.watermark()
	// Where Aggregator.advance closes through, with no windows here.
	a.passClosed(wm - int64(a.cfg.TraceIdle) - int64(a.cfg.Lateness))
	for k, sw := range p.shards {
		var spans []span.Span
		if bufs != nil {
			spans, bufs[k] = bufs[k], nil
		}
		if len(spans) == 0 && p.sent[k] == wm { // a buffer is taken only to add to it
			continue
		}
		p.sent[k] = wm
		sw.in <- shardItem{kind: itemSpans, spans: spans, wm: wm}
	}
}

// buffer returns an empty span slice for a shard's batch.
func (p *parallel) buffer() []span.Span {
	select {
	case b := <-p.free:
		return b
	default:
		return make([]span.Span, 0, 256)
	}
}

// flush finishes every trace and closes every window, and returns once the
// last of them has been published.
func (p *parallel) flush() {
	p.broadcast(itemFlush, 0)
	p.a.closedTo = max(p.a.closedTo, p.closedHigh)
}

func (p *parallel) startAfter(t int64) { p.broadcast(itemStartAfter, t) }

// broadcast sends every shard an item of kind and waits until each has
// handled it and the merge goroutine has published what that closed.
func (p *parallel) broadcast(kind itemKind, wm int64) {
	b := &barrier{flush: kind == itemFlush, ch: make(chan struct{})}
	for _, sw := range p.shards {
		sw.in <- shardItem{kind: kind, wm: wm, done: b}
	}
	<-b.ch
}

func (p *parallel) runShard(i int, sw *shardWorker) {
	a := sw.agg
	last := a.closedTo
	for it := range sw.in {
		switch it.kind {
		case itemSpans:
			late := 0
			for j := range it.spans {
				s := &it.spans[j]
				if a.isLate(s) { // a window this shard closed early (OpenWindows)
					late++
					continue
				}
				a.pend.add(s)
			}
			a.m.tooLate.Add(float64(late))
			a.evictOver()
			a.advance(it.wm)
			if it.spans != nil {
				clear(it.spans) // drop string references
				select {
				case p.free <- it.spans[:0]:
				default:
				}
			}
		case itemFlush:
			a.Flush()
		case itemStartAfter:
			a.StartAfter(it.wm)
		case itemSync:
		}
		a.pendingN.Store(int64(a.pend.nSpans))
		a.pendingB.Store(a.pend.nBytes)
		if len(sw.closed) == 0 && a.closedTo == last && it.done == nil {
			continue
		}
		last = a.closedTo
		p.reports <- shardReport{shard: i, windows: sw.closed, closedTo: a.closedTo, done: it.done}
		sw.closed = nil
	}
}

// runMerge merges the shards' parts of each window and publishes a window
// once every shard has closed it, oldest first.
func (p *parallel) runMerge() {
	n := len(p.shards)
	closedTo := make([]int64, n)
	parts := map[int64][]*Window{} // by window start, indexed by shard
	publish := func(upTo int64) {
		var starts []int64
		for s, ws := range parts {
			if upTo == math.MaxInt64 || firstEnd(ws) <= upTo {
				starts = append(starts, s)
			}
		}
		slices.Sort(starts)
		for _, s := range starts {
			var w *Window
			for _, part := range parts[s] {
				switch {
				case part == nil:
				case w == nil:
					w = part
				default:
					w.Merge(part)
				}
			}
			delete(parts, s)
			p.a.publish(w)
		}
	}
	for r := range p.reports {
		for _, w := range r.windows {
			s := w.Start.UnixNano()
			if parts[s] == nil {
				parts[s] = make([]*Window, n)
			}
			parts[s][r.shard] = w
		}
		closedTo[r.shard] = r.closedTo
		if r.done == nil {
			publish(slices.Min(closedTo))
			continue
		}
		if r.done.seen++; r.done.seen < n {
			continue
		}
		// Every shard has passed the barrier. After a flush every
		// window is closed, whatever the shards' closedTo says.
		p.closedHigh = slices.Max(closedTo)
		if r.done.flush {
			publish(math.MaxInt64)
		} else {
			publish(slices.Min(closedTo))
		}
		close(r.done.ch)
	}
}

// firstEnd is the end of the window whose parts ws are.
func firstEnd(ws []*Window) int64 {
	for _, w := range ws {
		if w != nil {
			return w.End.UnixNano()
		}
	}
	return math.MaxInt64
}

// admission holds the caps on edges and operations for an aggregator and
// all its shards.
type admission struct {
	mu       sync.Mutex
	maxEdges int
	maxOps   int // per service
	maxAll   int // in all
	maxNodes int
	nOps     int
	m        *Metrics
	edges    map[EdgeKey]struct{} // every edge tracked
	opsBySvc map[string]map[string]struct{}
	nodes    map[string]struct{} // every node name tracked
}

func newAdmission(cfg Config, m *Metrics) *admission {
	return &admission{maxEdges: cfg.MaxEdges, maxOps: cfg.MaxOpsPerService, maxAll: cfg.MaxOperations, maxNodes: cfg.MaxNodes, m: m,
		edges: make(map[EdgeKey]struct{}), opsBySvc: make(map[string]map[string]struct{}), nodes: make(map[string]struct{})}
}

// node returns name, or OverflowNode once MaxNodes others are tracked.
func (ad *admission) node(name string) string {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if _, ok := ad.nodes[name]; ok {
		return name
	}
	if len(ad.nodes) >= ad.maxNodes {
		ad.m.capHit.WithLabelValues("nodes").Inc()
		return OverflowNode
	}
	ad.nodes[name] = struct{}{}
	return name
}

// edge admits k under the MaxEdges cap.
func (ad *admission) edge(k EdgeKey) bool {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if _, ok := ad.edges[k]; ok {
		return true
	}
	if len(ad.edges) >= ad.maxEdges {
		ad.m.capHit.WithLabelValues("edges").Inc()
		return false
	}
	ad.edges[k] = struct{}{}
	ad.m.edgesTracked.Set(float64(len(ad.edges)))
	return true
}

// op returns k, or its service's overflow operation once the service has
// MaxOpsPerService others; false once MaxOperations are tracked and
// neither is.
func (ad *admission) op(k OpKey) (OpKey, bool) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	ops, ok := ad.opsBySvc[k.Service]
	if ok {
		if _, ok := ops[k.Operation]; ok {
			return k, true
		}
	}
	if ad.nOps >= ad.maxAll {
		if _, ok := ops[OverflowOperation]; ok {
			ad.m.capHit.WithLabelValues("operations").Inc()
			return OpKey{Service: k.Service, Operation: OverflowOperation}, true
		}
		ad.m.capHit.WithLabelValues("operations_total").Inc()
		return OpKey{}, false
	}
	if ops == nil {
		ops = make(map[string]struct{})
		ad.opsBySvc[k.Service] = ops
	}
	if len(ops) >= ad.maxOps {
		ad.m.capHit.WithLabelValues("operations").Inc()
		k.Operation = OverflowOperation
		if _, ok := ops[OverflowOperation]; ok {
			return k, true
		}
	}
	ops[k.Operation] = struct{}{}
	ad.nOps++
	return k, true
}
