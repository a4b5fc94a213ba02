package fleet

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/fleet/fleetpb"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/sketch"
)

// shardWindow is what a partition worker writes of w with a sharded
// merge: splitShards with each shard's window encoded, in parts of about
// maxBytes or less.
func shardWindow(w *graph.Window, shards, maxBytes int) (map[int][]*fleetpb.Window, error) {
	out := map[int][]*fleetpb.Window{}
	for s, sub := range splitShards(w, shards) {
		parts, err := splitWindow(sub, maxBytes)
		if err != nil {
			return nil, err
		}
		out[s] = parts
	}
	return out, nil
}

// TestSeriesShardStable: a series' shard is part of the wire contract
// (members of two versions must agree on it), so it is pinned here.
func TestSeriesShardStable(t *testing.T) {
	for _, c := range []struct {
		parts  []string
		shards int
		want   int
	}{
		{[]string{"frontend", "cartservice", "GetCart"}, 64, 2},
		{[]string{"paymentservice", "Charge"}, 64, 12},
		{[]string{"redis-cart"}, 7, 2},
		{[]string{"a", "bc"}, 1 << 30, 222344483},
		{[]string{"ab", "c"}, 1 << 30, 790628455},
	} {
		if got := seriesShard(c.shards, c.parts...); got != c.want {
			t.Errorf("seriesShard(%d, %q) = %d, want %d", c.shards, c.parts, got, c.want)
		}
	}
}

// busyWindow is partition p's window i: every series of a graph of 40
// edges and their operations, with calls whose latencies differ by
// partition.
func busyWindow(p, i int) *graph.Window {
	r := rand.New(rand.NewPCG(uint64(p), uint64(i)))
	start := t0.Add(time.Duration(i) * 10 * time.Second)
	w := fullWindow(start, 3+p, float64(p))
	for e := range 40 {
		k := graph.EdgeKey{Source: fmt.Sprintf("svc%02d", e%7), Target: fmt.Sprintf("svc%02d", e%11+7), Operation: fmt.Sprintf("op%d", e)}
		st := &graph.EdgeStats{Latency: sketch.NewLatency()}
		o := graph.NewOpStats()
		for range 1 + r.IntN(20) {
			v := 3 * (1 + r.ExpFloat64())
			st.Requests++
			st.Latency.Add(v)
			o.Requests++
			o.Duration.Add(v)
			o.SelfTime.Add(v / 3)
		}
		w.Edges[k] = st
		w.Ops[graph.OpKey{Service: k.Target, Operation: k.Operation}] = o
		w.Nodes[k.Source] = graph.Node{Name: k.Source, Kind: graph.NodeService}
		w.Nodes[k.Target] = graph.Node{Name: k.Target, Kind: graph.NodeService}
	}
	return w
}

// TestShardWindowKeepsEverything: a window cut into shards, each cut
// further by size, puts every edge, operation (with its flags) and node
// in the shard its key names, and the shards together are the window.
func TestShardWindowKeepsEverything(t *testing.T) {
	w := busyWindow(1, 0)
	const shards = 5
	cut, err := shardWindow(w, shards, 2000)
	if err != nil {
		t.Fatal(err)
	}
	back := graph.NewWindow(w.Start, w.End)
	parts := 0
	for s, ps := range cut {
		for _, p := range ps {
			parts++
			for _, e := range p.Edges {
				if got := seriesShard(shards, e.Source, e.Target, e.Operation); got != s {
					t.Errorf("edge %s→%s %s in shard %d, its key's is %d", e.Source, e.Target, e.Operation, s, got)
				}
			}
			for _, o := range p.Operations {
				if got := seriesShard(shards, o.Service, o.Operation); got != s {
					t.Errorf("operation %s %s in shard %d, its key's is %d", o.Service, o.Operation, s, got)
				}
			}
			d, err := decodeWindow(p)
			if err != nil {
				t.Fatal(err)
			}
			back.Merge(d)
		}
	}
	if len(cut) < 2 || parts <= len(cut) {
		t.Fatalf("%d shards in %d parts: want several shards, some cut by size", len(cut), parts)
	}
	sameWindow(t, back, w)
}

