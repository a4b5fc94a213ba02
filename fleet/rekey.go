package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/consume/otlp"
)

// rekey is the first stage when span messages are batches of many traces
// (the Collector without partition_traces_by_id): members share the span
// topic in a group of their own, split each message by trace, and write
// the traces to the re-key topic by the hash of their id, so that every
// trace's spans meet in one partition. An offset is committed only after
// its traces are written.
//
// It splits messages without decoding them into the generated OTLP types
// (splitter): resources, scopes and spans are copied as they are. It reads
// what has arrived (fetchRekeyBatch) and writes, for each span partition
// in it and each re-key partition, one message: each span message's spans
// for that partition as one segment, in offset order (rekeyOut). A segment
// names its span message, so that a partition worker applies each span
// message's spans once however often they are written
// (partitionSource.unapplied).
func (n *Node) rekey(ctx context.Context) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: n.kcfg.Brokers, GroupID: n.kcfg.GroupID + "-rekey", Topic: n.kcfg.Topic,
		Dialer: n.dialer, MinBytes: 1, MaxBytes: n.kcfg.MaxMessageBytes + 1<<20, MaxWait: 2 * time.Second,
		SessionTimeout: n.cfg.SessionTimeout, StartOffset: kafka.FirstOffset, Logger: kafka.LoggerFunc(func(string, ...any) {})})
	defer r.Close()
	out := &kafka.Writer{Addr: kafka.TCP(n.kcfg.Brokers...), Topic: n.cfg.RekeyTopic, Balancer: rekeyBalancer{&kafka.Hash{}},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, WriteTimeout: 15 * time.Second, Transport: n.tr,
		// Synchronous (not Async): a write holds no message once it
		// returns, so rekeyOut reuses their memory for the next batch.
		// Batches bounded by bytes (the broker's bound on a record batch)
		// more than by count: a write holds at most one message per span
		// partition for each re-key partition, so a batch that fails
		// while another succeeds never leaves a gap within one span
		// partition's segments.
		BatchSize: max(100, 2*n.spanParts),
		// A record batch as large as the topic takes (kafka-go's own
		// default, 1 MiB, refused larger segments outright).
		BatchBytes: int64(n.rekeyLimit)}
	defer out.Close()
	// The latest span end read from each span partition: the watermark
	// carried to every re-key partition after the traces that reach it.
	reached := map[int]int64{}
	o := newRekeyOut(n.partitions, min(n.cfg.MaxMessageBytes, max(n.rekeyLimit-rekeyHeaderRoom, n.rekeyLimit/2)))
	for {
		batch := n.fetchRekeyBatch(ctx, r)
		if batch == nil {
			return nil
		}
		advanced := map[int]int64{}
		flush := func(upTo int) bool {
			if upTo == 0 {
				return true
			}
			if !n.writeRekeyed(ctx, out, o.messages(), o.spans) || !n.writeMarks(ctx, out, advanced) {
				return false
			}
			o.reset()
			clear(advanced)
			if err := r.CommitMessages(ctx, batch[:upTo]...); err != nil && ctx.Err() == nil {
				n.log.Warn("re-key: commit", "err", err)
			}
			batch = batch[upTo:]
			return true
		}
		for i := 0; i < len(batch); i++ {
			msg := batch[i]
			newest, full, err := o.add(msg.Partition, msg.Offset, msg.Value, n.kcfg.Encoding)
			if full {
				// Written first, so that no message passes the bound; the
				// message then goes into empty ones.
				if !flush(i) {
					return nil
				}
				i = 0
				newest, _, err = o.add(msg.Partition, msg.Offset, msg.Value, n.kcfg.Encoding)
			}
			if err != nil {
				// The partition workers never see it: count it here, as
				// the single-detector path would.
				n.m.errors.WithLabelValues("rekey").Inc()
				n.log.Warn("re-key: undecodable message skipped", "partition", msg.Partition, "offset", msg.Offset, "err", err)
			}
			if newest > reached[msg.Partition] {
				reached[msg.Partition], advanced[msg.Partition] = newest, newest
			}
		}
		if !flush(len(batch)) {
			return nil
		}
	}
}

