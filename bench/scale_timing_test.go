package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/causeway/causeway/detect"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/span"
)

// The graph of BenchmarkScale, as the issue sets it: services, operations
// per service, calls per edge per window (enough to be learned from).
// Every operation is called from two services, so edges are twice the
// operations.
const (
	scaleServices = 2000
	scaleOpsPer   = 25 // 50,000 operations
	scaleCalls    = 5
)

// scaleWindow appends one 10 s window of traffic starting at t0: every edge
// called scaleCalls times, each call a trace of a caller span and a callee
// span, durations varying as real ones do (log-normal, median 20 ms, a
// call in a hundred ten times slower), so sketches hold what they would. Edge i goes to operation (i/services)%25 of callee i%services,
// from service (callee + 1 + i/(services*25)) % services, so the edges are
// distinct while i < 2*services*25.
func scaleWindow(dst []span.Span, edges int, names []string, ops [][]string, t0 int64, seq *uint64, r *rand.Rand) []span.Span {
	services := len(names)
	for c := range scaleCalls {
		for i := range edges {
			callee := i % services
			op := (i / services) % scaleOpsPer
			caller := (i/(services*scaleOpsPer) + 1 + callee) % services
			*seq++
			var tid span.TraceID
			for k := range 8 {
				tid[k] = byte(*seq >> (8 * k))
			}
			tid[15] = 1
			start := t0 + int64(c)*int64(2*time.Second) + int64(i%1000)*int64(time.Millisecond)
			d := 20 * math.Exp(0.5*r.NormFloat64())
			if r.IntN(100) == 0 {
				d *= 10
			}
			dur := int64(d * float64(time.Millisecond))
			root := span.ID{1, byte(*seq), byte(*seq >> 8), byte(*seq >> 16)}
			dst = append(dst,
				span.Span{TraceID: tid, SpanID: root, Service: names[caller], Name: "GET /", Kind: span.KindServer,
					Start: start, End: start + dur + int64(time.Duration(2+r.IntN(10))*time.Millisecond)},
				span.Span{TraceID: tid, SpanID: span.ID{2, byte(*seq), byte(*seq >> 8), byte(*seq >> 16)}, ParentID: root,
					Service: names[callee], Name: ops[callee][op], Kind: span.KindServer,
					Start: start + int64(time.Millisecond), End: start + int64(time.Millisecond) + dur})
		}
	}
	return dst
}

// BenchmarkScale tracks 100,000 edges between 2,000 services with 50,000
// operations through the whole analysis (graph, baselines, incidents) for
// six windows. BenchmarkScaleSteady is the same graph at a tenth of the
// size (10,000 edges, 200 services, 5,000 operations) for 110 windows,
// until every baseline's sample of past windows is full: the memory an
// edge costs for good. Both report the heap each edge costs once the
// traffic's pending traces are joined and its windows closed (baselines,
// totals, operations); the summary of make bench sets it against the 8 KiB
// target.
func BenchmarkScale(b *testing.B)       { scale(b, scaleServices, 100_000, 6) }
func BenchmarkScaleSteady(b *testing.B) { scale(b, scaleServices/10, 10_000, 110) }

// BenchmarkScaleSteadyOneOp is BenchmarkScaleSteady with every operation
// called over one edge only (5,000 edges, 5,000 operations): with it, what
// an edge and what an operation cost apart (graph.EdgeBytes and
// graph.OperationBytes, from which the memory budget derives the caps).
func BenchmarkScaleSteadyOneOp(b *testing.B) { scale(b, scaleServices/10, 5_000, 110) }

var scaleHook func()

func scale(b *testing.B, services, nEdges, windows int) {
	names := make([]string, services)
	ops := make([][]string, services)
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
		r := rand.New(rand.NewPCG(1, 2))
		var buf []span.Span
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
		spans := 0
		start := time.Now()
		for w := range windows {
			buf = scaleWindow(buf[:0], nEdges, names, ops, t0+int64(w)*int64(10*time.Second), &seq, r)
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
		if scaleHook != nil {
			scaleHook()
		}
		runtime.KeepAlive(p)
	}
	b.ReportMetric(perEdge, "bytes/edge")
	b.ReportMetric(spansPerS, "spans/s")
}
