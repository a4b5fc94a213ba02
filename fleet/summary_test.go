package fleet

import (
	"bytes"
	"encoding/gob"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/fleet/fleetpb"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/sketch"
	"github.com/causeway/causeway/span"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// part is partition p's window i with n calls on one edge.
func part(t *testing.T, p, i, n int) *summary {
	t.Helper()
	start := t0.Add(time.Duration(i) * 10 * time.Second)
	w := graph.NewWindow(start, start.Add(10*time.Second))
	k := graph.EdgeKey{Source: "frontend", Target: fmt.Sprintf("svc%d", p), Operation: "op"}
	b, err := encodeWindow(withCalls(w, k, n))
	if err != nil {
		t.Fatal(err)
	}
	return &summary{Source: "spans", Partition: p, Window: b}
}

// encoded is the message of summary s, carrying w when it is not nil.
func encoded(tb testing.TB, s summary, w *graph.Window) []byte {
	tb.Helper()
	if w != nil {
		pw, err := encodeWindow(w)
		if err != nil {
			tb.Fatal(err)
		}
		s.Window = pw
	}
	b, err := encodeSummary(&s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
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
		d, err := decodeWindow(p)
		if err != nil {
			t.Fatal(err)
		}
		back.Merge(d)
	}
	if len(back.Edges) != 200 || len(back.Nodes) != 200 {
		t.Errorf("reassembled %d edges, %d nodes; want 200, 200", len(back.Edges), len(back.Nodes))
	}
}

// fullWindow is a window with every kind of thing a summary carries.
func fullWindow(start time.Time, calls int, slow float64) *graph.Window {
	w := graph.NewWindow(start, start.Add(10*time.Second))
	e := &graph.EdgeStats{Latency: sketch.NewLatency()}
	for i := range calls {
		v := 5 + slow*float64(i%3)
		e.Requests++
		if i%10 == 0 {
			e.Errors++
		}
		e.Latency.Add(v)
		e.GapSum += 0.4
		e.GapCount++
	}
	e.Exemplars = []graph.Exemplar{{TraceID: span.TraceID{1, 2}, LatencyMS: 5 + 2*slow, Error: true}, {TraceID: span.TraceID{3}, LatencyMS: 5 + slow}}
	w.Edges[graph.EdgeKey{Source: "checkoutservice", Target: "paymentservice", Operation: "Charge"}] = e
	w.Edges[graph.EdgeKey{Source: "cartservice", Target: "redis-cart", Operation: "HGET"}] = &graph.EdgeStats{Requests: 1, Latency: sketch.NewLatency()}
	o := graph.NewOpStats()
	o.Requests, o.Errors = 3, 1
	for _, v := range []float64{12, 14, 40} {
		o.Duration.Add(v)
		o.SelfTime.Add(v / 2)
	}
	w.Ops[graph.OpKey{Service: "paymentservice", Operation: "Charge"}] = o
	client := graph.OpKey{Service: "checkoutservice", Operation: "Charge"}
	w.Ops[client] = graph.NewOpStats()
	w.Ops[client].Requests = 1
	w.Ops[client].Duration.Add(13)
	w.Ops[client].SelfTime.Add(1)
	w.ClientOps[client] = true
	w.Callees[client] = "paymentservice"
	w.Unanswered[graph.OpKey{Service: "checkoutservice", Operation: "GetQuote"}] = true
	w.Nodes["paymentservice"] = graph.Node{Name: "paymentservice", Kind: graph.NodeService}
	w.Nodes["checkoutservice"] = graph.Node{Name: "checkoutservice", Kind: graph.NodeService}
	w.Nodes["redis-cart"] = graph.Node{Name: "redis-cart", Kind: graph.NodeCache, System: "redis"}
	return w
}

// TestSummaryRoundTrip: a window travels through a summary message and
// back with everything a merge needs, and merging decoded windows equals
// merging the originals.
func TestSummaryRoundTrip(t *testing.T) {
	a, b := fullWindow(t0, 30, 1), fullWindow(t0, 20, 50)
	through := func(w *graph.Window) *graph.Window {
		t.Helper()
		s, err := decodeSummary(encoded(t, summary{Source: "spans", Partition: 3, Member: "m1"}, w))
		if err != nil {
			t.Fatal(err)
		}
		if s.Source != "spans" || s.Partition != 3 || s.Member != "m1" {
			t.Fatalf("decoded summary %+v", s)
		}
		back, err := decodeWindow(s.Window)
		if err != nil {
			t.Fatal(err)
		}
		return back
	}
	back := through(a)
	if !back.Start.Equal(a.Start) || !back.End.Equal(a.End) || !reflect.DeepEqual(back.Nodes, a.Nodes) ||
		!reflect.DeepEqual(back.ClientOps, a.ClientOps) || !reflect.DeepEqual(back.Callees, a.Callees) || !reflect.DeepEqual(back.Unanswered, a.Unanswered) {
		t.Fatalf("decoded window %+v, want %+v", back, a)
	}
	if len(back.Edges) != len(a.Edges) || len(back.Ops) != len(a.Ops) {
		t.Fatalf("decoded %d edges, %d operations; want %d, %d", len(back.Edges), len(back.Ops), len(a.Edges), len(a.Ops))
	}
	for k, e := range a.Edges {
		d := back.Edges[k]
		if d == nil || d.Requests != e.Requests || d.Errors != e.Errors || d.Latency.String() != e.Latency.String() ||
			d.GapSum != e.GapSum || d.GapCount != e.GapCount || !reflect.DeepEqual(d.Exemplars, e.Exemplars) {
			t.Errorf("edge %v: decoded %+v, want %+v", k, d, e)
		}
	}
	for k, o := range a.Ops {
		d := back.Ops[k]
		if d == nil || d.Requests != o.Requests || d.Errors != o.Errors || d.Duration.String() != o.Duration.String() || d.SelfTime.String() != o.SelfTime.String() {
			t.Errorf("operation %v: decoded %+v, want %+v", k, d, o)
		}
	}
	direct := fullWindow(t0, 30, 1)
	direct.Merge(b)
	back.Merge(through(b))
	for k, e := range direct.Edges {
		if m := back.Edges[k]; m.Requests != e.Requests || m.Latency.String() != e.Latency.String() || len(m.Exemplars) != len(e.Exemplars) {
			t.Errorf("merged edge %v: %+v, want %+v", k, m, e)
		}
	}
}

// TestSummaryFormats: a summary of a newer format, one without a format
// (an older member's gob, or anything else) and a malformed window are
// refused, never merged; fields a later version adds without raising the
// format are ignored, and the summary merges.
func TestSummaryFormats(t *testing.T) {
	pw, err := encodeWindow(fullWindow(t0, 10, 1))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := encodeSummary(&summary{Source: "spans", Partition: 1, Window: pw})
	if err != nil {
		t.Fatal(err)
	}

	// A later version's compatible addition: an unknown field, here at
	// the summary's level and in an edge.
	extra := protowire.AppendTag(slices.Clone(msg), 100, protowire.BytesType)
	extra = protowire.AppendString(extra, "from a later version")
	if s, err := decodeSummary(extra); err != nil || s.Window == nil {
		t.Errorf("a summary with a field this version does not know: %v", err)
	}
	withEdgeField := proto.Clone(pw).(*fleetpb.Window)
	withEdgeField.Edges[0].ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 50, protowire.VarintType), 7))
	if w, err := decodeWindow(roundTrip(t, withEdgeField)); err != nil || len(w.Edges) != 2 {
		t.Errorf("a window whose edge has a field this version does not know: %v", err)
	}

	newer, err := proto.Marshal(&fleetpb.Summary{Format: summaryFormat + 1, Source: "spans", Window: pw})
	if err != nil {
		t.Fatal(err)
	}
	var nf *newerFormatError
	if _, err := decodeSummary(newer); !errors.As(err, &nf) || nf.format != summaryFormat+1 {
		t.Errorf("a newer format: %v", err)
	}

	// What members before the format wrote: a gob of the summary.
	var old bytes.Buffer
	if err := gob.NewEncoder(&old).Encode(struct {
		Source    string
		Partition int
		Window    []byte
		ClosedTo  int64
		Member    string
	}{"spans", 1, []byte("a gob window"), 0, "old"}); err != nil {
		t.Fatal(err)
	}
	if s, err := decodeSummary(old.Bytes()); err == nil {
		t.Errorf("an unversioned gob summary decoded: %+v", s)
	}
	if _, err := decodeSummary(nil); !errors.Is(err, errNoFormat) {
		t.Errorf("an empty message: %v, want errNoFormat", err)
	}

	bad := proto.Clone(pw).(*fleetpb.Window)
	bad.Edges[0].Latency = []byte("not a sketch")
	if _, err := decodeWindow(bad); err == nil {
		t.Error("a window with an unreadable sketch decoded")
	}
	bad = proto.Clone(pw).(*fleetpb.Window)
	bad.Edges[1].Exemplars = []*fleetpb.Exemplar{{TraceId: []byte{1, 2, 3}}}
	if _, err := decodeWindow(bad); err == nil {
		t.Error("a window with a 3-byte trace id decoded")
	}
}

