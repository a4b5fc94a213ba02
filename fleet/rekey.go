package fleet

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/causeway/causeway/consume"
)

// rekey is the first stage when span messages are batches of many traces
// (the Collector without partition_traces_by_id): members share the span
// topic in a group of their own, split each message by trace, and write
// each trace's spans (as OTLP protobuf) to the re-key topic keyed by trace
// id, so that every trace's spans meet in one partition. An offset is
// committed only after its traces are written.
//
// It splits messages without decoding them into the generated OTLP types
// (splitter): resources, scopes and spans are copied as they are.
func (n *Node) rekey(ctx context.Context) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: n.kcfg.Brokers, GroupID: n.kcfg.GroupID + "-rekey", Topic: n.kcfg.Topic,
		Dialer: n.dialer, MinBytes: 1, MaxBytes: n.kcfg.MaxMessageBytes + 1<<20, MaxWait: 500 * time.Millisecond,
		SessionTimeout: n.cfg.SessionTimeout, StartOffset: kafka.FirstOffset, Logger: kafka.LoggerFunc(func(string, ...any) {})})
	defer r.Close()
	out := &kafka.Writer{Addr: kafka.TCP(n.kcfg.Brokers...), Topic: n.cfg.RekeyTopic, Balancer: rekeyBalancer{&kafka.Hash{}},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, WriteTimeout: 15 * time.Second, Transport: n.tr}
	defer out.Close()
	// The latest span end read from each span partition: the watermark
	// carried to every re-key partition after each message.
	reached := map[int]int64{}
	var split splitter
	for {
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
		traces, newest, err := split.splitByTrace(msg.Value, n.kcfg.Encoding)
		if err != nil {
			// The partition workers never see it: count it here, as the
			// single-detector path would.
			n.m.errors.WithLabelValues("rekey").Inc()
			n.log.Warn("re-key: undecodable message skipped", "partition", msg.Partition, "offset", msg.Offset, "err", err)
		}
		from := []byte(strconv.Itoa(msg.Partition))
		msgs := make([]kafka.Message, 0, len(traces))
		for id, b := range traces {
			msgs = append(msgs, kafka.Message{Key: []byte(id), Value: b, Headers: []kafka.Header{{Key: headerRekeySource, Value: from}}})
		}
		if !n.writeRekeyed(ctx, out, msgs, true) {
			return nil
		}
		if newest > reached[msg.Partition] {
			reached[msg.Partition] = newest
			// Written after the traces, so every re-key partition has them
			// before it hears that their span partition has passed them.
			wm := []byte(strconv.FormatInt(newest, 10))
			marks := make([]kafka.Message, n.partitions)
			for p := range marks {
				marks[p] = kafka.Message{Headers: []kafka.Header{{Key: headerRekeySource, Value: from},
					{Key: headerRekeyWatermark, Value: wm}, {Key: headerRekeyTo, Value: []byte(strconv.Itoa(p))}}}
			}
			if !n.writeRekeyed(ctx, out, marks, false) {
				return nil
			}
		}
		if err := r.CommitMessages(ctx, msg); err != nil && ctx.Err() == nil {
			n.log.Warn("re-key: commit", "err", err)
		}
	}
}

// Headers of the re-key topic's messages. Every message names the span
// partition its spans were read from; a watermark record (no value) says
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
)

// rekeyBalancer sends a watermark record to the partition it names and
// every trace by the hash of its id.
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

// writeRekeyed writes msgs to the re-key topic, retrying until the broker
// takes them; false when ctx ended first. traces: they are re-keyed
// traces (counted), not watermark records.
func (n *Node) writeRekeyed(ctx context.Context, out *kafka.Writer, msgs []kafka.Message, traces bool) bool {
	for attempt := 1; len(msgs) > 0; attempt++ {
		err := out.WriteMessages(ctx, msgs...)
		if err == nil {
			if traces {
				n.m.rekeyed.Add(float64(len(msgs)))
			}
			break
		}
		if ctx.Err() != nil {
			return false
		}
		n.m.errors.WithLabelValues("rekey").Inc()
		if attempt == 1 {
			n.log.Warn("re-key: write; retrying", "err", err)
		}
		if !sleep(ctx, min(time.Duration(attempt)*time.Second, 10*time.Second)) {
			return false
		}
	}
	return true
}

// splitByTrace returns one OTLP protobuf request per trace in the message,
// keyed by hex trace id, and the latest span end in it (Unix ns);
// resources and scopes are kept with their spans (splitter).
func (s *splitter) splitByTrace(b []byte, enc consume.Encoding) (map[string][]byte, int64, error) {
	if enc == consume.EncodingJSON {
		td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(b)
		if err != nil {
			return nil, 0, fmt.Errorf("otlp_json: %w", err)
		}
		if b, err = (&ptrace.ProtoMarshaler{}).MarshalTraces(td); err != nil {
			return nil, 0, err
		}
	}
	return s.split(b)
}
