package graph

import (
	"reflect"
	"testing"
	"time"

	"github.com/causeway/causeway/span"
)

func testWindow(start time.Time, calls int, slow float64) *Window {
	w := NewWindow(start, start.Add(10*time.Second))
	k := EdgeKey{Source: "checkoutservice", Target: "paymentservice", Operation: "Charge"}
	e := NewEdgeStats()
	for i := range calls {
		e.observe(span.TraceID{byte(i), 1}, 5+slow*float64(i%3), i%10 == 0)
		e.observeGap(0.4)
	}
	w.Edges[k] = e
	o := NewOpStats()
	o.observe(12, 7, false)
	w.Ops[OpKey{Service: "paymentservice", Operation: "Charge"}] = o
	w.Nodes["paymentservice"] = Node{Name: "paymentservice", Kind: NodeService}
	w.Nodes["checkoutservice"] = Node{Name: "checkoutservice", Kind: NodeService}
	w.ClientOps[OpKey{Service: "checkoutservice", Operation: "Charge"}] = true
	w.Callees[OpKey{Service: "checkoutservice", Operation: "Charge"}] = "paymentservice"
	w.Unanswered[OpKey{Service: "checkoutservice", Operation: "GetQuote"}] = true
	return w
}

// TestWindowMerge: merging another partition's window over the same time
// adds its calls, keeps its nodes and flags, and leaves it unchanged.
func TestWindowMerge(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, b := testWindow(t0, 30, 1), testWindow(t0, 20, 50)
	a.Merge(b)
	k := EdgeKey{Source: "checkoutservice", Target: "paymentservice", Operation: "Charge"}
	if e := a.Edges[k]; e.Requests != 50 || e.Errors != 5 || e.Latency.Count() != 50 || e.GapCount != 50 {
		t.Errorf("merged edge %+v, want 50 calls, 5 failed, 50 gaps", e)
	}
	if b.Edges[k].Requests != 20 {
		t.Errorf("the merged window changed: %d calls", b.Edges[k].Requests)
	}
	if !reflect.DeepEqual(a.Nodes, b.Nodes) || !a.ClientOps[OpKey{Service: "checkoutservice", Operation: "Charge"}] {
		t.Errorf("merged nodes %v, client ops %v", a.Nodes, a.ClientOps)
	}
}
