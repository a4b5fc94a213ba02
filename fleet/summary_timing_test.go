package fleet

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/sketch"
)

// summaryWindow is one partition's window as a member publishes it:
// edges and operations entries each (half of each), each with calls
// whose latencies a busy edge would show.
func summaryWindow(entries, calls int) *graph.Window {
	r := rand.New(rand.NewPCG(1, 2))
	w := graph.NewWindow(t0, t0.Add(10*time.Second))
	lat := func() *sketch.Latency {
		l := sketch.NewLatency()
		for range calls {
			l.Add(5 * (1 + r.ExpFloat64()))
		}
		return l
	}
	for i := range entries / 2 {
		k := graph.EdgeKey{Source: fmt.Sprintf("svc%03d", i%97), Target: fmt.Sprintf("svc%03d", i%89+100), Operation: fmt.Sprintf("op%d", i)}
		w.Edges[k] = &graph.EdgeStats{Requests: int64(calls), Latency: lat(), GapSum: 0.4 * float64(calls), GapCount: int64(calls)}
		o := graph.OpKey{Service: k.Target, Operation: k.Operation}
		w.Ops[o] = &graph.OpStats{Requests: int64(calls), Duration: lat(), SelfTime: lat()}
		w.Nodes[k.Source] = graph.Node{Name: k.Source, Kind: graph.NodeService}
		w.Nodes[k.Target] = graph.Node{Name: k.Target, Kind: graph.NodeService}
	}
	return w
}

// BenchmarkSummary measures, per edge or operation entry of a window
// summary, its encoded size and the CPU a member spends on it: encoding
// it once (the partition's owner), and decoding and merging it (every
// member, for every partition): the unit costs of docs/fleet.md's sizing
// model.
func BenchmarkSummary(b *testing.B) {
	for _, calls := range []int{5, 50} {
		const entries = 1000
		w := summaryWindow(entries, calls)
		b.Run(fmt.Sprintf("calls=%d/encode", calls), func(b *testing.B) {
			var size int
			for b.Loop() {
				size = len(encoded(b, summary{Source: "otlp_spans"}, w))
			}
			b.ReportMetric(float64(size)/entries, "bytes/entry")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/entries, "ns/entry")
		})
		b.Run(fmt.Sprintf("calls=%d/decode+merge", calls), func(b *testing.B) {
			msg := encoded(b, summary{Source: "otlp_spans"}, w)
			into := summaryWindow(entries, calls) // another partition's window of the same series
			for b.Loop() {
				s, err := decodeSummary(msg)
				if err != nil {
					b.Fatal(err)
				}
				d, err := decodeWindow(s.Window)
				if err != nil {
					b.Fatal(err)
				}
				into.Merge(d)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/entries, "ns/entry")
		})
	}
}
