package graph

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/span"
)

// Config sets the aggregator's windows and bounds. The zero value of every
// field means its default.
type Config struct {
	// Window is the length of the tumbling event-time windows. Default 10s.
	Window time.Duration `yaml:"window"`
	// TraceIdle is how far event time must move past a trace's last span
	// before the trace counts as finished and is joined. Default 15s: SDKs
	// export every 5s by default and batching adds more, so a trace's spans
	// from a quiet service can arrive well after its busy callers'; on the
	// Nezha Online Boutique minute, 5s loses a fifth of the calls, 15s 3%.
	TraceIdle time.Duration `yaml:"trace_idle"`
	// Lateness is how long a window stays open after the watermark passes
	// its end, for traces that finish late. Default 5s.
	Lateness time.Duration `yaml:"lateness"`
	// MaxPendingSpans caps the spans waiting for their trace to finish.
	// Over it, the oldest traces are joined early (counted). The detector
	// derives it from its memory budget (WithBudget); unset here, 1,000,000.
	MaxPendingSpans int `yaml:"max_pending_spans"`
	// MaxPendingBytes caps the heap those spans hold, their traces'
	// entries and spare room included (pendingTrace.bytes), so that many
	// small traces cannot outgrow the memory budget that many large ones
	// fit in. Over it, as over MaxPendingSpans. The detector derives it from
	// its memory budget; unset here, no cap.
	MaxPendingBytes int64 `yaml:"max_pending_bytes"`
	// MaxEdges caps the distinct edges tracked; calls on new edges past it
	// are counted and dropped. Derived from the memory budget like
	// MaxPendingSpans; unset here, 100,000.
	MaxEdges int `yaml:"max_edges"`
	// MaxOpsPerService caps the distinct operations of one service; runs of
	// further operations are folded into the operation "__overflow__".
	// Default 1,000. The operations of a call's callee count too.
	MaxOpsPerService int `yaml:"max_ops_per_service"`
	// MaxOperations caps the operations tracked in all, overflow ones
	// included, so a flood of service names cannot grow memory either;
	// runs and calls of further ones are counted and dropped. Derived from
	// the memory budget like MaxPendingSpans; unset here, 200,000.
	MaxOperations int `yaml:"max_operations"`
	// MaxNodes caps the distinct node names: services, and the databases,
	// caches, queues and external hosts seen from client spans. Calls and
	// runs naming further ones are folded into the node "__overflow__"
	// (counted), so a flood of service or peer names grows neither the
	// graph nor the baselines. Default 10,000.
	MaxNodes int `yaml:"max_nodes"`
	// OpenWindows caps how many windows may be open at once; past it the
	// oldest is closed early. Default 64.
	OpenWindows int `yaml:"open_windows"`
	// Workers is how many goroutines pair spans and fill windows, each
	// with the traces whose ids hash to it (see parallel.go). Default 1:
	// all on the caller's goroutine. The detector sets it to the number of
	// CPUs.
	Workers int `yaml:"workers"`
}

// OverflowOperation is the operation name further operations of a service
// are folded into once MaxOpsPerService is reached; OverflowNode the node
// name further nodes are folded into once MaxNodes is reached.
const (
	OverflowOperation = "__overflow__"
	OverflowNode      = "__overflow__"
)

