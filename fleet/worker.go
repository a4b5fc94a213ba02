package fleet

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/pipeline"
)

// worker is one owned span partition: it joins the partition's spans into
// windows, publishes each closed window and the partition's watermark, and
// commits the offsets whose spans are all in published windows.
type worker struct {
	n         *Node
	gen       *kafka.Generation
	partition int
	offset    int64 // where the group says to start
	out       *kafka.Writer
}

// held is a read message whose offset may be committed (next) once the
// partition's watermark reaches until: the end of the latest window any of
// its spans fell in.
type held struct {
	next, until int64
}

// run works until the generation ends (ctx), then drops what it has not
// published: the partition's next owner reads it again from the last
// commit.
func (w *worker) run(ctx context.Context) {
	n := w.n
	log := n.log.With("partition", w.partition, "generation", w.gen.ID)
	kcfg := n.kcfg
	kcfg.Topic = n.source
	if n.source != n.kcfg.Topic {
		kcfg.Encoding = consume.EncodingProto // re-keyed spans are OTLP protobuf
	}
	md, err := consume.NewMessageDecoder(kcfg, log, n.opt.DecodeMetrics, nil)
	if err != nil {
		log.Error("partition worker", "err", err)
		return
	}
	defer md.Close()
	var closed []*graph.Window
	// A member already runs one worker per partition: one goroutine each.
	// The pending caps are the member's: a member may be assigned every
	// partition, so each worker holds its share of them.
	gcfg := n.opt.Graph.SplitPending(n.partitions)
	gcfg.Workers = 1
	// Its losses (spans too late, traces evicted, caps) are counted, by
	// partition, with the member's metrics.
	gm := n.graphMetrics(w.partition)
	defer gm.Idle()
	agg := graph.New(gcfg, func(win *graph.Window) { closed = append(closed, win) }, gm)
	agg.SkipView() // the member merges and serves the windows
	agg.StartAfter(n.closedTo(w.partition))

	start := w.offset
	if start < 0 {
		start = kafka.FirstOffset
	}
	src := newPartitionSource(n, w.gen, w.partition, start, md, kcfg.MaxMessageBytes+1<<20, log)
	defer src.Close()
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	fetched := make(chan error, 1)
	go func() { fetched <- src.run(rctx) }()

	log.Info("partition worker started", "offset", start, "watermark", time.Unix(0, agg.ClosedTo()).UTC())
	n.m.workers.Inc()
	defer n.m.workers.Dec()
	// Event time and commits follow the rules a single detector follows
	// (pipeline.Driver); each window closed is published before the
	// offsets of its spans are committed.
	d := pipeline.NewDriver(pipeline.Options{Source: src, Graph: agg, Idle: n.opt.Idle, Log: log,
		Publish: func(ctx context.Context, closedTo int64) bool {
			ok := w.publish(ctx, closed, closedTo)
			clear(closed)
			closed = closed[:0]
			return ok
		}})
	_ = d.Run(ctx)
	stop()
	if err := <-fetched; err != nil {
		log.Error("partition worker", "err", err)
	}
}

// publish writes the closed windows, then the watermark, retrying until
// the broker takes them; false when ctx ended first. With a sharded merge
// each window's series go to their shards, and the watermark to every
// shard.
func (w *worker) publish(ctx context.Context, closed []*graph.Window, closedTo int64) bool {
	n := w.n
	var msgs []kafka.Message
	for _, win := range closed {
		if !n.cfg.Sharded() {
			msgs = n.queueWindow(msgs, win, w.message, w.partition, -1)
			continue
		}
		for s, sub := range splitShards(win, n.shards) {
			message := func(sm *summary) (kafka.Message, error) { return n.summaryMessage(sm, w.partition, shardHeader(s)) }
			msgs = n.queueWindow(msgs, sub, message, w.partition, s)
		}
	}
	m, err := w.message(&summary{ClosedTo: closedTo})
	if err != nil {
		panic(err) // strings of this member and integers always encode
	}
	if n.cfg.Sharded() {
		for s := range n.shards {
			m.Headers = []kafka.Header{shardHeader(s)}
			msgs = append(msgs, m)
		}
	} else {
		msgs = append(msgs, m)
	}
	if !n.publish(ctx, w.out, msgs, "window summaries", "partition", w.partition) {
		return false
	}
	n.m.published.Add(float64(len(closed)))
	return true
}

// queueWindow appends to msgs the messages, made by message, of window w
// of partition p (or of the part of it shard s merges; -1: no shard) in
// summary parts. When every part is there, this member keeps w to take
// as it is when it reads the first part back: its merger of the whole
// (s -1), or its worker of shard s while it merges s.
func (n *Node) queueWindow(msgs []kafka.Message, w *graph.Window, message func(*summary) (kafka.Message, error), p, s int) []kafka.Message {
	parts, err := splitWindow(w, n.cfg.MaxMessageBytes)
	if err != nil {
		n.m.errors.WithLabelValues("encode").Inc()
		n.log.Error("encode window; dropped", "partition", p, "shard", s, "window", w.Start, "err", err)
		return msgs
	}
	first := len(msgs)
	for _, part := range parts {
		m, err := message(&summary{Window: part})
		if err != nil {
			n.m.errors.WithLabelValues("encode").Inc()
			n.log.Error("encode window summary; dropped", "partition", p, "shard", s, "window", w.Start, "err", err)
			continue
		}
		msgs = append(msgs, m)
	}
	if len(msgs)-first == len(parts) {
		if h, ok := n.local.put(w, p, s, len(parts)); ok {
			for i := first; i < len(msgs); i++ {
				msgs[i].Headers = append(msgs[i].Headers, h)
			}
		}
	}
	return msgs
}

// message is a summary of the worker's partition.
func (w *worker) message(s *summary) (kafka.Message, error) {
	return w.n.summaryMessage(s, w.partition)
}

// summaryMessage encodes s as this member's summary of partition p (a
// span partition, or a shard), with headers.
func (n *Node) summaryMessage(s *summary, p int, headers ...kafka.Header) (kafka.Message, error) {
	s.Source, s.Partition, s.Member = n.source, p, n.cfg.Member
	b, err := encodeSummary(s)
	if err != nil {
		return kafka.Message{}, err
	}
	return kafka.Message{Key: s.key(), Value: b, Headers: headers}, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
