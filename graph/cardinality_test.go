package graph

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

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
	m := NewMetrics(nil)
	bs := NewBaselines(nil)
	a := New(Config{}, func(w *Window) { bs.Observe(w) }, m)
	defer a.Close()
	const names, chunks = 1_000_000, 5
	buf := make([]span.Span, 0, 2000)
	var heap []uint64
	for c := range chunks {
		for i := c * names / chunks; i < (c+1)*names/chunks; i++ {
			var tid span.TraceID
			copy(tid[:], strconv.Itoa(i))
			tid[15] = 1
			start := epoch + int64(i)*int64(200*time.Microsecond) // 200 s of event time
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
		t.Errorf("cart shows %d operations, want 1,000 and %s", cartOps, OverflowOperation)
	}
	for _, e := range a.Snapshot().Edges {
		if len(e.Operations) != 1001 {
			t.Errorf("%s->%s has %d operations, want 1,000 and %s", e.Source, e.Target, len(e.Operations), OverflowOperation)
		}
	}
	t.Logf("heap after each %d names: %v", names/chunks, fmt.Sprint(heap))
}
