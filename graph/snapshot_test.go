package graph

import (
	"fmt"
	"slices"
	"testing"
)

// TestSnapshotBounded: a limit keeps the busiest nodes and the edges
// between them, a service keeps it and its neighbours, and what is left
// out is said; within bounds the snapshot is served as it is.
func TestSnapshotBounded(t *testing.T) {
	node := func(id string) NodeView { return NodeView{Node: Node{Name: id, Kind: NodeService}} }
	edge := func(a, b string, calls int64) EdgeView {
		return EdgeView{Source: a, Target: b, Total: StatsView{Requests: calls}}
	}
	s := &Snapshot{Nodes: []NodeView{node("a"), node("b"), node("c"), node("d")},
		Edges: []EdgeView{edge("a", "b", 100), edge("b", "c", 10), edge("c", "d", 1)}}
	names := func(g *Snapshot) (ns, es []string) {
		for _, n := range g.Nodes {
			ns = append(ns, n.Name)
		}
		for _, e := range g.Edges {
			es = append(es, e.Source+">"+e.Target)
		}
		return
	}
	for _, tc := range []struct {
		service      string
		limit        int
		nodes, edges string
		truncated    bool
	}{
		{"", 0, "[a b c d]", "[a>b b>c c>d]", false},
		{"", 4, "[a b c d]", "[a>b b>c c>d]", false},
		{"", 2, "[a b]", "[a>b]", true},
		{"", 3, "[a b c]", "[a>b b>c]", true},
		{"c", 0, "[b c d]", "[b>c c>d]", true},
		{"c", 2, "[b c]", "[b>c]", true},
		{"nosuch", 0, "[]", "[]", true},
	} {
		g := s.Bounded(tc.service, tc.limit)
		ns, es := names(g)
		if fmt.Sprint(ns) != tc.nodes && !(len(ns) == 0 && tc.nodes == "[]") || fmt.Sprint(es) != tc.edges && !(len(es) == 0 && tc.edges == "[]") || g.Truncated != tc.truncated {
			t.Errorf("Bounded(%q, %d): nodes %v edges %v truncated %v; want %s %s %v", tc.service, tc.limit, ns, es, g.Truncated, tc.nodes, tc.edges, tc.truncated)
		}
		if g.Truncated && (g.TotalNodes != 4 || g.TotalEdges != 3) {
			t.Errorf("Bounded(%q, %d): totals %d nodes %d edges, want 4 and 3", tc.service, tc.limit, g.TotalNodes, g.TotalEdges)
		}
		if !g.Truncated && g != s {
			t.Errorf("Bounded(%q, %d) copied a snapshot within bounds", tc.service, tc.limit)
		}
	}
	if !slices.Equal(func() []string { n, _ := names(s); return n }(), []string{"a", "b", "c", "d"}) {
		t.Error("Bounded changed the snapshot")
	}
}
