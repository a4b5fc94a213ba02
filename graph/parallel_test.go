package graph

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/sim"
	"github.com/causeway/causeway/span"
)

// feed runs the default fault scenario's first minutes through an
// aggregator with the given workers, as messages from three partitions,
// and returns the windows it closed.
func feed(t *testing.T, workers int, cfg Config) []*Window {
	t.Helper()
	scfg := sim.Default()
	scfg.Rate = 100
	s, err := sim.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []*Window
	cfg.Workers = workers
	agg := New(cfg, func(w *Window) { got = append(got, w) }, nil)
	defer agg.Close()
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	// Some traces arrive in two parts, the second up to 24 s later: their
	// joining, and which spans come too late, depend on when each shard's
	// event time moves.
	type held struct {
		due    int
		source int
		spans  []span.Span
	}
	var later []held
	n := 0
	for i := range 8 * 60 {
		for j, m := range s.Messages(time.Second) {
			res, err := dec.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			spans, source := res.Spans, (i+j)%3
			if n++; n%5 == 0 && len(spans) > 1 {
				half := len(spans) / 2
				later = append(later, held{due: i + (n/5)%5*6, source: source, spans: slices.Clone(spans[half:])})
				spans = spans[:half]
			}
			agg.AddFrom(source, spans)
		}
		for len(later) > 0 && later[0].due <= i {
			agg.AddFrom(later[0].source, later[0].spans)
			later = later[1:]
		}
		if i == 7*60 {
			agg.ForgetSource(2) // its traces now wait for the others alone
		}
	}
	agg.AdvanceTo(scfg.Start.Add(8*time.Minute + 10*time.Second).UnixNano())
	agg.Flush()
	if agg.Snapshot().WindowEnd.IsZero() {
		t.Fatal("the snapshot saw no window")
	}
	return got
}

// Sharded aggregation closes the same windows with the same calls as one
// worker: counts, errors, nodes and sketch buckets equal, sums equal up to
// float rounding.
func TestParallelMatchesSerial(t *testing.T) {
	for _, cfg := range []Config{{}, {Window: 5 * time.Second, TraceIdle: 2 * time.Second, Lateness: time.Second}} {
		want := feed(t, 1, cfg)
		for _, workers := range []int{2, 5} {
			t.Run(fmt.Sprintf("window=%v/workers=%d", cfg.Window, workers), func(t *testing.T) {
				got := feed(t, workers, cfg)
				if len(got) != len(want) || len(want) < 40 {
					t.Fatalf("%d windows, want %d (and at least 40)", len(got), len(want))
				}
				for i := range want {
					if diff := windowDiff(got[i], want[i]); diff != "" {
						t.Fatalf("window %d (%v): %s", i, want[i].Start, diff)
					}
				}
			})
		}
	}
}

// windowDiff describes the first difference between two windows beyond
// float rounding, or returns "".
func windowDiff(g, w *Window) string {
	if !g.Start.Equal(w.Start) || !g.End.Equal(w.End) {
		return fmt.Sprintf("spans %v–%v, want %v–%v", g.Start, g.End, w.Start, w.End)
	}
	if !maps.Equal(g.Nodes, w.Nodes) || !maps.Equal(g.ClientOps, w.ClientOps) || !maps.Equal(g.Callees, w.Callees) || !maps.Equal(g.Unanswered, w.Unanswered) {
		return fmt.Sprintf("nodes %v %v %v, want %v %v %v", g.Nodes, g.ClientOps, g.Callees, w.Nodes, w.ClientOps, w.Callees)
	}
	if !slices.Equal(keyList(g.Edges), keyList(w.Edges)) || !slices.Equal(keyList(g.Ops), keyList(w.Ops)) {
		return fmt.Sprintf("edges %v ops %v, want %v %v", keyList(g.Edges), keyList(g.Ops), keyList(w.Edges), keyList(w.Ops))
	}
	for k, we := range w.Edges {
		ge := g.Edges[k]
		if ge.Requests != we.Requests || ge.Errors != we.Errors || ge.GapCount != we.GapCount || !near(ge.GapSum, we.GapSum) {
			return fmt.Sprintf("edge %v: %+v, want %+v", k, ge, we)
		}
		if d := sketchDiff(ge.Latency.ForEach, we.Latency.ForEach); d != "" {
			return fmt.Sprintf("edge %v latency: %s", k, d)
		}
		if !slices.Equal(exemplarLatencies(ge), exemplarLatencies(we)) {
			return fmt.Sprintf("edge %v exemplars %v, want %v", k, ge.Exemplars, we.Exemplars)
		}
	}
	for k, wo := range w.Ops {
		gop := g.Ops[k]
		if gop.Requests != wo.Requests || gop.Errors != wo.Errors {
			return fmt.Sprintf("op %v: %d/%d, want %d/%d", k, gop.Requests, gop.Errors, wo.Requests, wo.Errors)
		}
		if d := sketchDiff(gop.Duration.ForEach, wo.Duration.ForEach); d != "" {
			return fmt.Sprintf("op %v duration: %s", k, d)
		}
		if d := sketchDiff(gop.SelfTime.ForEach, wo.SelfTime.ForEach); d != "" {
			return fmt.Sprintf("op %v self time: %s", k, d)
		}
		if !near(gop.Duration.Sum(), wo.Duration.Sum()) || gop.Duration.Max() != wo.Duration.Max() {
			return fmt.Sprintf("op %v duration sum %v max %v, want %v %v", k, gop.Duration.Sum(), gop.Duration.Max(), wo.Duration.Sum(), wo.Duration.Max())
		}
	}
	return ""
}

func keyList[K comparable, V any](m map[K]V) []string {
	var out []string
	for k := range m {
		out = append(out, fmt.Sprint(k))
	}
	slices.Sort(out)
	return out
}

func sketchDiff(g, w func(func(v, n float64))) string {
	var gb, wb []float64
	g(func(v, n float64) { gb = append(gb, v, n) })
	w(func(v, n float64) { wb = append(wb, v, n) })
	if !slices.Equal(gb, wb) {
		return fmt.Sprintf("buckets %v, want %v", gb, wb)
	}
	return ""
}

func exemplarLatencies(e *EdgeStats) []float64 {
	var out []float64
	for _, x := range e.Exemplars {
		out = append(out, x.LatencyMS)
	}
	slices.Sort(out)
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
