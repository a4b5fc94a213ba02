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

func TestWindowEncodeMerge(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, b := testWindow(t0, 30, 1), testWindow(t0, 20, 50)
	enc, err := EncodeWindow(a)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeWindow(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Start.Equal(a.Start) || !back.End.Equal(a.End) || !reflect.DeepEqual(back.Nodes, a.Nodes) || !reflect.DeepEqual(back.ClientOps, a.ClientOps) || !reflect.DeepEqual(back.Callees, a.Callees) || !reflect.DeepEqual(back.Unanswered, a.Unanswered) {
		t.Fatalf("decoded window %+v, want %+v", back, a)
	}
	for k, e := range a.Edges {
		d := back.Edges[k]
		if d == nil || d.Requests != e.Requests || d.Errors != e.Errors || d.Latency.String() != e.Latency.String() ||
			d.GapSum != e.GapSum || !reflect.DeepEqual(d.Exemplars, e.Exemplars) {
			t.Errorf("edge %v: decoded %+v, want %+v", k, d, e)
		}
	}
	// Merging the decoded halves equals merging the originals.
	direct := testWindow(t0, 30, 1)
	direct.Merge(b)
	viaWire := back
	bb, _ := EncodeWindow(b)
	bd, _ := DecodeWindow(bb)
	viaWire.Merge(bd)
	for k, e := range direct.Edges {
		if m := viaWire.Edges[k]; m.Requests != 50 || m.Requests != e.Requests || m.Latency.String() != e.Latency.String() {
			t.Errorf("merged edge %v: %+v, want %+v", k, m, e)
		}
	}
	if _, err := DecodeWindow([]byte("not a window")); err == nil {
		t.Error("garbage decoded")
	}
}
