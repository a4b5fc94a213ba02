package graph

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/causeway/causeway/model/sketch"
	"github.com/causeway/causeway/span"
)

// The aggregator's state as a checkpoint holds it: everything the windows
// still open and the traces still pending were built from, so a detector
// restarted from it and fed the messages after it closes the same windows
// as one that never stopped. It can be loaded with another Config.Workers:
// pending traces go to the shard of their trace id, open windows to the
// first shard (then float sums may differ in their last bits, as between
// any two worker counts).
//
// Version 2 writes the pending traces after the gob stream (writePending);
// version 1 held them in Pending, and is still read.
const aggregatorStateVersion = 2

type aggregatorState struct {
	Version  int
	Window   time.Duration // must match: windows of another length do not line up
	MaxEnd   int64
	SrcMax   map[int]int64
	ClosedTo int64
	// ShardClosedTo is where the joining side had closed windows (with
	// several workers, the shards trail the driving side until they
	// have handled the last batch).
	ShardClosedTo int64
	// Open holds each part's open windows, by start: one part, or one per
	// shard. Loaded with as many workers, each shard gets its own back
	// (the windows come out bit for bit as without the restart); with
	// another number, they are merged into the first.
	Open [][]*Window
	// Pending is where version 1 held the pending traces, in expiry-queue
	// order, shard after shard; version 2 writes them after the stream.
	Pending []pendingState
	Edges   []EdgeKey
	Ops     map[string][]string
	// The view behind Snapshot: every closed window merged, and the last.
	Total      *Window
	Last       *Window
	FirstStart time.Time
}

type pendingState struct {
	At      int64 // the queue entry's time (may be stale: below LastEnd)
	ID      span.TraceID
	LastEnd int64
	// Compact and Peers are the trace's spans as they are held
	// (pendingSpan). Spans is how checkpoints of earlier builds held them:
	// read, converted, never written.
	Compact []pendingSpan
	Peers   []Node
	Spans   []span.Span
}

// parts are the aggregators that join and file: a itself, or its shards.
func (a *Aggregator) parts() []*Aggregator {
	if a.par == nil {
		return []*Aggregator{a}
	}
	out := make([]*Aggregator, len(a.par.shards))
	for i, sw := range a.par.shards {
		out[i] = sw.agg
	}
	return out
}

// SaveState writes what the aggregator holds between batches: open
// windows, pending traces, event time, the caps' bookkeeping and the
// merged view. Call it on the driving goroutine. With several workers it
// first waits until every shard has handled what it was given and every
// window they closed has been published (to the WindowFunc), so that
// what the WindowFunc keeps can be saved consistently afterwards.
func (a *Aggregator) SaveState(w io.Writer) error {
	if a.par != nil {
		a.par.broadcast(itemSync, 0)
	}
	st := aggregatorState{Version: aggregatorStateVersion, Window: a.cfg.Window, MaxEnd: a.maxEnd, SrcMax: a.srcMax,
		ClosedTo: a.closedTo, ShardClosedTo: math.MaxInt64, Ops: map[string][]string{}}
	for _, p := range a.parts() {
		st.ShardClosedTo = min(st.ShardClosedTo, p.closedTo)
		starts := make([]int64, 0, len(p.open))
		for s := range p.open {
			starts = append(starts, s)
		}
		slices.Sort(starts)
		open := make([]*Window, 0, len(starts))
		for _, s := range starts {
			open = append(open, p.open[s])
		}
		st.Open = append(st.Open, open)
	}
	a.adm.mu.Lock()
	st.Edges = SortedKeys(a.adm.edges, CompareEdge)
	for svc, ops := range a.adm.opsBySvc {
		names := make([]string, 0, len(ops))
		for op := range ops {
			names = append(names, op)
		}
		slices.Sort(names)
		st.Ops[svc] = names
	}
	a.adm.mu.Unlock()
	a.view.mu.Lock()
	st.Total, st.Last, st.FirstStart = a.view.total, a.view.last, a.view.firstStart
	err := gob.NewEncoder(w).Encode(&st)
	a.view.mu.Unlock()
	if err == nil {
		err = writePending(w, a.parts())
	}
	if err != nil {
		return fmt.Errorf("save graph state: %w", err)
	}
	return nil
}

