package fleet

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/graph"
)

// mergeShards holds this member in the group "<group>-merge", which shares
// the windows topic's partitions (the shards) among the members: one
// shardWorker per shard assigned, started on assignment and stopped on
// revocation.
func (n *Node) mergeShards(ctx context.Context, out *kafka.Writer) error {
	return n.eachGeneration(ctx, n.kcfg.GroupID+"-merge", n.cfg.WindowsTopic, "shards", n.m.shards, nil,
		func(gen *kafka.Generation, a kafka.PartitionAssignment) func(context.Context) {
			return (&shardWorker{n: n, gen: gen, shard: a.ID, offset: a.Offset, out: out}).run
		})
}

// shardWorker merges one shard: the partitions' entries of its series, read
// from its partition of the windows topic, into whole windows, published
// to the merged topic with the shard's watermark. It commits an offset of
// the windows topic once every window with a part before it is published,
// so a member that takes the shard over resumes from a point where it
// rebuilds every window not yet published, and the merged windows already
// published are dropped by their readers as repeats.
type shardWorker struct {
	n      *Node
	gen    *kafka.Generation
	shard  int
	offset int64 // where the group says to start
	out    *kafka.Writer
}

// shardCommitEvery spaces a shard worker's commits: reading a backlog, its
// watermark moves many times a second.
const shardCommitEvery = time.Second

func (w *shardWorker) run(ctx context.Context) {
	n := w.n
	log := n.log.With("shard", w.shard, "generation", w.gen.ID)
	var merged []*graph.Window
	m := newMerger(n.partitions, n.cfg.MaxWindowWait, time.Now, func(win *graph.Window) { merged = append(merged, win) })
	m.onLate = n.onLate
	// Windows the fleet has read merged are not merged again: every span
	// partition had closed them, and a part of one read again (from
	// before the last commit, or published again by a partition's new
	// owner) is a repeat.
	published := n.shardClosedTo(w.shard)
	m.emitted = published
	for p := range n.partitions {
		m.closedTo[p] = published
	}

	start := w.offset
	if start < 0 {
		start = kafka.FirstOffset
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: n.kcfg.Brokers, Topic: n.cfg.WindowsTopic, Partition: w.shard, Dialer: n.dialer,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 2 * time.Second,
		Logger: kafka.LoggerFunc(func(string, ...any) {}), ErrorLogger: n.kafkaErrors()})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		log.Error("shard merge", "err", err)
		return
	}
	n.local.own(w.shard)
	defer n.local.release(w.shard)
	log.Info("shard merge started", "offset", start, "watermark", time.Unix(0, published).UTC())
	logged := map[string]bool{}
	open := map[int64]int64{} // open window's start → the lowest offset of its parts read
	var committed time.Time
	for {
		msg, err := r.FetchMessage(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("read shard", "err", err)
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		var winStart int64 // of the window a part read belongs to; 0 for a watermark
		if lw, p, found := n.local.take(msg.Headers); found {
			// A part of this member's partition worker, kept as it is.
			m.hear(p)
			if lw != nil {
				winStart = lw.Start.UnixNano()
				m.addWindow(n.source, p, lw)
			}
		} else {
			s, err := decodeSummary(msg.Value)
			if err != nil {
				n.unreadable(logged, msg, err)
				continue
			}
			if s.Source != n.source {
				continue // of another span topic (a configuration changed)
			}
			if err := m.add(s); err != nil {
				n.unreadable(logged, msg, err)
				continue
			}
			if s.Window != nil {
				winStart = s.Window.StartUnixNano
			}
		}
		if _, ok := m.open[winStart]; ok && winStart != 0 {
			if o, seen := open[winStart]; !seen || msg.Offset < o {
				open[winStart] = msg.Offset
			}
		}
		if len(merged) == 0 && m.emitted <= published {
			continue
		}
		if !w.publish(ctx, merged, m.emitted) {
			return
		}
		published = m.emitted
		clear(merged)
		merged = merged[:0]
		next := msg.Offset + 1
		for start, o := range open {
			if _, ok := m.open[start]; !ok {
				delete(open, start)
			} else {
				next = min(next, o)
			}
		}
		// A commit at most every shardCommitEvery: a later one only
		// saves the shard's next owner some re-reading.
		if time.Since(committed) < shardCommitEvery {
			continue
		}
		committed = time.Now()
		n.commitMu.Lock()
		err = w.gen.CommitOffsets(map[string]map[int]int64{n.cfg.WindowsTopic: {w.shard: next}})
		n.commitMu.Unlock()
		if err != nil && ctx.Err() == nil {
			log.Warn("commit shard offset", "offset", next, "err", err)
		}
	}
}

// publish writes the merged windows, then the shard's watermark; false
// when ctx ended first. This member puts each merged window together with
// the other shards as it is, when it reads the first part back.
func (w *shardWorker) publish(ctx context.Context, merged []*graph.Window, closedTo int64) bool {
	n := w.n
	var msgs []kafka.Message
	for _, win := range merged {
		msgs = n.queueWindow(msgs, win, w.message, w.shard, -1)
	}
	m, err := w.message(&summary{ClosedTo: closedTo})
	if err != nil {
		panic(err) // strings of this member and integers always encode
	}
	msgs = append(msgs, m)
	if !n.publish(ctx, w.out, msgs, "merged shard windows", "shard", w.shard) {
		return false
	}
	n.m.shardWins.Add(float64(len(merged)))
	return true
}

// message is a summary of the shard: its Partition is the shard's number.
func (w *shardWorker) message(s *summary) (kafka.Message, error) {
	return w.n.summaryMessage(s, w.shard, shardHeader(w.shard))
}
