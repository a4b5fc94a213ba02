package fleet

import (
	"context"
	"errors"
	"sync/atomic"
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
	gcfg := n.opt.Graph
	gcfg.Workers = 1
	agg := graph.New(gcfg, func(win *graph.Window) { closed = append(closed, win) }, nil)
	agg.StartAfter(n.closedTo(w.partition))
	published := agg.ClosedTo()
	window := int64(agg.Config().Window)

	// Event time moves with the wall clock by the rule a single detector
	// follows (pipeline.IdleClock); the partition counts as behind until
	// its first message says it is caught up, so an empty one waits.
	var troubled atomic.Int64 // when the client last reported an error
	clock := pipeline.NewIdleClock(n.opt.Idle, time.Now())
	clock.Heard(w.partition, false, time.Now())
	lastError := func() time.Time {
		if ns := troubled.Load(); ns != 0 {
			return time.Unix(0, ns)
		}
		return time.Time{}
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: n.kcfg.Brokers, Topic: n.source, Partition: w.partition, Dialer: n.dialer,
		MinBytes: 1, MaxBytes: kcfg.MaxMessageBytes + 1<<20, MaxWait: 500 * time.Millisecond,
		Logger: kafka.LoggerFunc(func(string, ...any) {}), ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			troubled.Store(time.Now().UnixNano())
			n.kafkaErrors().Printf(f, a...)
		})})
	defer r.Close()
	start := w.offset
	if start < 0 {
		start = kafka.FirstOffset
	}
	if err := r.SetOffset(start); err != nil {
		log.Error("partition worker: set offset", "offset", start, "err", err)
		return
	}
	log.Info("partition worker started", "offset", start, "watermark", time.Unix(0, published).UTC())
	n.m.workers.Inc()
	defer n.m.workers.Dec()

	var pending []held
	for {
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		msg, err := r.FetchMessage(fctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, context.DeadlineExceeded):
			if now := time.Now(); clock.Advance(now, lastError()) {
				agg.AdvanceTo(now.Add(-n.opt.Idle).UnixNano())
			}
		case err != nil:
			troubled.Store(time.Now().UnixNano())
			log.Warn("read span partition", "err", err)
			if !sleep(ctx, time.Second) {
				return
			}
		default:
			clock.Heard(w.partition, msg.HighWaterMark > 0 && msg.Offset+1 >= msg.HighWaterMark, time.Now())
			b := md.Decode(ctx, msg)
			var maxEnd int64
			for i := range b.Spans {
				maxEnd = max(maxEnd, b.Spans[i].End)
			}
			agg.Add(b.Spans)
			md.Release(b)
			until := int64(0)
			if len(b.Spans) > 0 {
				until = maxEnd - maxEnd%window + window
			}
			pending = append(pending, held{next: msg.Offset + 1, until: until})
		}
		if len(closed) == 0 && agg.ClosedTo() <= published {
			continue
		}
		if !w.publish(ctx, closed, agg.ClosedTo()) {
			return
		}
		clear(closed)
		closed, published = closed[:0], agg.ClosedTo()
		commit, i := int64(-1), 0
		for ; i < len(pending) && pending[i].until <= published; i++ {
			commit = pending[i].next
		}
		pending = pending[i:]
		if commit >= 0 {
			if err := w.gen.CommitOffsets(map[string]map[int]int64{n.source: {w.partition: commit}}); err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("commit span offset; it will be read again after a restart", "offset", commit, "err", err)
			}
		}
	}
}

// publish writes the closed windows, then the watermark, retrying until
// the broker takes them; false when ctx ended first.
func (w *worker) publish(ctx context.Context, closed []*graph.Window, closedTo int64) bool {
	n := w.n
	var msgs []kafka.Message
	for _, win := range closed {
		parts, err := splitWindow(win, n.cfg.MaxMessageBytes)
		if err != nil {
			n.m.errors.WithLabelValues("encode").Inc()
			n.log.Error("encode window; dropped", "partition", w.partition, "window", win.Start, "err", err)
			continue
		}
		for _, p := range parts {
			msgs = append(msgs, w.message(&summary{Window: p}))
		}
	}
	msgs = append(msgs, w.message(&summary{ClosedTo: closedTo}))
	for attempt := 1; ; attempt++ {
		err := w.out.WriteMessages(ctx, msgs...)
		if err == nil {
			n.m.published.Add(float64(len(closed)))
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		n.m.errors.WithLabelValues("publish").Inc()
		if attempt == 1 {
			n.log.Warn("publish window summaries; retrying", "partition", w.partition, "err", err)
		}
		if !sleep(ctx, min(time.Duration(attempt)*time.Second, 10*time.Second)) {
			return false
		}
	}
}

func (w *worker) message(s *summary) kafka.Message {
	s.Source, s.Partition, s.Member = w.n.source, w.partition, w.n.cfg.Member
	b, err := encodeSummary(s)
	if err != nil {
		panic(err) // a struct of strings, ints and bytes always encodes
	}
	return kafka.Message{Key: s.key(), Value: b}
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
