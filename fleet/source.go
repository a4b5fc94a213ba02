package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/consume"
)

// partitionSource is one span partition a member owns, read from a given
// offset, as a pipeline.Source: its offsets are committed to the group's
// current generation.
type partitionSource struct {
	n         *Node
	gen       *kafka.Generation
	topic     string
	partition int
	start     int64 // where reading starts; kafka.FirstOffset for the oldest
	r         *kafka.Reader
	md        *consume.MessageDecoder
	log       *slog.Logger
	out       chan *consume.Batch
	troubled  consume.ErrorClock
}

func newPartitionSource(n *Node, gen *kafka.Generation, partition int, start int64, md *consume.MessageDecoder, maxBytes int, log *slog.Logger) *partitionSource {
	s := &partitionSource{n: n, gen: gen, topic: n.source, partition: partition, start: start, md: md, log: log,
		out: make(chan *consume.Batch, 16)}
	s.r = kafka.NewReader(kafka.ReaderConfig{Brokers: n.kcfg.Brokers, Topic: n.source, Partition: partition, Dialer: n.dialer,
		MinBytes: 1, MaxBytes: maxBytes, MaxWait: 500 * time.Millisecond,
		Logger: kafka.LoggerFunc(func(string, ...any) {}), ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			s.troubled.Note()
			n.kafkaErrors().Printf(f, a...)
		})})
	return s
}

// run fetches and decodes messages until ctx ends, then closes Batches.
func (s *partitionSource) run(ctx context.Context) error {
	defer close(s.out)
	if err := s.r.SetOffset(s.start); err != nil {
		return fmt.Errorf("set offset %d: %w", s.start, err)
	}
	for {
		msg, err := s.r.FetchMessage(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.troubled.Note()
			s.log.Warn("read span partition", "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		b := s.md.Decode(ctx, msg)
		if s.rekeyed() {
			rekeyedFrom(b, msg.Headers)
		}
		select {
		case s.out <- b:
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *partitionSource) Close() error { return s.r.Close() }

func (s *partitionSource) Batches() <-chan *consume.Batch { return s.out }

func (s *partitionSource) Release(b *consume.Batch) { s.md.Release(b) }

// rekeyed reports whether the source reads the re-key topic.
func (s *partitionSource) rekeyed() bool { return s.topic != s.n.kcfg.Topic }

// rekeyedFrom marks b as re-keyed, from the span partition its headers
// name (-1 when they name none: its spans then neither hold event time
// back nor move it), with the watermark it carries, if any.
func rekeyedFrom(b *consume.Batch, headers []kafka.Header) {
	b.Rekeyed, b.Source = true, -1
	for _, h := range headers {
		v, err := strconv.ParseInt(string(h.Value), 10, 64)
		if err != nil {
			continue
		}
		switch h.Key {
		case headerRekeySource:
			b.Source = int(v)
		case headerRekeyWatermark:
			b.SourceAt = v
		}
	}
}

// Partitions lists the event-time sources: the partition itself, or for
// the re-key topic every span partition, each of which holds windows back
// until it is heard from.
func (s *partitionSource) Partitions(context.Context) ([]int, error) {
	if !s.rekeyed() {
		return []int{s.partition}, nil
	}
	out := make([]int, s.n.spanParts)
	for i := range out {
		out[i] = i
	}
	return out, nil
}

func (s *partitionSource) LastError() time.Time { return s.troubled.Last() }

// CaughtUp asks the partition's leader for its end offset: the partition
// is caught up once the messages applied (next), or the start when none
// was, reach it.
func (s *partitionSource) CaughtUp(ctx context.Context, next map[int]int64) (bool, error) {
	var err error
	for _, b := range s.n.kcfg.Brokers {
		var conn *kafka.Conn
		if conn, err = s.n.dialer.DialLeader(ctx, "tcp", b, s.topic, s.partition); err != nil {
			continue
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		first, last, rerr := conn.ReadOffsets()
		conn.Close()
		if err = rerr; err != nil {
			continue
		}
		read, ok := next[s.partition]
		if !ok {
			read = s.start
			if read < 0 {
				read = first
			}
		}
		return read >= last, nil
	}
	return false, fmt.Errorf("end offset of %s/%d: %w", s.topic, s.partition, err)
}

// Commit commits to the generation that assigned the partition: once it
// has ended, the commit fails and the next owner reads those messages
// again.
func (s *partitionSource) Commit(_ context.Context, _ int, ps ...consume.Position) error {
	offsets := map[int]int64{}
	for _, p := range ps {
		offsets[p.Partition] = p.Offset + 1
	}
	s.n.commitMu.Lock()
	defer s.n.commitMu.Unlock()
	return s.gen.CommitOffsets(map[string]map[int]int64{s.topic: offsets})
}