// Bounds of what the re-key stage reads before it writes: each write to
// the re-key topic and each commit is a round trip to the brokers, which
// per message cost a re-keying member more than the splitting did.
const (
	rekeyBatchMessages = 256
	rekeyBatchBytes    = 2 << 20
	// rekeyBatchWait is how long it waits for one more message already
	// on its way before writing what it has.
	rekeyBatchWait = 2 * time.Millisecond
)

// fetchRekeyBatch waits for a message, then takes the ones that follow
// without waiting, up to the batch bounds; nil once ctx ends.
func (n *Node) fetchRekeyBatch(ctx context.Context, r *kafka.Reader) []kafka.Message {
	var batch []kafka.Message
	for len(batch) == 0 {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			n.log.Warn("re-key: read", "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		batch = append(batch, msg)
	}
	size := len(batch[0].Value)
	for len(batch) < rekeyBatchMessages && size < rekeyBatchBytes {
		wctx, cancel := context.WithTimeout(ctx, rekeyBatchWait)
		msg, err := r.FetchMessage(wctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && wctx.Err() == nil {
				n.log.Warn("re-key: read", "err", err)
			}
			break
		}
		batch = append(batch, msg)
		size += len(msg.Value)
	}
	return batch
}

// writeMarks writes a watermark record for each span partition in
// advanced to every re-key partition: after the traces, so that every
// re-key partition has them before it hears that their span partition
// has passed them.
func (n *Node) writeMarks(ctx context.Context, out *kafka.Writer, advanced map[int]int64) bool {
	var marks []kafka.Message
	for _, src := range slices.Sorted(maps.Keys(advanced)) {
		from, wm := []byte(strconv.Itoa(src)), []byte(strconv.FormatInt(advanced[src], 10))
		for p := range n.partitions {
			marks = append(marks, kafka.Message{Headers: []kafka.Header{{Key: headerRekeySource, Value: from},
				{Key: headerRekeyWatermark, Value: wm}, {Key: headerRekeyTo, Value: []byte(strconv.Itoa(p))}}})
		}
	}
	return n.writeRekeyed(ctx, out, marks, 0)
}

// Headers of the re-key topic's messages. Every message names the span
// partition its spans were read from. A message of spans lists its
// segments (headerRekeySegments: "offset:length,..."), the spans of one
// span message each, in offset order. A watermark record (no value) says
// that span partition has been re-keyed up to the event time it carries
// (Unix ns, the latest span end read from it), and is written to every
// re-key partition (headerRekeyTo) after the traces it covers. Partition
// workers count each span under its span partition, so event time in a
// re-key partition advances only when every span partition has passed
// (consume.Batch.EventSource), as it would reading the span topic itself.
const (
	headerRekeySource    = "causeway.rekey.source"
	headerRekeyWatermark = "causeway.rekey.watermark"
	headerRekeyTo        = "causeway.rekey.to"
	headerRekeySegments  = "causeway.rekey.segments"
)

// rekeyBalancer sends a message to the re-key partition its header names
// (every message the stage writes names one: its spans' partition is
// tracePartition's, a watermark record's each partition in turn), and one
// naming none by the hash of its key.
type rekeyBalancer struct{ hash *kafka.Hash }

func (b rekeyBalancer) Balance(msg kafka.Message, partitions ...int) int {
	for _, h := range msg.Headers {
		if h.Key == headerRekeyTo {
			if p, err := strconv.Atoi(string(h.Value)); err == nil && slices.Contains(partitions, p) {
				return p
			}
		}
	}
	return b.hash.Balance(msg, partitions...)
}

// rekeyHeaderRoom is what a re-keyed message's headers and framing may
// add to its value: the segments header lists up to a fetch's span
// messages.
const rekeyHeaderRoom = 16 << 10

// writeRekeyed writes msgs to the re-key topic, retrying until the broker
// takes them; false when ctx ended first. They hold spans spans (counted
// once written). A retry writes every message again: a partition worker
// skips the segments it has applied. A message larger than the topic
// takes is written segment by segment, and a segment larger than that is
// dropped and counted: retrying it could never succeed, and would hold
// every later span back.
func (n *Node) writeRekeyed(ctx context.Context, out *kafka.Writer, msgs []kafka.Message, spans int) bool {
	err := n.write(ctx, out, msgs)
	if tooLarge(err) {
		var dropped int
		dropped, err = n.writeApart(ctx, out, msgs)
		spans -= dropped
	}
	if err != nil {
		return false
	}
	n.m.rekeyed.Add(float64(spans))
	return true
}

// write writes msgs, retrying until the broker takes them. It returns nil,
// ctx's error, or an error that tooLarge recognises.
func (n *Node) write(ctx context.Context, out *kafka.Writer, msgs []kafka.Message) error {
	for attempt := 1; len(msgs) > 0; attempt++ {
		err := out.WriteMessages(ctx, msgs...)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case tooLarge(err):
			return err
		}
		n.m.errors.WithLabelValues("rekey").Inc()
		if attempt == 1 {
			n.log.Warn("re-key: write; retrying", "err", err)
		}
		if !sleep(ctx, min(time.Duration(attempt)*time.Second, 10*time.Second)) {
			return ctx.Err()
		}
	}
	return nil
}

