package graph

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/causeway/causeway/span"
)

// call builds a two-span trace: a frontend server span calling svc/op.
func call(trace int, svc, op string, at time.Duration) []span.Span {
	var tid span.TraceID
	copy(tid[:], fmt.Sprintf("t%d", trace))
	start := epoch + int64(at)
	return []span.Span{
		{TraceID: tid, SpanID: span.ID{1}, Service: "frontend", Name: "GET", Kind: span.KindServer,
			Start: start, End: start + 10e6, GRPCStatus: -1},
		{TraceID: tid, SpanID: span.ID{2}, ParentID: span.ID{1}, Service: svc, Name: op, Kind: span.KindServer,
			Start: start + 1e6, End: start + 9e6, GRPCStatus: -1},
	}
}

func TestPendingCapJoinsOldestEarly(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	a := New(Config{MaxPendingSpans: 4}, nil, m)
	// Parent and child of trace 1 arrive apart, with two other traces in
	// between: the cap forces trace 1 out before its child arrives.
	t1 := call(1, "cart", "Get", 0)
	a.Add(t1[:1])
	a.Add(call(2, "cart", "Get", time.Millisecond))
	a.Add(call(3, "cart", "Get", 2*time.Millisecond))
	if got := testutil.ToFloat64(m.evicted); got != 1 {
		t.Fatalf("evicted %v traces, want 1", got)
	}
	if a.pend.nSpans > 4 {
		t.Fatalf("pending holds %d spans over the cap of 4", a.pend.nSpans)
	}
	a.Add(t1[1:])
	a.Flush()
	var calls int64
	for _, e := range a.Snapshot().Edges {
		calls += e.Total.Requests
	}
	if calls != 2 { // traces 2 and 3; trace 1 lost its pairing to the cap
		t.Fatalf("edge requests %d, want 2", calls)
	}
}

func TestEdgeCapAndOperationOverflow(t *testing.T) {
	m := NewMetrics(nil)
	a := New(Config{MaxEdges: 3, MaxOpsPerService: 2}, nil, m)
	for i := range 10 {
		a.Add(call(i, "cart", fmt.Sprintf("op%d", i), time.Duration(i)*time.Millisecond))
	}
	a.Flush()
	snap := a.Snapshot()
	// A callee's operations are folded alike in its runs and its calls.
	var calls []string
	for _, e := range snap.Edges {
		for _, op := range e.Operations {
			calls = append(calls, fmt.Sprintf("%s:%d", op.Name, op.Total.Requests))
		}
	}
	if want := []string{OverflowOperation + ":8", "op0:1", "op1:1"}; !slices.Equal(calls, want) {
		t.Errorf("calls %v, want %v", calls, want)
	}
	for _, n := range snap.Nodes {
		if n.Name != "cart" {
			continue
		}
		if len(n.Operations) != 3 || n.Operations[0].Name != OverflowOperation {
			t.Errorf("cart operations %+v, want op0, op1 and %s", n.Operations, OverflowOperation)
		}
		if n.Operations[0].Total.Requests != 8 {
			t.Errorf("overflow holds %d runs, want 8", n.Operations[0].Total.Requests)
		}
	}

	// Calls to ten services: three edges, the rest counted and dropped.
	m = NewMetrics(nil)
	a = New(Config{MaxEdges: 3}, nil, m)
	for i := range 10 {
		a.Add(call(i, fmt.Sprintf("cart%d", i), "get", time.Millisecond))
	}
	a.Flush()
	if n := len(a.Snapshot().Edges); n != 3 {
		t.Errorf("tracked %d edges, want the cap of 3", n)
	}
	if got := testutil.ToFloat64(m.capHit.WithLabelValues("edges")); got != 7 {
		t.Errorf("edge cap hits %v, want 7", got)
	}
}

// A flood of service and operation names (a cardinality attack) stops at
// MaxOperations: further runs and calls are counted and dropped.
func TestOperationsCapInAll(t *testing.T) {
	m := NewMetrics(nil)
	a := New(Config{MaxOperations: 5}, nil, m)
	for i := range 10 {
		a.Add(call(i, fmt.Sprintf("svc%d", i), "get", time.Millisecond))
	}
	a.Flush()
	ops := 0
	for _, n := range a.Snapshot().Nodes {
		ops += len(n.Operations)
	}
	if ops != 5 {
		t.Errorf("%d operations tracked, want the cap of 5", ops)
	}
	if got := testutil.ToFloat64(m.capHit.WithLabelValues("operations_total")); got == 0 {
		t.Error("the cap on operations in all was never counted")
	}
}

