package bench

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/causeway/causeway/detect"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/span"
)

// The graph of BenchmarkScale: services, operations per service, edges.
const (
	scaleServices = 2000
	scaleOpsPer   = 25 // 50,000 operations
	scaleCalls    = 5  // calls per edge per window: enough to be learned from
)

// scaleWindow appends one 10 s window of traffic starting at t0: every edge
// called scaleCalls times, each call a trace of a caller span and a callee
// span. Edge i goes from service (i/50000 + 1 + callee) to operation
// i%25 of callee i%2000, so the edges are distinct.
func scaleWindow(dst []span.Span, edges int, names []string, ops [][]string, t0 int64, seq *uint64) []span.Span {
	for c := range scaleCalls {
		for i := range edges {
			callee := i % scaleServices
			op := (i / scaleServices) % scaleOpsPer
			caller := (i/(scaleServices*scaleOpsPer) + 1 + callee) % scaleServices
			*seq++
			var tid span.TraceID
			for k := range 8 {
				tid[k] = byte(*seq >> (8 * k))
			}
			tid[15] = 1
			start := t0 + int64(c)*int64(2*time.Second) + int64(i%1000)*int64(time.Millisecond)
			root := span.ID{1, byte(*seq), byte(*seq >> 8), byte(*seq >> 16)}
			dst = append(dst,
				span.Span{TraceID: tid, SpanID: root, Service: names[caller], Name: "GET /", Kind: span.KindServer,
					Start: start, End: start + int64(30*time.Millisecond)},
				span.Span{TraceID: tid, SpanID: span.ID{2, byte(*seq), byte(*seq >> 8), byte(*seq >> 16)}, ParentID: root,
					Service: names[callee], Name: ops[callee][op], Kind: span.KindServer,
					Start: start + int64(time.Millisecond), End: start + int64(20*time.Millisecond)})
		}
	}
	return dst
}

// BenchmarkScale tracks 100,000 edges between 2,000 services with 50,000
// operations through the whole analysis (graph, baselines, incidents) for
// six windows. BenchmarkScaleSteady tracks 10,000 of those edges for 110
// windows, until every baseline's sample of past windows is full: the
// memory an edge costs for good. Both report the heap each edge costs once
// the traffic's pending traces are joined and its windows closed
// (baselines, totals, operations); the summary of make bench sets it
// against the 8 KiB target.
func BenchmarkScale(b *testing.B)       { scale(b, 100_000, 6) }
func BenchmarkScaleSteady(b *testing.B) { scale(b, 10_000, 110) }

func scale(b *testing.B, nEdges, windows int) {
	names := make([]string, scaleServices)
	ops := make([][]string, scaleServices)
	for s := range names {
		names[s] = fmt.Sprintf("service-%04d", s)
		for o := range scaleOpsPer {
			ops[s] = append(ops[s], fmt.Sprintf("/api/v1/resource-%02d", o))
		}
	}
	var perEdge, spansPerS float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		p, err := detect.New(detect.Options{Graph: graph.Config{Workers: 1}})
		if err != nil {
			b.Fatal(err)
		}
		var seq uint64
		var buf []span.Span
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
		spans := 0
		start := time.Now()
		for w := range windows {
			buf = scaleWindow(buf[:0], nEdges, names, ops, t0+int64(w)*int64(10*time.Second), &seq)
			for i := 0; i < len(buf); i += 1000 {
				p.Graph.Add(buf[i:min(i+1000, len(buf))])
			}
			spans += len(buf)
		}
		spansPerS = float64(spans) / time.Since(start).Seconds()
		// What stays per edge: the traces pending and the windows open
		// are the traffic's, not the edges'.
		p.Graph.Flush()
		buf = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		edges, _ := p.Baselines.Len()
		perEdge = float64(after.HeapAlloc-before.HeapAlloc) / float64(edges)
		shown := 0
		for _, e := range p.Graph.Snapshot().Edges {
			shown += len(e.Operations)
		}
		if shown != nEdges || edges < nEdges {
			b.Fatalf("the graph shows %d edges and baselines %d, want %d", shown, edges, nEdges)
		}
		runtime.KeepAlive(p)
	}
	b.ReportMetric(perEdge, "bytes/edge")
	b.ReportMetric(spansPerS, "spans/s")
}
