package fleet

import (
	"hash/fnv"
	"io"
	"strconv"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/graph"
)

// Sharded merging. Every partition's window holds a slice of every busy
// series, and a member that merged them all itself would merge partitions
// × series entries per window, however many members share the work
// (docs/fleet.md, Sizing model). Instead each series belongs to one shard,
// a partition of the windows topic: partition workers publish a window's
// entries to their series' shards, and each partition's watermark to every
// shard; the member the group "<group>-merge" assigns a shard merges the
// partitions' entries of that shard (the merger of the every-member mode,
// over the shard's entries alone) and publishes each merged window, then
// the shard's watermark, to the merged topic; every member reads the
// merged topic and unions the shards, whose series are disjoint.

// headerShard names the windows-topic partition (shard) a summary is
// written to; shardBalancer reads it.
const headerShard = "causeway.shard"

// seriesShard is the shard, of shards, of the series named by parts: 64-bit
// FNV-1a of the parts joined by NUL bytes. A series' shard must be the
// same in every member and every version, so the hash takes no
// per-process seed (TestSeriesShardStable pins it).
func seriesShard(shards int, parts ...string) int {
	h := fnv.New64a()
	for i, p := range parts {
		if i > 0 {
			_, _ = h.Write([]byte{0})
		}
		_, _ = io.WriteString(h, p)
	}
	return int(h.Sum64() % uint64(shards))
}

// splitShards cuts w into what each shard merges: shard s's window holds
// the edges and operations (with their flags) whose key falls in s, and
// the nodes whose name does; their statistics are w's, not copies. A
// shard none of w's series falls in gets no window; the partition's
// watermark tells it the window is complete.
func splitShards(w *graph.Window, shards int) map[int]*graph.Window {
	by := map[int]*graph.Window{}
	part := func(s int) *graph.Window {
		p, ok := by[s]
		if !ok {
			p = graph.NewWindow(w.Start, w.End)
			by[s] = p
		}
		return p
	}
	opShard := func(k graph.OpKey) int { return seriesShard(shards, k.Service, k.Operation) }
	for k, e := range w.Edges {
		part(seriesShard(shards, k.Source, k.Target, k.Operation)).Edges[k] = e
	}
	for k, o := range w.Ops {
		part(opShard(k)).Ops[k] = o
	}
	for k := range w.ClientOps {
		part(opShard(k)).ClientOps[k] = true
	}
	for k := range w.Unanswered {
		part(opShard(k)).Unanswered[k] = true
	}
	for k, c := range w.Callees {
		part(opShard(k)).Callees[k] = c
	}
	for name, n := range w.Nodes {
		part(seriesShard(shards, name)).Nodes[name] = n
	}
	return by
}

func shardHeader(s int) kafka.Header {
	return kafka.Header{Key: headerShard, Value: []byte(strconv.Itoa(s))}
}

// shardBalancer writes a message carrying headerShard to that partition,
// any other as kafka.Hash does by its key.
type shardBalancer struct{ hash kafka.Hash }

func (b *shardBalancer) Balance(m kafka.Message, partitions ...int) int {
	for _, h := range m.Headers {
		if h.Key != headerShard {
			continue
		}
		if s, err := strconv.Atoi(string(h.Value)); err == nil {
			for _, p := range partitions {
				if p == s {
					return p
				}
			}
		}
		break
	}
	return b.hash.Balance(m, partitions...)
}