func (c Config) withDefaults() Config {
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	if c.TraceIdle <= 0 {
		c.TraceIdle = 15 * time.Second
	}
	if c.Lateness <= 0 {
		c.Lateness = 5 * time.Second
	}
	if c.MaxPendingSpans <= 0 {
		c.MaxPendingSpans = 1_000_000
	}
	if c.MaxEdges <= 0 {
		c.MaxEdges = 100_000
	}
	if c.MaxOpsPerService <= 0 {
		c.MaxOpsPerService = 1000
	}
	if c.MaxOperations <= 0 {
		c.MaxOperations = 200_000
	}
	if c.MaxNodes <= 0 {
		c.MaxNodes = 10_000
	}
	if c.OpenWindows <= 0 {
		c.OpenWindows = 64
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	return c
}

// Validate reports the first setting that cannot work, naming the field.
func (c Config) Validate() error {
	if c.Window < 0 || c.TraceIdle < 0 || c.Lateness < 0 {
		return errors.New("graph: window, trace_idle and lateness must not be negative")
	}
	if c.Window > 0 && c.Window < time.Millisecond {
		return fmt.Errorf("graph: window %v is shorter than 1ms", c.Window)
	}
	if c.Workers < 0 || c.Workers > maxWorkers {
		return fmt.Errorf("graph: workers %d is not between 0 (default) and %d", c.Workers, maxWorkers)
	}
	return nil
}

// WindowFunc receives each closed window, in event-time order. It runs on
// the aggregator's goroutine and owns the window it is given.
type WindowFunc func(*Window)

// Aggregator joins spans into calls and files them in event-time windows.
// Spans go in through Add; a window closes once the watermark (the latest
// span end seen, minus TraceIdle and Lateness) passes its end, and is handed
// to the WindowFunc. An Aggregator is driven by one goroutine; Snapshot may
// be called from any goroutine.
//
// With Config.Workers above 1 the joining and filing run on that many
// goroutines of the aggregator's own, and the WindowFunc on another; Close
// stops them. Event time is still kept by the driving goroutine, so the
// windows and what is in them are those of one worker (parallel.go).
type Aggregator struct {
	cfg      Config
	onWindow WindowFunc
	m        *Metrics

	// Event time, kept by the driving goroutine in both modes.
	maxEnd int64 // latest span end seen (event time)
	// srcMax is the latest span end per source (Kafka partition) fed
	// through AddFrom; the watermark follows the slowest of them.
	srcMax   map[int]int64
	closedTo int64 // windows ending at or before this are closed

	// Joining and filing: the aggregator's own with one worker, each
	// shard's with several.
	pend   *pending
	joiner joiner
	open   map[int64]*Window // open windows by start
	// lastWin is the open window window() returned last, starting at
	// lastStart; it is closed once closedTo passes its end.
	lastWin   *Window
	lastStart int64
	adm       *admission                             // the caps on edges and operations, shared by shards
	ops       map[OpKey]*slot[OpKey, *OpStats]       // operations admitted so far, a cache of adm's
	edgeSlots map[EdgeKey]*slot[EdgeKey, *EdgeStats] // the same for calls
	cache     *slotCaches                            // in front of ops and edgeSlots (slotcache.go)
	shard     bool                                   // one of a parallel aggregator's shards: publish only hands windows on
	par       *parallel                              // the shards; nil with one worker
	pendingN  atomic.Int64                           // pending spans, for a parallel aggregator's gauge
	pendingB  atomic.Int64                           // and their bytes

	view   *View // every closed window, for Snapshot
	noView bool  // SkipView: closed windows are not kept in view
}

// New returns an aggregator that hands closed windows to onWindow (which
// may be nil) and records its counters in m (which may be nil). With
// cfg.Workers above 1 it starts its goroutines: call Close when done.
func New(cfg Config, onWindow WindowFunc, m *Metrics) *Aggregator {
	cfg = cfg.withDefaults()
	if m == nil {
		m = NewMetrics(nil)
	}
	a := newAggregator(cfg, onWindow, m, newAdmission(cfg, m))
	a.view = NewView()
	if cfg.Workers > 1 {
		a.par = startParallel(a)
	}
	return a
}

func newAggregator(cfg Config, onWindow WindowFunc, m *Metrics, adm *admission) *Aggregator {
	return &Aggregator{
		cfg:       cfg,
		onWindow:  onWindow,
		m:         m,
		pend:      newPending(),
		open:      make(map[int64]*Window),
		adm:       adm,
		ops:       make(map[OpKey]*slot[OpKey, *OpStats]),
		edgeSlots: make(map[EdgeKey]*slot[EdgeKey, *EdgeStats]),
		cache:     new(slotCaches),
	}
}

// Close stops the goroutines of an aggregator with several workers, without
// flushing; windows still open are dropped. It is safe to call more than
// once, and a no-op with one worker.
func (a *Aggregator) Close() {
	if a.par != nil {
		a.par.close()
	}
}

// Add buffers valid spans, then joins the traces that have finished and
// closes the windows the watermark has passed. It returns how many spans
// were rejected as too late (their window already closed); those are also
// counted in the metrics.
func (a *Aggregator) Add(spans []span.Span) (late int) {
	return a.add(-1, spans)
}

// AddFrom is Add for spans from one of several sources read side by side,
// such as the partitions of a topic. Event time then advances with the
// slowest source, not the fastest: a partition read behind the others
// (a backlog, a slow broker) does not see its spans dropped as late. A
// source that stops sending holds windows open until ForgetSource.
func (a *Aggregator) AddFrom(source int, spans []span.Span) (late int) {
	return a.add(source, spans)
}

// SourceAt records that a source has delivered its spans up to event time
// t (Unix ns) without sending any: a watermark a re-key stage carries for
// the span partition it read them from. Event time moves on as if that
// source had sent a span ending at t.
func (a *Aggregator) SourceAt(source int, t int64) {
	if source < 0 {
		return
	}
	if a.srcMax == nil {
		a.srcMax = make(map[int]int64)
	}
	if t <= a.srcMax[source] {
		return
	}
	a.srcMax[source] = t
	a.maxEnd = max(a.maxEnd, t)
	a.moveOn()
}

// ExpectSource makes the watermark wait for a source not heard from yet
// (a partition just assigned, whose backlog is still to be read): until it
// sends spans or is forgotten, no window closes. A source already known
// is left as it is.
func (a *Aggregator) ExpectSource(source int) {
	if _, ok := a.srcMax[source]; ok || source < 0 {
		return
	}
	if a.srcMax == nil {
		a.srcMax = make(map[int]int64)
	}
	a.srcMax[source] = 0
}

// ForgetSource stops waiting for a source that has gone quiet (its
// partition was revoked, or has no traffic); it counts again from its next
// spans.
func (a *Aggregator) ForgetSource(source int) {
	if _, ok := a.srcMax[source]; ok {
		delete(a.srcMax, source)
		a.moveOn()
	}
}

// Sources lists the sources the watermark waits for.
func (a *Aggregator) Sources() []int {
	out := make([]int, 0, len(a.srcMax))
	for s := range a.srcMax {
		out = append(out, s)
	}
	return out
}

// watermark is the event time windows close by (before TraceIdle and
// Lateness): the slowest source's latest span end, or the latest span end
// of all when there are no sources.
func (a *Aggregator) watermark() int64 {
	if len(a.srcMax) == 0 {
		return a.maxEnd
	}
	wm := int64(1<<63 - 1)
	for _, m := range a.srcMax {
		wm = min(wm, m)
	}
	return wm
}

func (a *Aggregator) add(source int, spans []span.Span) (late int) {
	if a.par != nil {
		return a.par.add(source, spans)
	}
	srcEnd, seen := a.srcMax[source]
	for i := range spans {
		s := &spans[i]
		if a.isLate(s) {
			late++
			continue
		}
		a.pend.add(s)
		a.maxEnd = max(a.maxEnd, s.End)
		srcEnd = max(srcEnd, s.End)
	}
	a.noteSource(source, seen, srcEnd)
	a.m.tooLate.Add(float64(late))
	a.evictOver()
	a.advance(a.watermark())
	a.m.pendingSpans.Set(float64(a.pend.nSpans))
	a.m.pendingBytes.Set(float64(a.pend.nBytes))
	return late
}

// isLate reports whether s ends in a window already closed.
func (a *Aggregator) isLate(s *span.Span) bool {
	return a.windowStart(s.End)+int64(a.cfg.Window) <= a.closedTo
}

// noteSource records srcEnd as the latest span end of source (none: -1).
func (a *Aggregator) noteSource(source int, seen bool, srcEnd int64) {
	if source >= 0 && (seen || srcEnd > 0) {
		if a.srcMax == nil {
			a.srcMax = make(map[int]int64)
		}
		a.srcMax[source] = srcEnd
	}
}

// evictOver joins the oldest traces early while more spans, or more
// bytes, are pending than the caps allow.
func (a *Aggregator) evictOver() {
	for a.pend.nSpans > a.cfg.MaxPendingSpans || (a.cfg.MaxPendingBytes > 0 && a.pend.nBytes > a.cfg.MaxPendingBytes) {
		t := a.pend.popOldest()
		a.m.evicted.Inc()
		a.finish(t)
	}
}

// AdvanceTo moves event time forward to t (Unix ns) even without spans, so
// windows close when traffic stops. Live consumers call it from a wall-clock
// ticker with now minus a safety margin; replay never needs it.
func (a *Aggregator) AdvanceTo(t int64) {
	for s, m := range a.srcMax {
		a.srcMax[s] = max(m, t)
	}
	a.maxEnd = max(a.maxEnd, t)
	a.moveOn()
}

// moveOn finishes traces and closes windows by the watermark.
func (a *Aggregator) moveOn() {
	if a.par != nil {
		a.par.advance(nil)
		return
	}
	a.advance(a.watermark())
}

// Flush joins every pending trace and closes every open window, as at the
// end of a replay.
func (a *Aggregator) Flush() {
	if a.par != nil {
		a.par.flush()
		return
	}
	for t := a.pend.popOldest(); t != nil; t = a.pend.popOldest() {
		a.finish(t)
	}
	a.pend.release()
	a.closeThrough(int64(^uint64(0) >> 1))
	a.m.pendingSpans.Set(0)
	a.m.pendingBytes.Set(0)
}

func (a *Aggregator) advance(now int64) {
	cutoff := now - int64(a.cfg.TraceIdle)
	for t := a.pend.popExpired(cutoff); t != nil; t = a.pend.popExpired(cutoff) {
		a.finish(t)
	}
	a.closeThrough(cutoff - int64(a.cfg.Lateness))
}

func (a *Aggregator) windowStart(t int64) int64 {
	w := int64(a.cfg.Window)
	s := t - t%w
	if t < 0 && t%w != 0 {
		s -= w
	}
	return s
}

// window returns the open window holding event time t, or nil when that
// window is closed.
func (a *Aggregator) window(t int64) *Window {
	// Most calls of a trace fall in the window of the call before.
	if w := a.lastWin; w != nil && t >= a.lastStart && t < a.lastStart+int64(a.cfg.Window) && a.lastStart+int64(a.cfg.Window) > a.closedTo {
		return w
	}
	start := a.windowStart(t)
	end := start + int64(a.cfg.Window)
	if end <= a.closedTo {
		return nil
	}
	w, ok := a.open[start]
	if ok {
		a.lastWin, a.lastStart = w, start
		return w
	}
	if len(a.open) >= a.cfg.OpenWindows {
		a.m.windowsForced.Inc()
		a.closeThrough(a.oldestOpenEnd())
		if end <= a.closedTo {
			return nil
		}
	}
	w = newWindow(start, end)
	a.open[start] = w
	a.lastWin, a.lastStart = w, start
	return w
}

func (a *Aggregator) oldestOpenEnd() int64 {
	oldest := int64(^uint64(0) >> 1)
	for s := range a.open {
		oldest = min(oldest, s)
	}
	return oldest + int64(a.cfg.Window)
}

// finish joins a finished trace and files what it shows.
func (a *Aggregator) finish(t *pendingTrace) {
	edges, ops := a.joiner.join(t)
	late := 0
	for i := range edges {
		o := &edges[i]
		w := a.window(o.at)
		if w == nil {
			late++
			continue
		}
		sl := a.edgeSlot(o.edge)
		if sl == nil {
			continue
		}
		st := sl.st
		if sl.win != w {
			var ok bool
			if st, ok = w.Edges[sl.key]; !ok {
				if !a.track(sl.key) {
					continue
				}
				st = NewEdgeStats()
				w.Edges[sl.key] = st
				if _, ok := w.Nodes[sl.key.Source]; !ok {
					src := o.source
					src.Name = sl.key.Source // folded past MaxNodes
					w.Nodes[src.Name] = src
				}
				dst := o.target
				dst.Name = sl.key.Target
				w.Nodes[dst.Name] = dst
			}
			if sl.cached {
				sl.win, sl.st = w, st
			}
		}
		st.observe(t.id, o.latencyMS, o.failed)
		if o.hasGap {
			st.observeGap(o.gapMS)
		}
	}
	for i := range ops {
		o := &ops[i]
		w := a.window(o.at)
		if w == nil {
			late++
			continue
		}
		sl := a.opSlot(o.op)
		if sl == nil {
			continue
		}
		key, st := sl.key, sl.st
		if sl.win != w {
			var ok bool
			if st, ok = w.Ops[key]; !ok {
				st = NewOpStats()
				w.Ops[key] = st
				if _, ok := w.Nodes[key.Service]; !ok {
					w.Nodes[key.Service] = Node{Name: key.Service, Kind: NodeService}
				}
			}
			if sl.cached {
				sl.win, sl.st = w, st
			}
		}
		st.observe(o.durationMS, o.selfMS, o.failed)
		if o.client {
			w.ClientOps[key] = true
			switch {
			case o.callee == "": // nobody answered this call
				w.Unanswered[key] = true
			case w.Callees[key] == "":
				w.Callees[key] = o.callee
			}
		}
	}
	if late > 0 {
		a.m.lateObservations.Add(float64(late))
	}
	a.m.tracesJoined.Inc()
	a.pend.recycle(t)
}

// track admits a new edge under the MaxEdges cap.
func (a *Aggregator) track(k EdgeKey) bool { return a.adm.edge(k) }

// slot is what finish needs of one edge or operation: its key after the
// caps, and its statistics in the window it was last filed in. Looking it
// up is one map access where the caps and the window took two.
type slot[K comparable, S any] struct {
	key    K
	cached bool // kept in the aggregator's map (admitted under its own name)
	win    *Window
	st     S
}

// opSlot returns op's slot, its operation folded into the overflow one
// past MaxOpsPerService; nil when MaxOperations is reached and op is not
// tracked.
func (a *Aggregator) opSlot(k OpKey) *slot[OpKey, *OpStats] {
	sid, oid := idOf(k.Service), idOf(k.Operation)
	c := &a.cache.ops[cacheIndex(sid, oid, strID{})]
	if c.sl != nil && c.service == sid && c.op == oid {
		return c.sl
	}
	if sl, ok := a.ops[k]; ok {
		*c = opCacheEntry{sid, oid, sl}
		return sl
	}
	o, ok := a.adm.op(OpKey{Service: a.adm.node(k.Service), Operation: k.Operation})
	if !ok {
		return nil
	}
	sl := &slot[OpKey, *OpStats]{key: o}
	if o == k { // only admitted ones: a flood of new names is not cached
		sl.cached = true
		a.ops[k] = sl
	}
	return sl
}

// edgeSlot returns the slot of the call k: the callee's operations are
// capped as its own runs are. nil when the callee's operation is not
// tracked.
func (a *Aggregator) edgeSlot(k EdgeKey) *slot[EdgeKey, *EdgeStats] {
	sid, tid, oid := idOf(k.Source), idOf(k.Target), idOf(k.Operation)
	c := &a.cache.edges[cacheIndex(sid, tid, oid)]
	if c.sl != nil && c.source == sid && c.target == tid && c.op == oid {
		return c.sl
	}
	if sl, ok := a.edgeSlots[k]; ok {
		*c = edgeCacheEntry{sid, tid, oid, sl}
		return sl
	}
	source, target := a.adm.node(k.Source), a.adm.node(k.Target)
	o, ok := a.adm.op(OpKey{Service: target, Operation: k.Operation})
	if !ok {
		return nil
	}
	sl := &slot[EdgeKey, *EdgeStats]{key: EdgeKey{Source: source, Target: target, Operation: o.Operation}}
	if sl.key == k && len(a.edgeSlots) < a.cfg.MaxEdges {
		sl.cached = true
		a.edgeSlots[k] = sl
	}
	return sl
}

// forgetWindow drops the slots' references to a window being closed, so
// a quiet series does not keep it alive.
func (a *Aggregator) forgetWindow(w *Window) {
	for _, sl := range a.ops {
		if sl.win == w {
			sl.win, sl.st = nil, nil
		}
	}
	for _, sl := range a.edgeSlots {
		if sl.win == w {
			sl.win, sl.st = nil, nil
		}
	}
}

// closeThrough closes, oldest first, every open window ending at or before t.
func (a *Aggregator) closeThrough(t int64) {
	if t <= a.closedTo {
		return
	}
	for {
		start, found := int64(0), false
		for s := range a.open {
			if s+int64(a.cfg.Window) <= t && (!found || s < start) {
				start, found = s, true
			}
		}
		if !found {
			break
		}
		w := a.open[start]
		delete(a.open, start)
		a.closedTo = max(a.closedTo, start+int64(a.cfg.Window))
		a.forgetWindow(w)
		a.publish(w)
	}
	a.passClosed(t)
}

// passClosed marks closed every window ending at or before t, as closing
// through t does, whether or not this aggregator had them open (t at the
// end of time, from Flush, leaves closedTo at the last window closed).
func (a *Aggregator) passClosed(t int64) {
	if t < int64(^uint64(0)>>1) {
		a.closedTo = max(a.closedTo, a.windowStart(t))
	}
}

func (a *Aggregator) publish(w *Window) {
	if a.shard {
		a.onWindow(w)
		return
	}
	if !a.noView {
		a.view.Add(w)
	}
	a.m.windowsClosed.Inc()
	a.m.watermark.Set(float64(w.End.UnixNano()) / 1e9)
	if a.onWindow != nil {
		a.onWindow(w)
	}
}

// SkipView stops keeping closed windows for Snapshot, which then stays
// empty: a fleet partition worker's windows are merged, and served, by its
// member, and a view of each partition's own would cost the member CPU
// for nothing. Call it before any span.
func (a *Aggregator) SkipView() { a.noView = true }

// Snapshot returns the graph as of the last closed window. It is safe to
// call from any goroutine; the result is immutable.
func (a *Aggregator) Snapshot() *Snapshot { return a.view.Snapshot() }

// ClosedTo is the event time (Unix ns) up to which every window is closed:
// a span ending before it is too late to count.
func (a *Aggregator) ClosedTo() int64 { return a.closedTo }

// StartAfter declares every window ending at or before t (Unix ns) closed
// elsewhere: spans for them are counted as too late. A detector taking over
// a partition calls it with the watermark its previous owner published, so
// windows already published are not published again in part.
func (a *Aggregator) StartAfter(t int64) {
	a.passClosed(t)
	if a.par != nil {
		a.par.startAfter(t)
	}
}

// View is the service graph built from a sequence of closed windows: the
// last one, and all of them merged. Add is called from one goroutine;
// Snapshot from any.
//
// The Snapshot is built when first asked for after a window, not on every
// window: building it cost a third of the pipeline's allocations, and most
// windows are never looked at through the API.
type View struct {
	mu         sync.Mutex
	total      *Window   // all closed windows merged
	last       *Window   // the last window added; nil before the first
	firstStart time.Time // start of the first closed window
	snap       *Snapshot // built from last and total; nil when out of date
}

// NewView returns an empty view.
func NewView() *View {
	return &View{total: newWindow(0, 0)}
}

// Add folds a closed window into the view. w is retained until the next
// Add: a published window is never changed afterwards.
func (v *View) Add(w *Window) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, e := range w.Edges {
		t, ok := v.total.Edges[k]
		if !ok {
			t = newTotalEdgeStats()
			v.total.Edges[k] = t
		}
		t.Merge(e)
	}
	for k, o := range w.Ops {
		t, ok := v.total.Ops[k]
		if !ok {
			t = newTotalOpStats()
			v.total.Ops[k] = t
		}
		t.Merge(o)
	}
	for k, n := range w.Nodes {
		v.total.Nodes[k] = n
	}
	if v.firstStart.IsZero() {
		v.firstStart = w.Start
	}
	v.last, v.snap = w, nil
}

