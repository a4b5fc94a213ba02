package graph_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/causeway/causeway/api"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/span"
)

// A million distinct operation names on one service (a cardinality attack,
// or a service that puts ids in its span names) keep memory flat: after the
// first 1,000 they fold into the overflow operation, in the service's runs
// and in its callers' calls, and the baselines see one series more.
func TestCardinalityAttackKeepsMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("a million traces")
	}
	m := graph.NewMetrics(nil)
	bs := baselines.New(nil)
	a := graph.New(graph.Config{}, func(w *graph.Window) { bs.Observe(w) }, m)
	defer a.Close()
	const names, chunks = 1_000_000, 5
	buf := make([]span.Span, 0, 2000)
	var heap []uint64
	for c := range chunks {
		for i := c * names / chunks; i < (c+1)*names/chunks; i++ {
			var tid span.TraceID
			copy(tid[:], strconv.Itoa(i))
			tid[15] = 1
			start := graph.Epoch + int64(i)*int64(200*time.Microsecond) // 200 s of event time
			buf = append(buf,
				span.Span{TraceID: tid, SpanID: span.ID{1}, Service: "frontend", Name: "GET", Kind: span.KindServer,
					Start: start, End: start + 10e6},
				span.Span{TraceID: tid, SpanID: span.ID{2}, ParentID: span.ID{1}, Service: "cart",
					Name: "GET /cart/" + strconv.Itoa(i), Kind: span.KindServer, Start: start + 1e6, End: start + 9e6})
			if len(buf) == cap(buf) {
				a.Add(buf)
				buf = buf[:0]
			}
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = append(heap, ms.HeapAlloc)
	}
	// The first chunk fills the caps; the other four add nothing lasting.
	for c := 2; c < chunks; c++ {
		if grown := float64(heap[c]) / float64(heap[1]); grown > 1.15 {
			t.Errorf("heap %v after %d names grew %.2fx since %d: %v", heap[c], (c+1)*names/chunks, grown, 2*names/chunks, heap)
		}
	}
	a.Flush()
	edges, ops := bs.Len()
	if ops > 1001+1 || edges > 1001 {
		t.Errorf("baselines for %d edges and %d operations, want at most 1,001 each (plus frontend)", edges, ops)
	}
	var cartOps int
	for _, n := range a.Snapshot().Nodes {
		if n.Name == "cart" {
			cartOps = len(n.Operations)
		}
	}
	if cartOps != 1001 {
		t.Errorf("cart shows %d operations, want 1,000 and %s", cartOps, graph.OverflowOperation)
	}
	for _, e := range a.Snapshot().Edges {
		if len(e.Operations) != 1001 {
			t.Errorf("%s->%s has %d operations, want 1,000 and %s", e.Source, e.Target, len(e.Operations), graph.OverflowOperation)
		}
	}
	t.Logf("heap after each %d names: %v", names/chunks, fmt.Sprint(heap))
}

// A flood of service names and of peer names (100,000 each: a bug that
// puts a pod id in service.name, a client calling a host per tenant)
// stays within MaxNodes: further nodes fold into OverflowNode, counted,
// and the graph and the baselines stop growing.
func TestCardinalityAttackOnNodeNames(t *testing.T) {
	if testing.Short() {
		t.Skip("two hundred thousand traces")
	}
	reg := prometheus.NewRegistry()
	m := graph.NewMetrics(reg)
	bs := baselines.New(nil)
	a := graph.New(graph.Config{MaxNodes: 1000}, func(w *graph.Window) { bs.Observe(w) }, m)
	defer a.Close()
	const names = 100_000
	buf := make([]span.Span, 0, 3000)
	for i := range names {
		var tid span.TraceID
		copy(tid[:], strconv.Itoa(i))
		tid[15] = 2
		start := graph.Epoch + int64(i)*int64(time.Millisecond) // 100 s of event time
		svc := "svc-" + strconv.Itoa(i)
		buf = append(buf,
			span.Span{TraceID: tid, SpanID: span.ID{1}, Service: "frontend", Name: "GET", Kind: span.KindServer, Start: start, End: start + 10e6},
			span.Span{TraceID: tid, SpanID: span.ID{2}, ParentID: span.ID{1}, Service: "frontend", Name: "call", Kind: span.KindClient,
				Start: start + 1e6, End: start + 9e6},
			span.Span{TraceID: tid, SpanID: span.ID{3}, ParentID: span.ID{2}, Service: svc, Name: "GET", Kind: span.KindServer,
				Start: start + 2e6, End: start + 8e6},
			span.Span{TraceID: tid, SpanID: span.ID{4}, ParentID: span.ID{3}, Service: svc, Name: "fetch", Kind: span.KindClient,
				ServerAddress: "tenant-" + strconv.Itoa(i) + ".example", Start: start + 3e6, End: start + 7e6})
		if len(buf) == cap(buf) {
			a.Add(buf)
			buf = buf[:0]
		}
	}
	a.Add(buf)
	a.Flush()
	snap := a.Snapshot()
	if len(snap.Nodes) > 1001 {
		t.Errorf("%d nodes, want at most 1,000 and %s", len(snap.Nodes), graph.OverflowNode)
	}
	if !slices.ContainsFunc(snap.Nodes, func(n graph.NodeView) bool { return n.Name == graph.OverflowNode }) {
		t.Errorf("no %s node", graph.OverflowNode)
	}
	if edges, ops := bs.Len(); edges > 1001 || ops > 2002 {
		t.Errorf("baselines for %d edges and %d operations: the flood grew them", edges, ops)
	}
	if hits := testutil.ToFloat64(graph.CapHits(m).WithLabelValues("nodes")); hits < names {
		t.Errorf("nodes cap hit %v times, want every folded call and run counted (at least %d)", hits, names)
	}
}

