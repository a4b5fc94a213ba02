package fleet

import (
	"bytes"
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
	// applied is, per span partition, the offset of the last span message
	// whose re-keyed spans were applied (unapplied).
	applied map[int]int64
}

func newPartitionSource(n *Node, gen *kafka.Generation, partition int, start int64, md *consume.MessageDecoder, maxBytes int, log *slog.Logger) *partitionSource {
	s := &partitionSource{n: n, gen: gen, topic: n.source, partition: partition, start: start, md: md, log: log,
		out: make(chan *consume.Batch, 16), applied: map[int]int64{}}
	s.r = kafka.NewReader(kafka.ReaderConfig{Brokers: n.kcfg.Brokers, Topic: n.source, Partition: partition, Dialer: n.dialer,
		MinBytes: 1, MaxBytes: maxBytes, MaxWait: 2 * time.Second,
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
		if s.rekeyed() {
			msg.Value = s.unapplied(msg)
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

// unapplied returns the part of a re-keyed message's value that holds
// span messages not applied yet, and records them as applied.
//
// The re-key stage is at-least-once: a member that takes over a span
// partition re-reads it from the last commit, and a failed write is
// written again, so a span message's spans can reach a re-key partition
// twice. Each span partition's segments reach a re-key partition in
// offset order, and a repeat comes after the first copy, so a segment at
// or below the last offset applied from its span partition is one. A
// worker starts with nothing applied: a repeat of a segment before the
// offset it starts from has its spans in windows already published, which
// it drops as too late.
func (s *partitionSource) unapplied(msg kafka.Message) []byte {
	from, segs := -1, []byte(nil)
	for _, h := range msg.Headers {
		switch h.Key {
		case headerRekeySource:
			if v, err := strconv.Atoi(string(h.Value)); err == nil {
				from = v
			}
		case headerRekeySegments:
			segs = h.Value
		}
	}
	if from < 0 || len(segs) == 0 {
		return msg.Value // an older member's message of one trace, or a watermark record
	}
	last, ok := s.applied[from]
	skip, repeats, next, err := applied(segs, last, ok)
	if err != nil || skip > len(msg.Value) {
		s.n.m.errors.WithLabelValues("rekey").Inc()
		s.log.Warn("re-keyed message with unreadable segments; applied whole", "offset", msg.Offset, "err", err)
		return msg.Value
	}
	s.applied[from] = next
	if repeats > 0 {
		s.n.m.repeats.Add(float64(repeats))
	}
	return msg.Value[skip:]
}

// applied reads a segments header ("offset:length,...", offsets rising)
// against the last offset applied (known: any was): it returns the length
// of the leading segments at or below it, how many they are, and the
// offset applied after the message.
func applied(segs []byte, last int64, known bool) (skip, repeats int, next int64, err error) {
	next, fresh := last, false
	for len(segs) > 0 {
		var seg []byte
		seg, segs, _ = bytes.Cut(segs, []byte{','})
		o, l, ok := bytes.Cut(seg, []byte{':'})
		offset, err1 := strconv.ParseInt(string(o), 10, 64)
		length, err2 := strconv.Atoi(string(l))
		switch {
		case !ok || err1 != nil || err2 != nil || length < 0:
			return 0, 0, 0, fmt.Errorf("segment %q", seg)
		case known && offset <= next && fresh:
			return 0, 0, 0, fmt.Errorf("segment %q after offset %d", seg, next)
		case known && offset <= next:
			skip += length
			repeats++
		default:
			fresh, known, next = true, true, offset
		}
	}
	return skip, repeats, next, nil
}

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