// Snapshot returns the graph as of the last window added; immutable. The
// first call after a window builds it, holding up Add meanwhile.
func (v *View) Snapshot() *Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.snap == nil {
		if v.last == nil {
			v.snap = &Snapshot{}
		} else {
			v.snap = newSnapshot(v.last, v.total, v.firstStart)
		}
	}
	return v.snap
}

// Metrics are the aggregator's Prometheus collectors.
type Metrics struct {
	tooLate          prometheus.Counter
	evicted          prometheus.Counter
	capHit           *prometheus.CounterVec
	lateObservations prometheus.Counter
	tracesJoined     prometheus.Counter
	windowsClosed    prometheus.Counter
	windowsForced    prometheus.Counter
	pendingSpans     prometheus.Gauge
	pendingBytes     prometheus.Gauge
	edgesTracked     prometheus.Gauge
	watermark        prometheus.Gauge
}

// NewMetrics creates the aggregator's collectors and registers them with reg
// (nil registers nothing).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := newMetrics(nil)
	if reg != nil {
		reg.MustRegister(m.collectors()...)
	}
	return m
}

// NewPartitionMetrics creates the collectors of the aggregator that joins
// one partition's spans (a fleet member's partition worker), labelled with
// the partition, and registers them with reg.
func NewPartitionMetrics(reg prometheus.Registerer, partition int) *Metrics {
	m := newMetrics(prometheus.Labels{"partition": strconv.Itoa(partition)})
	if reg != nil {
		reg.MustRegister(m.collectors()...)
	}
	return m
}