// roundTrip encodes and decodes a window message.
func roundTrip(t *testing.T, w *fleetpb.Window) *fleetpb.Window {
	t.Helper()
	b, err := proto.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var out fleetpb.Window
	if err := proto.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

var updateFixtures = flag.Bool("update", false, "rewrite the summary fixtures in testdata/ from this version's encoder")

// TestSummaryFixtures: summaries written by the first version of the
// format (testdata/summary-v1-*.bin, committed) are read by this one, so
// a fleet's members of adjacent versions keep merging each other's. Run
// with -update only when adding a format: a fixture is never rewritten.
func TestSummaryFixtures(t *testing.T) {
	pw, err := encodeWindow(fullWindow(t0, 30, 1))
	if err != nil {
		t.Fatal(err)
	}
	fixtures := map[string]*summary{
		"testdata/summary-v1-window.bin":    {Source: "otlp_spans", Partition: 2, Member: "m1", Window: pw},
		"testdata/summary-v1-watermark.bin": {Source: "otlp_spans", Partition: 2, Member: "m1", ClosedTo: t0.Add(10 * time.Second).UnixNano()},
	}
	for path, s := range fixtures {
		if *updateFixtures {
			b, err := encodeSummary(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeSummary(b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if got.Source != s.Source || got.Partition != s.Partition || got.Member != s.Member || got.ClosedTo != s.ClosedTo || (got.Window == nil) != (s.Window == nil) {
			t.Errorf("%s: read %+v, want %+v", path, got, s)
		}
		if s.Window == nil {
			continue
		}
		w, err := decodeWindow(got.Window)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		want := fullWindow(t0, 30, 1)
		k := graph.EdgeKey{Source: "checkoutservice", Target: "paymentservice", Operation: "Charge"}
		if e := w.Edges[k]; e == nil || e.Requests != 30 || e.Errors != 3 || e.Latency.String() != want.Edges[k].Latency.String() || len(e.Exemplars) != 2 {
			t.Errorf("%s: edge %v read as %+v", path, k, e)
		}
		if !reflect.DeepEqual(w.Callees, want.Callees) || !reflect.DeepEqual(w.Nodes, want.Nodes) || len(w.Ops) != len(want.Ops) {
			t.Errorf("%s: window read as %+v", path, w)
		}
	}
}