// LoadState replaces the state of a new aggregator, before anything has
// been added to it, with one SaveState wrote (with any number of workers).
// It fails, changing nothing, when the state is unreadable or has windows
// of another length.
func (a *Aggregator) LoadState(r io.Reader) error {
	var st aggregatorState
	// A byte reader, so that gob reads its message and no further.
	br := bufio.NewReader(r)
	if err := gob.NewDecoder(br).Decode(&st); err != nil {
		return fmt.Errorf("load graph state: %w", err)
	}
	switch {
	case st.Version != 1 && st.Version != aggregatorStateVersion:
		return fmt.Errorf("load graph state: version %d, this build reads 1 to %d", st.Version, aggregatorStateVersion)
	case st.Window != a.cfg.Window:
		return fmt.Errorf("load graph state: windows of %v, configured %v", st.Window, a.cfg.Window)
	}
	for _, ws := range st.Open {
		for _, w := range ws {
			if w == nil {
				return errors.New("load graph state: empty window")
			}
		}
	}
	if st.Version >= 2 {
		var err error
		if st.Pending, err = readPending(br); err != nil {
			return fmt.Errorf("load graph state: %w", err)
		}
	}
	seen := make(map[span.TraceID]bool, len(st.Pending))
	for _, ps := range st.Pending {
		if seen[ps.ID] {
			return fmt.Errorf("load graph state: trace %s pending twice", ps.ID)
		}
		seen[ps.ID] = true
	}

	if a.par != nil {
		// The shards are idle past a barrier: what is set here happens
		// before they handle their next batch.
		a.par.broadcast(itemSync, 0)
	}
	parts := a.parts()
	for _, p := range parts {
		p.pend, p.open, p.lastWin = newPending(), make(map[int64]*Window), nil
		// The slots point into the windows replaced here.
		p.ops, p.edgeSlots = make(map[OpKey]*slot[OpKey, *OpStats]), make(map[EdgeKey]*slot[EdgeKey, *EdgeStats])
		if st.ShardClosedTo != math.MaxInt64 {
			p.closedTo = st.ShardClosedTo
		}
	}
	// Each part's open windows back to it; with another number of parts,
	// all to the first, whose windows the others' are merged into when
	// they close.
	for i, ws := range st.Open {
		p := parts[0]
		if len(st.Open) == len(parts) {
			p = parts[i]
		}
		for _, w := range ws {
			start := w.Start.UnixNano()
			if old := p.open[start]; old != nil {
				old.Merge(fillWindow(w))
				continue
			}
			p.open[start] = fillWindow(w)
		}
	}
	for _, ps := range st.Pending {
		p := parts[0]
		if a.par != nil {
			p = parts[a.par.shardOf(ps.ID)]
		}
		t := &pendingTrace{id: ps.ID, lastEnd: ps.LastEnd, spans: ps.Compact, peers: ps.Peers}
		for i := range ps.Spans {
			t.append(&ps.Spans[i])
		}
		p.pend.put(t, ps.At) // in saved heap order: no moves within one heap
	}
	var pendingN int
	var pendingB int64
	for _, p := range parts {
		p.pendingN.Store(int64(p.pend.nSpans))
		p.pendingB.Store(p.pend.nBytes)
		pendingN += p.pend.nSpans
		pendingB += p.pend.nBytes
	}
	a.adm.mu.Lock()
	for _, k := range st.Edges {
		a.adm.edges[k] = struct{}{}
		a.adm.nodes[k.Source], a.adm.nodes[k.Target] = struct{}{}, struct{}{}
	}
	for svc, names := range st.Ops {
		a.adm.nodes[svc] = struct{}{}
		m := make(map[string]struct{}, len(names))
		for _, n := range names {
			m[n] = struct{}{}
		}
		a.adm.opsBySvc[svc] = m
	}
	a.m.edgesTracked.Set(float64(len(a.adm.edges)))
	a.adm.mu.Unlock()
	a.view.mu.Lock()
	if st.Total != nil {
		a.view.total = compactWindow(fillWindow(st.Total))
	}
	if st.Last != nil {
		a.view.last = fillWindow(st.Last)
	}
	a.view.firstStart, a.view.snap = st.FirstStart, nil
	a.view.mu.Unlock()
	a.maxEnd, a.srcMax, a.closedTo = st.MaxEnd, st.SrcMax, st.ClosedTo
	a.m.pendingSpans.Set(float64(pendingN))
	a.m.pendingBytes.Set(float64(pendingB))
	return nil
}

// compactWindow makes the sketches of a decoded window of totals compact
// ones, as View.Add makes them.
func compactWindow(w *Window) *Window {
	for _, e := range w.Edges {
		e.Latency = e.Latency.Compact()
	}
	for _, o := range w.Ops {
		o.Duration, o.SelfTime = o.Duration.Compact(), o.SelfTime.Compact()
	}
	return w
}

// fillWindow gives a decoded window the empty maps and sketches gob leaves
// out.
func fillWindow(w *Window) *Window {
	if w.Edges == nil {
		w.Edges = make(map[EdgeKey]*EdgeStats)
	}
	if w.Ops == nil {
		w.Ops = make(map[OpKey]*OpStats)
	}
	if w.Nodes == nil {
		w.Nodes = make(map[string]Node)
	}
	if w.ClientOps == nil {
		w.ClientOps = make(map[OpKey]bool)
	}
	if w.Callees == nil {
		w.Callees = make(map[OpKey]string)
	}
	if w.Unanswered == nil {
		w.Unanswered = make(map[OpKey]bool)
	}
	for _, e := range w.Edges {
		e.Latency = OrEmpty(e.Latency)
	}
	for _, o := range w.Ops {
		o.Duration, o.SelfTime = OrEmpty(o.Duration), OrEmpty(o.SelfTime)
	}
	return w
}

// OrEmpty is l, or an empty sketch for one gob left out (an empty sketch
// encodes as nothing): decoded windows and baselines fill their stats
// with it.
func OrEmpty(l *sketch.Latency) *sketch.Latency {
	if l == nil {
		return sketch.NewLatency()
	}
	return l
}