func TestWindowsCloseInOrderBehindWatermark(t *testing.T) {
	var got []time.Time
	a := New(Config{Window: 10 * time.Second, TraceIdle: time.Second, Lateness: time.Second},
		func(w *Window) { got = append(got, w.Start) }, nil)
	for i := range 5 {
		a.Add(call(i, "cart", "Get", time.Duration(i)*10*time.Second))
	}
	// Watermark: 40.01s - 2s: windows [0,10), [10,20), [20,30) closed.
	if len(got) != 3 {
		t.Fatalf("closed %d windows, want 3", len(got))
	}
	a.AdvanceTo(epoch + int64(100*time.Second))
	if len(got) != 5 {
		t.Fatalf("after AdvanceTo closed %d windows, want 5", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Sub(got[i-1]) != 10*time.Second {
			t.Fatalf("windows out of order or missing: %v", got)
		}
	}
	if late := a.Add(call(9, "cart", "Get", 5*time.Second)); late != 2 {
		t.Fatalf("late spans %d, want 2", late)
	}
}

func TestSelfTimeNeverNegative(t *testing.T) {
	var j joiner
	// Overlapping and out-of-range children.
	spans := []span.Span{
		{SpanID: span.ID{1}, Service: "a", Name: "x", Start: 100, End: 200},
		{SpanID: span.ID{2}, ParentID: span.ID{1}, Service: "a", Name: "y", Start: 50, End: 150},
		{SpanID: span.ID{3}, ParentID: span.ID{1}, Service: "a", Name: "y", Start: 120, End: 180},
		{SpanID: span.ID{4}, ParentID: span.ID{1}, Service: "a", Name: "y", Start: 190, End: 400},
	}
	tr := traceOf(spans)
	j.join(tr)
	if got := j.selfTime(tr.spans, 0); got != 10 { // covered: 100-180 and 190-200
		t.Fatalf("self time %d, want 10", got)
	}
}

// TestSlowestSourceHoldsTheWatermark: two partitions read side by side, one
// a minute behind. With AddFrom its spans still count; with Add the fast
// partition's spans close their windows first.
func TestSlowestSourceHoldsTheWatermark(t *testing.T) {
	for _, perSource := range []bool{true, false} {
		a := New(Config{}, nil, nil)
		add := func(src int, s []span.Span) int {
			if perSource {
				return a.AddFrom(src, s)
			}
			return a.Add(s)
		}
		late := 0
		for i := range 120 { // partition 0 at i s, partition 1 a minute behind
			late += add(1, call(2*i+1, "cart", "Get", time.Duration(i-60)*time.Second))
			late += add(0, call(2*i, "cart", "Get", time.Duration(i)*time.Second))
		}
		if perSource && late != 0 {
			t.Errorf("AddFrom: %d spans late from the slower partition", late)
		}
		if !perSource && late == 0 {
			t.Error("Add: no span late; the test does not separate the two")
		}
	}
	// A quiet source stops holding windows back once forgotten.
	var closed []*Window
	a := New(Config{}, func(w *Window) { closed = append(closed, w) }, nil)
	a.AddFrom(1, call(1, "cart", "Get", 0))
	for i := range 60 {
		a.AddFrom(0, call(100+i, "cart", "Get", time.Duration(i)*time.Second))
	}
	if len(closed) != 0 {
		t.Fatalf("%d windows closed while partition 1 was behind", len(closed))
	}
	a.ForgetSource(1)
	if len(closed) == 0 || len(a.Sources()) != 1 {
		t.Fatalf("after forgetting partition 1: %d windows closed, sources %v", len(closed), a.Sources())
	}
}

// TestClientOperationCallee: a client span answered by another service's
// span names that service as its callee; one calling an uninstrumented
// database, or answered within its own service, names none.
func TestClientOperationCallee(t *testing.T) {
	var j joiner
	spans := []span.Span{
		{SpanID: span.ID{1}, Service: "frontend", Name: "GET /cart", Kind: span.KindServer, Start: 0, End: 100},
		{SpanID: span.ID{2}, ParentID: span.ID{1}, Service: "frontend", Name: "Cart/Get", Kind: span.KindClient, Start: 10, End: 90},
		{SpanID: span.ID{3}, ParentID: span.ID{2}, Service: "cartservice", Name: "Cart/Get", Kind: span.KindServer, Start: 20, End: 80},
		{SpanID: span.ID{4}, ParentID: span.ID{3}, Service: "cartservice", Name: "HGET", Kind: span.KindClient, Start: 30, End: 70, DBSystem: "redis", ServerAddress: "redis-cart"},
		{SpanID: span.ID{5}, ParentID: span.ID{1}, Service: "frontend", Name: "render", Kind: span.KindClient, Start: 91, End: 99},
		{SpanID: span.ID{6}, ParentID: span.ID{5}, Service: "frontend", Name: "template", Kind: span.KindInternal, Start: 92, End: 98},
	}
	_, ops := j.join(traceOf(spans))
	got := map[string]string{}
	for _, o := range ops {
		got[o.op.Service+"/"+o.op.Operation] = o.callee
	}
	want := map[string]string{"frontend/GET /cart": "", "frontend/Cart/Get": "cartservice", "cartservice/Cart/Get": "",
		"cartservice/HGET": "", "frontend/render": "", "frontend/template": ""}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: callee %q, want %q", k, got[k], v)
		}
	}
}

