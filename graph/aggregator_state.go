package graph

import (
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/causeway/causeway/span"
)

// The aggregator's state as a checkpoint holds it: everything the windows
// still open and the traces still pending were built from, so a detector
// restarted from it and fed the messages after it closes the same windows
// as one that never stopped.
const aggregatorStateVersion = 1

type aggregatorState struct {
	Version  int
	Window   time.Duration // must match: windows of another length do not line up
	MaxEnd   int64
	SrcMax   map[int]int64
	ClosedTo int64
	Open     []*Window      // by start
	Pending  []pendingState // in expiry-queue order
	Edges    []EdgeKey
	Ops      map[string][]string
	// The view behind Snapshot: every closed window merged, and the last.
	Total      *Window
	Last       *Window
	FirstStart time.Time
}

type pendingState struct {
	At      int64 // the queue entry's time (may be stale: below LastEnd)
	ID      span.TraceID
	LastEnd int64
	Spans   []span.Span
}

// SaveState writes what the aggregator holds between messages: open
// windows, pending traces, event time, the caps' bookkeeping and the
// merged view. Call it on the aggregator's goroutine.
func (a *Aggregator) SaveState(w io.Writer) error {
	st := aggregatorState{Version: aggregatorStateVersion, Window: a.cfg.Window, MaxEnd: a.maxEnd, SrcMax: a.srcMax,
		ClosedTo: a.closedTo, Ops: map[string][]string{}}
	starts := make([]int64, 0, len(a.open))
	for s := range a.open {
		starts = append(starts, s)
	}
	slices.Sort(starts)
	for _, s := range starts {
		st.Open = append(st.Open, a.open[s])
	}
	for _, it := range a.pend.queue {
		st.Pending = append(st.Pending, pendingState{At: it.at, ID: it.t.id, LastEnd: it.t.lastEnd, Spans: it.t.spans})
	}
	st.Edges = sortedKeys(a.edges, compareEdge)
	for svc, ops := range a.opsBySvc {
		names := make([]string, 0, len(ops))
		for op := range ops {
			names = append(names, op)
		}
		slices.Sort(names)
		st.Ops[svc] = names
	}
	st.Total, st.Last, st.FirstStart = a.view.total, a.view.last, a.view.firstStart
	if err := gob.NewEncoder(w).Encode(&st); err != nil {
		return fmt.Errorf("save graph state: %w", err)
	}
	return nil
}

// LoadState replaces the aggregator's state with one SaveState wrote. It
// fails, changing nothing, when the state is unreadable or has windows of
// another length.
func (a *Aggregator) LoadState(r io.Reader) error {
	var st aggregatorState
	if err := gob.NewDecoder(r).Decode(&st); err != nil {
		return fmt.Errorf("load graph state: %w", err)
	}
	switch {
	case st.Version != aggregatorStateVersion:
		return fmt.Errorf("load graph state: version %d, this build reads %d", st.Version, aggregatorStateVersion)
	case st.Window != a.cfg.Window:
		return fmt.Errorf("load graph state: windows of %v, configured %v", st.Window, a.cfg.Window)
	}
	open := make(map[int64]*Window, len(st.Open))
	for _, w := range st.Open {
		if w == nil {
			return errors.New("load graph state: empty window")
		}
		open[w.Start.UnixNano()] = fillWindow(w)
	}
	pend := newPending()
	for _, ps := range st.Pending {
		if _, dup := pend.traces[ps.ID]; dup {
			return fmt.Errorf("load graph state: trace %s pending twice", ps.ID)
		}
		t := &pendingTrace{id: ps.ID, lastEnd: ps.LastEnd, spans: ps.Spans}
		pend.traces[ps.ID] = t
		pend.queue = append(pend.queue, expiryItem{at: ps.At, t: t}) // saved in heap order
		pend.nSpans += len(ps.Spans)
	}
	edges := make(map[EdgeKey]struct{}, len(st.Edges))
	for _, k := range st.Edges {
		edges[k] = struct{}{}
	}
	ops := make(map[string]map[string]struct{}, len(st.Ops))
	for svc, names := range st.Ops {
		m := make(map[string]struct{}, len(names))
		for _, n := range names {
			m[n] = struct{}{}
		}
		ops[svc] = m
	}
	view := NewView()
	if st.Total != nil {
		view.total = fillWindow(st.Total)
	}
	view.firstStart = st.FirstStart
	if st.Last != nil {
		view.last = fillWindow(st.Last)
		view.snap.Store(newSnapshot(view.last, view.total, view.firstStart))
	}
	a.maxEnd, a.srcMax, a.closedTo = st.MaxEnd, st.SrcMax, st.ClosedTo
	a.open, a.pend, a.edges, a.opsBySvc, a.view = open, pend, edges, ops, view
	a.m.pendingSpans.Set(float64(pend.nSpans))
	a.m.edgesTracked.Set(float64(len(edges)))
	return nil
}

// fillWindow gives a decoded window the empty maps and sketches gob leaves out.
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
	for _, e := range w.Edges {
		e.Latency = orEmpty(e.Latency)
	}
	for _, o := range w.Ops {
		o.Duration, o.SelfTime = orEmpty(o.Duration), orEmpty(o.SelfTime)
	}
	return w
}