// Idle zeroes the gauges, for an aggregator that stopped (its partition
// went to another member): what it held is no longer held here.
func (m *Metrics) Idle() {
	m.pendingSpans.Set(0)
	m.pendingBytes.Set(0)
	m.edgesTracked.Set(0)
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.tooLate, m.evicted, m.capHit, m.lateObservations, m.tracesJoined,
		m.windowsClosed, m.windowsForced, m.pendingSpans, m.pendingBytes, m.edgesTracked, m.watermark}
}

func newMetrics(labels prometheus.Labels) *Metrics {
	return &Metrics{
		tooLate: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "causeway_graph_spans_too_late_total",
			Help:        "Spans dropped because their window had already closed.",
			ConstLabels: labels,
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "causeway_graph_traces_evicted_total",
			Help:        "Traces joined early because the pending store was full (their late spans pair no further).",
			ConstLabels: labels,
		}),
		capHit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "causeway_graph_cap_hits_total",
			Help:        "Observations dropped or folded because a cap was reached, by cap.",
			ConstLabels: labels,
		}, []string{"cap"}),
		lateObservations: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "causeway_graph_late_observations_total",
			Help:        "Calls and operation runs of traces that finished after their window closed.",
			ConstLabels: labels,
		}),
		tracesJoined: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "causeway_graph_traces_joined_total",
			Help:        "Traces joined into calls.",
			ConstLabels: labels,
		}),
		windowsClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "causeway_graph_windows_closed_total",
			Help:        "Event-time windows closed.",
			ConstLabels: labels,
		}),
		windowsForced: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "causeway_graph_windows_forced_total",
			Help:        "Windows closed early because too many were open (event times spread too wide).",
			ConstLabels: labels,
		}),
		pendingSpans: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "causeway_graph_pending_spans",
			Help:        "Spans waiting for their trace to finish.",
			ConstLabels: labels,
		}),
		pendingBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "causeway_graph_pending_bytes",
			Help:        "Heap held by the spans waiting for their trace, as graph.max_pending_bytes counts it.",
			ConstLabels: labels,
		}),
		edgesTracked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "causeway_graph_edges_tracked",
			Help:        "Distinct edges tracked.",
			ConstLabels: labels,
		}),
		watermark: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "causeway_graph_watermark_seconds",
			Help:        "End of the last closed window, Unix seconds (event time).",
			ConstLabels: labels,
		}),
	}
}

// Config returns the aggregator's configuration with defaults filled in.
func (a *Aggregator) Config() Config { return a.cfg }