// tooLarge reports whether err says a message is larger than the writer
// or the topic takes.
func tooLarge(err error) bool {
	var big kafka.MessageTooLargeError
	if errors.As(err, &big) || errors.Is(err, kafka.MessageSizeTooLarge) {
		return true
	}
	var each kafka.WriteErrors
	if errors.As(err, &each) {
		for _, e := range each {
			if e != nil && tooLarge(e) {
				return true
			}
		}
	}
	return false
}

// writeApart writes msgs one by one, in order, a message the topic does
// not take as its segments one by one, and drops a segment it does not
// take either; it returns the spans dropped.
func (n *Node) writeApart(ctx context.Context, out *kafka.Writer, msgs []kafka.Message) (dropped int, err error) {
	for _, m := range msgs {
		err := n.write(ctx, out, []kafka.Message{m})
		if !tooLarge(err) {
			if err != nil {
				return dropped, err
			}
			continue
		}
		for _, seg := range segmentMessages(m) {
			err := n.write(ctx, out, []kafka.Message{seg})
			if !tooLarge(err) {
				if err != nil {
					return dropped, err
				}
				continue
			}
			lost := segmentSpans(seg.Value)
			dropped += lost
			n.m.dropped.Add(float64(lost))
			n.m.errors.WithLabelValues("rekey").Inc()
			if !n.dropLogged {
				n.dropLogged = true
				n.log.Warn("re-key: a part of a span message is larger than the re-key topic takes; dropped and counted in causeway_fleet_rekey_dropped_spans_total (raise the topic's max.message.bytes)",
					"topic", n.cfg.RekeyTopic, "bytes", len(seg.Value), "spans", lost, "max_message_bytes", n.rekeyLimit, "err", err)
			}
		}
	}
	return dropped, nil
}

// segmentMessages splits a re-keyed message into one message per
// segment, each with the headers of m and its own segments header.
func segmentMessages(m kafka.Message) []kafka.Message {
	var segs []byte
	var keep []kafka.Header
	for _, h := range m.Headers {
		if h.Key == headerRekeySegments {
			segs = h.Value
		} else {
			keep = append(keep, h)
		}
	}
	var out []kafka.Message
	pos := 0
	for _, s := range strings.Split(string(segs), ",") {
		_, length, ok := strings.Cut(s, ":")
		n, err := strconv.Atoi(length)
		if !ok || err != nil || n < 0 || pos+n > len(m.Value) {
			return []kafka.Message{m} // not ours to take apart
		}
		hs := append(slices.Clip(keep), kafka.Header{Key: headerRekeySegments, Value: []byte(s)})
		out = append(out, kafka.Message{Key: m.Key, Value: m.Value[pos : pos+n], Headers: hs})
		pos += n
	}
	return out
}

// segmentSpans is how many spans an OTLP request holds, for counting a
// segment that is dropped; 0 when it does not decode.
func segmentSpans(b []byte) int {
	var d otlp.Decoder
	spans, err := d.Decode(b, nil)
	if err != nil {
		return 0
	}
	return len(spans)
}