// TestWindowCallees: a window names the callee of a client operation whose
// calls were answered, and marks one some of whose calls were not.
func TestWindowCallees(t *testing.T) {
	var windows []*Window
	a := New(Config{}, func(w *Window) { windows = append(windows, w) }, nil)
	clientCall := func(trace int, answered bool) []span.Span {
		var tid span.TraceID
		copy(tid[:], fmt.Sprintf("c%d", trace))
		start := epoch + int64(trace)*int64(time.Millisecond)
		spans := []span.Span{
			{TraceID: tid, SpanID: span.ID{1}, Service: "frontend", Name: "GET", Kind: span.KindServer, Start: start, End: start + 10e6, GRPCStatus: -1},
			{TraceID: tid, SpanID: span.ID{2}, ParentID: span.ID{1}, Service: "frontend", Name: "Cart/Get", Kind: span.KindClient, Start: start + 1e6, End: start + 9e6, GRPCStatus: -1},
			{TraceID: tid, SpanID: span.ID{4}, ParentID: span.ID{1}, Service: "frontend", Name: "Ads/Get", Kind: span.KindClient, Start: start + 1e6, End: start + 9e6, GRPCStatus: -1},
			{TraceID: tid, SpanID: span.ID{5}, ParentID: span.ID{4}, Service: "adservice", Name: "Ads/Get", Kind: span.KindServer, Start: start + 2e6, End: start + 8e6, GRPCStatus: -1},
		}
		if answered {
			spans = append(spans, span.Span{TraceID: tid, SpanID: span.ID{3}, ParentID: span.ID{2}, Service: "cartservice", Name: "Cart/Get", Kind: span.KindServer, Start: start + 2e6, End: start + 8e6, GRPCStatus: -1})
		}
		return spans
	}
	for i := range 4 {
		a.Add(clientCall(i, i != 2))
	}
	a.Flush()
	if len(windows) == 0 {
		t.Fatal("no window closed")
	}
	w := windows[0]
	cart, ads := OpKey{Service: "frontend", Operation: "Cart/Get"}, OpKey{Service: "frontend", Operation: "Ads/Get"}
	if w.Callees[cart] != "cartservice" || !w.Unanswered[cart] {
		t.Errorf("Cart/Get: callee %q, unanswered %v; want cartservice, and a call unanswered", w.Callees[cart], w.Unanswered[cart])
	}
	if w.Callees[ads] != "adservice" || w.Unanswered[ads] {
		t.Errorf("Ads/Get: callee %q, unanswered %v; want adservice, every call answered", w.Callees[ads], w.Unanswered[ads])
	}
}

// TestSkipView: an aggregator that skips its view hands every closed
// window on and keeps none for Snapshot; one that does not serves them.
func TestSkipView(t *testing.T) {
	for _, skip := range []bool{false, true} {
		var calls int64
		a := New(Config{Window: 10 * time.Second, TraceIdle: time.Second, Lateness: time.Second},
			func(w *Window) {
				for _, e := range w.Edges {
					calls += e.Requests
				}
			}, nil)
		if skip {
			a.SkipView()
		}
		for i := range 5 {
			a.Add(call(i, "cart", "Get", time.Duration(i)*10*time.Second))
		}
		a.AdvanceTo(epoch + int64(100*time.Second))
		var served int64
		for _, e := range a.Snapshot().Edges {
			served += e.Total.Requests
		}
		if want := map[bool]int64{false: calls, true: 0}[skip]; calls != 5 || served != want {
			t.Errorf("skip view %v: %d calls handed on, %d served; want 5 and %d", skip, calls, served, want)
		}
	}
}
