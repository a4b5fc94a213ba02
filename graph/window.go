package graph

import (
	"time"
)

// Window is the statistics of one closed event-time window. A Window handed
// to a WindowFunc is owned by the receiver: the aggregator keeps no
// reference to it.
type Window struct {
	Start, End time.Time
	Edges      map[EdgeKey]*EdgeStats
	Ops        map[OpKey]*OpStats
	// Nodes lists every node an edge of this window touches, and every
	// service that ran an operation.
	Nodes map[string]Node
	// ClientOps marks the operations that are client or producer spans:
	// their time is mostly spent waiting for a callee.
	ClientOps map[OpKey]bool
	// Callees names, for a client operation whose calls a service's spans
	// answered, that service; Unanswered marks the client operations some
	// of whose calls nobody answered (an uninstrumented peer, or a lost
	// span). When all its calls were answered, the operation's self time
	// is the time they lost between the two ends.
	Callees    map[OpKey]string
	Unanswered map[OpKey]bool
}

func newWindow(start, end int64) *Window {
	return &Window{
		Start: time.Unix(0, start).UTC(),
		End:   time.Unix(0, end).UTC(),
		Edges: make(map[EdgeKey]*EdgeStats),
		Ops:   make(map[OpKey]*OpStats),
		Nodes: make(map[string]Node),

		ClientOps: make(map[OpKey]bool),
		Callees:   make(map[OpKey]string),

		Unanswered: make(map[OpKey]bool),
	}
}

// Merge adds the calls of o, a window over the same time from other spans
// (another partition's), into w. o is not retained.
func (w *Window) Merge(o *Window) {
	for k, e := range o.Edges {
		if t, ok := w.Edges[k]; ok {
			t.Merge(e)
		} else {
			w.Edges[k] = e.Clone()
		}
	}
	for k, s := range o.Ops {
		if t, ok := w.Ops[k]; ok {
			t.Merge(s)
		} else {
			w.Ops[k] = s.Clone()
		}
	}
	for k, n := range o.Nodes {
		if _, ok := w.Nodes[k]; !ok || n.Kind == NodeService {
			w.Nodes[k] = n
		}
	}
	for k, c := range o.ClientOps {
		w.ClientOps[k] = w.ClientOps[k] || c
	}
	for k, c := range o.Callees {
		if w.Callees[k] == "" {
			w.Callees[k] = c
		}
	}
	for k, u := range o.Unanswered {
		w.Unanswered[k] = w.Unanswered[k] || u
	}
}

// NewWindow returns an empty window over [start, end).
func NewWindow(start, end time.Time) *Window { return newWindow(start.UnixNano(), end.UnixNano()) }