// TestShardedMergeEqualsEveryMember: windows of three partitions merged
// shard by shard, each merged shard travelling through a summary to the
// final merge of the shards, are the windows one merger of every
// partition's summaries hands on, in the same order.
func TestShardedMergeEqualsEveryMember(t *testing.T) {
	const partitions, shards, windows = 3, 4, 5
	var want, got []*graph.Window
	every := newMerger(partitions, 0, time.Now, func(w *graph.Window) { want = append(want, w) })
	final := newMerger(shards, 0, time.Now, func(w *graph.Window) { got = append(got, w) })
	var shardMergers []*merger
	for s := range shards {
		var m *merger
		m = newMerger(partitions, 0, time.Now, func(w *graph.Window) {
			parts, err := splitWindow(w, 3000)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range parts {
				if err := final.add(&summary{Source: "spans", Partition: s, Window: p}); err != nil {
					t.Fatal(err)
				}
			}
		})
		shardMergers = append(shardMergers, m)
	}
	// The shard mergers publish their watermark after their windows.
	shardWatermarks := func() {
		for s, m := range shardMergers {
			if err := final.add(&summary{Source: "spans", Partition: s, ClosedTo: m.emitted}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range windows {
		// Partitions publish in turn, the last one a window behind.
		for p := range partitions {
			if p == partitions-1 && i == 0 {
				continue
			}
			wi := i
			if p == partitions-1 {
				wi = i - 1
			}
			w := busyWindow(p, wi)
			if err := every.add(decoded(t, p, w)); err != nil {
				t.Fatal(err)
			}
			cut, err := shardWindow(w, shards, 3000)
			if err != nil {
				t.Fatal(err)
			}
			for s, ps := range cut {
				for _, part := range ps {
					if err := shardMergers[s].add(&summary{Source: "spans", Partition: p, Window: part}); err != nil {
						t.Fatal(err)
					}
				}
			}
			wm := &summary{Source: "spans", Partition: p, ClosedTo: w.End.UnixNano()}
			if err := every.add(wm); err != nil {
				t.Fatal(err)
			}
			for _, m := range shardMergers {
				if err := m.add(wm); err != nil {
					t.Fatal(err)
				}
			}
			shardWatermarks()
		}
	}
	if len(want) != windows-1 || len(got) != len(want) {
		t.Fatalf("sharded merge handed on %d windows, every-member merge %d; want %d", len(got), len(want), windows-1)
	}
	for i := range want {
		sameWindow(t, got[i], want[i])
	}
}

// TestShardBalancer: a summary naming its shard goes to that partition,
// any other where kafka-go's Hash balancer puts its key.
func TestShardBalancer(t *testing.T) {
	parts := []int{0, 1, 2, 3, 4, 5}
	var b shardBalancer
	for s := range parts {
		if got := b.Balance(kafka.Message{Key: []byte("spans/0"), Headers: []kafka.Header{shardHeader(s)}}, parts...); got != s {
			t.Errorf("shard %d written to partition %d", s, got)
		}
	}
	var h kafka.Hash
	keys := []string{"spans/0", "spans/1", "spans/2", "other/7"}
	sort.Strings(keys)
	for _, k := range keys {
		m := kafka.Message{Key: []byte(k)}
		if got, want := b.Balance(m, parts...), h.Balance(m, parts...); got != want {
			t.Errorf("key %q without a shard: partition %d, Hash says %d", k, got, want)
		}
	}
	// A shard beyond the topic's partitions (a topic created smaller)
	// falls back to the key.
	m := kafka.Message{Key: []byte("spans/1"), Headers: []kafka.Header{shardHeader(9)}}
	if got, want := b.Balance(m, parts...), h.Balance(m, parts...); got != want {
		t.Errorf("shard 9 of 6 partitions: %d, want the key's %d", got, want)
	}
}
