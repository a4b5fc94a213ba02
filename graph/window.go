package graph

import "time"

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
}

func newWindow(start, end int64) *Window {
	return &Window{
		Start: time.Unix(0, start).UTC(),
		End:   time.Unix(0, end).UTC(),
		Edges: make(map[EdgeKey]*EdgeStats),
		Ops:   make(map[OpKey]*OpStats),
		Nodes: make(map[string]Node),

		ClientOps: make(map[OpKey]bool),
	}
}