// Under a memory budget, a flood of new names of every kind at once
// (100,000 services, each with its own operation and its own peer host)
// leaves the live heap within the budget: the caps derived from it
// (graph.Config.WithBudget) and the node cap fold or drop what is past
// them, and every cap hit is counted; the API serves the graph left under
// 1 MB by default.
func TestMemoryBudgetHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("a hundred thousand traces")
	}
	const budget = 128 << 20
	cfg := graph.Config{}.WithBudget(budget)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	reg := prometheus.NewRegistry()
	m := graph.NewMetrics(reg)
	bs := baselines.New(nil)
	a := graph.New(cfg, func(w *graph.Window) { bs.Observe(w) }, m)
	defer a.Close()
	const names = 100_000
	buf := make([]span.Span, 0, 4000)
	var peak uint64
	for i := range names {
		var tid span.TraceID
		copy(tid[:], strconv.Itoa(i))
		tid[15] = 3
		start := graph.Epoch + int64(i)*int64(time.Millisecond) // 100 s of event time
		n := strconv.Itoa(i)
		svc := "svc-" + n
		buf = append(buf,
			span.Span{TraceID: tid, SpanID: span.ID{1}, Service: "frontend", Name: "GET", Kind: span.KindServer, Start: start, End: start + 10e6},
			span.Span{TraceID: tid, SpanID: span.ID{2}, ParentID: span.ID{1}, Service: "frontend", Name: "call", Kind: span.KindClient,
				Start: start + 1e6, End: start + 9e6},
			span.Span{TraceID: tid, SpanID: span.ID{3}, ParentID: span.ID{2}, Service: svc, Name: "GET /item/" + n, Kind: span.KindServer,
				Start: start + 2e6, End: start + 8e6},
			span.Span{TraceID: tid, SpanID: span.ID{4}, ParentID: span.ID{3}, Service: svc, Name: "fetch", Kind: span.KindClient,
				ServerAddress: "tenant-" + n + ".example", Start: start + 3e6, End: start + 7e6})
		if len(buf) == cap(buf) {
			a.Add(buf)
			buf = buf[:0]
			if i%(names/10) < 1000 {
				runtime.GC()
				runtime.ReadMemStats(&after)
				peak = max(peak, after.HeapAlloc)
			}
		}
	}
	a.Add(buf)
	a.Flush()
	runtime.GC()
	runtime.ReadMemStats(&after)
	peak = max(peak, after.HeapAlloc)
	used := int64(peak) - int64(before.HeapAlloc)
	t.Logf("live heap grew by at most %d MiB under a budget of %d MiB (caps: %d pending spans, %d edges, %d operations)",
		used>>20, budget>>20, cfg.MaxPendingSpans, cfg.MaxEdges, cfg.MaxOperations)
	if used > budget {
		t.Errorf("live heap grew by %d bytes, beyond the budget of %d", used, budget)
	}
	edges, ops := bs.Len()
	if edges > cfg.MaxEdges || ops > cfg.MaxOperations+1 {
		t.Errorf("baselines for %d edges and %d operations, beyond the caps %d and %d", edges, ops, cfg.MaxEdges, cfg.MaxOperations)
	}
	hits := graph.CapHits(m)
	// Nodes fold first; the operations of the nodes kept reach their
	// total cap before their edges reach theirs.
	for _, c := range []string{"nodes", "operations_total"} {
		if n := testutil.ToFloat64(hits.WithLabelValues(c)); n == 0 {
			t.Errorf("the %s cap was never counted as hit", c)
		}
	}
	// What the API serves of that graph by default stays small.
	rec := httptest.NewRecorder()
	api.Handler(api.Options{Graph: a, Gatherer: reg}).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/graph", nil))
	var g graph.Snapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &g); rec.Code != 200 || err != nil {
		t.Fatalf("GET /api/v1/graph: %d %v %.200s", rec.Code, err, rec.Body.Bytes())
	}
	t.Logf("GET /api/v1/graph: %d bytes, %d of %d nodes", rec.Body.Len(), len(g.Nodes), g.TotalNodes)
	if rec.Body.Len() > 1<<20 || !g.Truncated {
		t.Errorf("GET /api/v1/graph: %d bytes (truncated %v); want under 1 MB, saying what it left out", rec.Body.Len(), g.Truncated)
	}
	runtime.KeepAlive(a)
}