// rekeyOut is what the re-key stage writes for a batch: per span
// partition and re-key partition, one message whose value is its segments
// one after the other (each an ExportTraceServiceRequest, so the value is
// one too) and whose header lists them.
type rekeyOut struct {
	max   int // bound of a message's value, but for a single segment
	split splitter
	msgs  map[rekeyPair]*rekeyMsg
	order []rekeyPair
	spare map[rekeyPair]*rekeyMsg // written, their memory free for the next batch
	spans int                     // the spans held
	// dst and held are add's, per re-key partition: the values it splits
	// into and their lengths before.
	dst  [][]byte
	held []int
}

type rekeyPair struct{ from, to int }

type rekeyMsg struct {
	value, segments []byte
}

func newRekeyOut(partitions, max int) *rekeyOut {
	return &rekeyOut{max: max, msgs: map[rekeyPair]*rekeyMsg{}, spare: map[rekeyPair]*rekeyMsg{},
		dst: make([][]byte, partitions), held: make([]int, partitions)}
}

// add splits span message msg, read at offset of span partition from, by
// re-key partition (splitter.splitParts), straight into the messages of
// that span partition, each part a segment; it returns the latest span end
// in msg (Unix ns). full: it would take a message that holds something
// past the bound, and nothing is added; write what is held (messages,
// reset) and add it again. A message it cannot split adds nothing.
func (o *rekeyOut) add(from int, offset int64, msg []byte, enc consume.Encoding) (newest int64, full bool, err error) {
	if enc == consume.EncodingJSON {
		if msg, err = jsonToProto(msg); err != nil {
			return 0, false, err
		}
	}
	for p := range o.dst {
		o.dst[p] = nil
		if m := o.msgs[rekeyPair{from, p}]; m != nil {
			o.dst[p] = m.value
		} else if m := o.spare[rekeyPair{from, p}]; m != nil {
			o.dst[p] = m.value[:0]
		}
		o.held[p] = len(o.dst[p])
	}
	spans, newest, err := o.split.splitParts(msg, len(o.dst), o.dst)
	if err != nil {
		return 0, false, err
	}
	for p, b := range o.dst {
		if o.held[p] > 0 && len(b) > o.held[p] && len(b) > o.max {
			// What it appended lies past the held values' ends: they
			// are as they were.
			return 0, true, nil
		}
	}
	o.spans += spans
	for p, b := range o.dst {
		if len(b) == o.held[p] {
			continue
		}
		k := rekeyPair{from, p}
		m := o.msgs[k]
		if m == nil {
			if m = o.spare[k]; m != nil {
				delete(o.spare, k)
				m.segments = m.segments[:0]
			} else {
				m = &rekeyMsg{}
			}
			o.msgs[k] = m
			o.order = append(o.order, k)
		}
		if len(m.segments) > 0 {
			m.segments = append(m.segments, ',')
		}
		m.segments = strconv.AppendInt(m.segments, offset, 10)
		m.segments = append(m.segments, ':')
		m.segments = strconv.AppendInt(m.segments, int64(len(b)-o.held[p]), 10)
		m.value = b
	}
	return newest, false, nil
}

// messages returns what add gathered, one message per span partition and
// re-key partition; their values and headers are valid until reset.
func (o *rekeyOut) messages() []kafka.Message {
	out := make([]kafka.Message, 0, len(o.order))
	for _, k := range o.order {
		m := o.msgs[k]
		out = append(out, kafka.Message{Value: m.value, Headers: []kafka.Header{
			{Key: headerRekeySource, Value: []byte(strconv.Itoa(k.from))},
			{Key: headerRekeyTo, Value: []byte(strconv.Itoa(k.to))},
			{Key: headerRekeySegments, Value: m.segments}}})
	}
	return out
}

// reset empties it for the next batch, once the messages are written:
// their memory serves the next batch's messages (a synchronous write
// holds none after it returns).
func (o *rekeyOut) reset() {
	for k, m := range o.msgs {
		o.spare[k] = m
	}
	clear(o.msgs)
	o.order, o.spans = o.order[:0], 0
}

// jsonToProto re-encodes an otlp_json message as OTLP protobuf, which the
// splitter walks.
func jsonToProto(b []byte) ([]byte, error) {
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(b)
	if err != nil {
		return nil, fmt.Errorf("otlp_json: %w", err)
	}
	return (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
}
