package fleet

import (
	"fmt"
	"testing"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/sketch"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// part is partition p's window i with n calls on one edge.
func part(t *testing.T, p, i, n int) *summary {
	t.Helper()
	start := t0.Add(time.Duration(i) * 10 * time.Second)
	w := graph.NewWindow(start, start.Add(10*time.Second))
	k := graph.EdgeKey{Source: "frontend", Target: fmt.Sprintf("svc%d", p), Operation: "op"}
	b, err := graph.EncodeWindow(withCalls(w, k, n))
	if err != nil {
		t.Fatal(err)
	}
	return &summary{Source: "spans", Partition: p, Window: b}
}

// withCalls is a window over w's time with n calls on edge k.
func withCalls(w *graph.Window, k graph.EdgeKey, n int) *graph.Window {
	o := graph.NewWindow(w.Start, w.End)
	o.Edges[k] = &graph.EdgeStats{Requests: int64(n), Latency: sketch.NewLatency()}
	o.Nodes[k.Target] = graph.Node{Name: k.Target, Kind: graph.NodeService}
	return o
}

func watermark(p, i int) *summary {
	return &summary{Source: "spans", Partition: p, ClosedTo: t0.Add(time.Duration(i) * 10 * time.Second).UnixNano()}
}

func TestMergerWaitsForEveryPartition(t *testing.T) {
	var out []*graph.Window
	m := newMerger(2, time.Minute, time.Now, func(w *graph.Window) { out = append(out, w) })
	steps := []*summary{
		part(t, 0, 0, 3), watermark(0, 1), // partition 0 closed window 0
		part(t, 1, 0, 2), part(t, 1, 0, 1), // two parts of partition 1's window 0
		part(t, 0, 1, 5), watermark(0, 2),
		watermark(1, 1),  // window 0 complete: 0 and 1 both closed it
		part(t, 1, 0, 7), // a new owner re-reading partition 1: repeat, dropped
		part(t, 1, 1, 4), watermark(1, 2),
	}
	var lens []int
	for _, s := range steps {
		if err := m.add(s); err != nil {
			t.Fatal(err)
		}
		lens = append(lens, len(out))
	}
	if fmt.Sprint(lens) != "[0 0 0 0 0 0 1 1 1 2]" {
		t.Fatalf("windows handed on after each step: %v", lens)
	}
	calls := func(w *graph.Window) (n int64) {
		for _, e := range w.Edges {
			n += e.Requests
		}
		return n
	}
	if calls(out[0]) != 6 || calls(out[1]) != 9 || !out[1].Start.Equal(t0.Add(10*time.Second)) {
		t.Errorf("merged windows: %d and %d calls, want 6 and 9", calls(out[0]), calls(out[1]))
	}
}

func TestMergerStopsWaitingForASilentPartition(t *testing.T) {
	var out []*graph.Window
	wall := t0
	m := newMerger(2, 30*time.Second, func() time.Time { return wall }, func(w *graph.Window) { out = append(out, w) })
	late := 0
	m.onLate = func(_ string, _ int, _ time.Time, repeat bool) {
		if !repeat {
			late++
		}
	}
	_ = m.add(part(t, 0, 0, 1))
	_ = m.add(watermark(0, 30)) // partition 1 far behind in event time, but not silent long: wait
	wall = wall.Add(30 * time.Second)
	_ = m.add(watermark(0, 31))
	if len(out) != 0 {
		t.Fatalf("handed on %d windows while partition 1 was within max wait", len(out))
	}
	wall = wall.Add(time.Second) // silent for more than 30 s: stop waiting for it
	_ = m.add(watermark(0, 32))
	if len(out) != 1 {
		t.Fatalf("handed on %d windows, want 1", len(out))
	}
	_ = m.add(part(t, 1, 0, 1)) // too late now: counted, not merged
	if late != 1 {
		t.Errorf("late parts %d, want 1", late)
	}
}

func TestSplitWindowKeepsEverything(t *testing.T) {
	w := graph.NewWindow(t0, t0.Add(10*time.Second))
	for i := range 200 {
		k := graph.EdgeKey{Source: "frontend", Target: fmt.Sprintf("svc%03d", i), Operation: "op"}
		w.Merge(withCalls(w, k, 2))
	}
	parts, err := splitWindow(w, 4000)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 2 {
		t.Fatalf("%d parts, want several", len(parts))
	}
	back := graph.NewWindow(t0, t0.Add(10*time.Second))
	for _, p := range parts {
		d, err := graph.DecodeWindow(p)
		if err != nil {
			t.Fatal(err)
		}
		back.Merge(d)
	}
	if len(back.Edges) != 200 || len(back.Nodes) != 200 {
		t.Errorf("reassembled %d edges, %d nodes; want 200, 200", len(back.Edges), len(back.Nodes))
	}
}
