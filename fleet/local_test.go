package fleet

import (
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/graph"
)

// TestLocalWindows: a window kept for its summary parts comes back with
// the first part read and never again; a part this process did not keep
// (another process, a restarted one under the same member name, or past
// the bound) is not taken.
func TestLocalWindows(t *testing.T) {
	l := newLocalWindows()
	w := fullWindow(t0, 3, 1)
	h, ok := l.put(w, 5, -1, 2)
	if !ok {
		t.Fatal("nothing kept")
	}
	headers := []kafka.Header{{Key: "other", Value: []byte("x")}, h}
	if got, p, found := l.take(headers); got != w || p != 5 || !found {
		t.Fatalf("first part: window %p, partition %d, found %v", got, p, found)
	}
	if got, p, found := l.take(headers); got != nil || p != 5 || !found {
		t.Fatalf("second part: window %p, partition %d, found %v", got, p, found)
	}
	if _, _, found := l.take(headers); found {
		t.Fatal("a third part of a two-part window taken")
	}
	if _, _, found := newLocalWindows().take([]kafka.Header{h}); found {
		t.Fatal("another process took this one's window")
	}
	if _, _, found := l.take(nil); found {
		t.Fatal("a part without the header taken")
	}
	for range maxLocalWindows {
		l.put(w, 0, -1, 1)
	}
	if _, ok := l.put(w, 0, -1, 1); ok {
		t.Fatalf("kept more than %d windows", maxLocalWindows)
	}
}

// TestLocalShardParts: a partition worker's part for a shard is kept only
// while this process merges that shard, and forgotten when it stops.
func TestLocalShardParts(t *testing.T) {
	l := newLocalWindows()
	w := fullWindow(t0, 3, 1)
	if _, ok := l.put(w, 1, 3, 1); ok {
		t.Fatal("kept a part for a shard this process does not merge")
	}
	l.own(3)
	h, ok := l.put(w, 1, 3, 1)
	if !ok {
		t.Fatal("a part for an owned shard not kept")
	}
	kept, _ := l.put(w, 2, 3, 1)
	l.release(3)
	if _, _, found := l.take([]kafka.Header{h}); found {
		t.Fatal("a part taken after its shard was released")
	}
	if _, _, found := l.take([]kafka.Header{kept}); found {
		t.Fatal("a second part taken after its shard was released")
	}
	l.own(3)
	h, _ = l.put(w, 1, 3, 1)
	if got, p, found := l.take([]kafka.Header{h}); got != w || p != 1 || !found {
		t.Fatalf("part of an owned shard: window %p, partition %d, found %v", got, p, found)
	}
}

// TestLocalWindowsMergeAsDecoded: a member merging its own partition's
// window as it is ends with the window a member decoding every summary
// does.
func TestLocalWindowsMergeAsDecoded(t *testing.T) {
	merged := func(local bool) *graph.Window {
		var out *graph.Window
		m := newMerger(2, time.Minute, func() time.Time { return t0 }, func(w *graph.Window) { out = w })
		own, other := fullWindow(t0, 30, 1), fullWindow(t0, 20, 50)
		if local {
			m.hear(0)
			m.addWindow("spans", 0, own)
		} else if err := m.add(decoded(t, 0, own)); err != nil {
			t.Fatal(err)
		}
		if err := m.add(decoded(t, 1, other)); err != nil {
			t.Fatal(err)
		}
		for p := range 2 {
			if err := m.add(&summary{Source: "spans", Partition: p, ClosedTo: t0.Add(10 * time.Second).UnixNano()}); err != nil {
				t.Fatal(err)
			}
		}
		if out == nil {
			t.Fatal("no window merged")
		}
		return out
	}
	sameWindow(t, merged(true), merged(false))
}

// sameWindow fails t unless windows a and b hold the same statistics.
func sameWindow(t *testing.T, a, b *graph.Window) {
	t.Helper()
	if !a.Start.Equal(b.Start) || !a.End.Equal(b.End) || !reflect.DeepEqual(a.Nodes, b.Nodes) || !reflect.DeepEqual(a.ClientOps, b.ClientOps) ||
		!reflect.DeepEqual(a.Callees, b.Callees) || !reflect.DeepEqual(a.Unanswered, b.Unanswered) ||
		len(a.Edges) != len(b.Edges) || len(a.Ops) != len(b.Ops) {
		t.Fatalf("windows differ:\n%+v\n%+v", a, b)
	}
	for k, e := range b.Edges {
		d := a.Edges[k]
		if d == nil || d.Requests != e.Requests || d.Errors != e.Errors || d.Latency.String() != e.Latency.String() ||
			d.Latency.Sum() != e.Latency.Sum() || d.GapSum != e.GapSum || d.GapCount != e.GapCount || !reflect.DeepEqual(d.Exemplars, e.Exemplars) {
			t.Errorf("edge %v: %+v, %+v", k, d, e)
		}
	}
	for k, o := range b.Ops {
		d := a.Ops[k]
		if d == nil || d.Requests != o.Requests || d.Errors != o.Errors || d.Duration.String() != o.Duration.String() || d.SelfTime.String() != o.SelfTime.String() {
			t.Errorf("operation %v: %+v, %+v", k, d, o)
		}
	}
}

// decoded is window w of partition p as a member reads it from the
// summaries topic.
func decoded(t *testing.T, p int, w *graph.Window) *summary {
	t.Helper()
	s, err := decodeSummary(encoded(t, summary{Source: "spans", Partition: p}, w))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
