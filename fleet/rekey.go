package fleet

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/consume"
)

// rekey is the first stage when span messages are batches of many traces
// (the Collector without partition_traces_by_id): members share the span
// topic in a group of their own, split each message by trace, and write
// each trace's spans (as OTLP protobuf) to the re-key topic keyed by trace
// id, so that every trace's spans meet in one partition. An offset is
// committed only after its traces are written.
//
// It decodes with the generated OTLP types rather than the fast path: it
// must keep every field to re-encode them, and it runs only in this mode.
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
		traces, newest, err := splitByTrace(msg.Value, n.kcfg.Encoding)
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
// resources and scopes are kept with their spans.
func splitByTrace(b []byte, enc consume.Encoding) (map[string][]byte, int64, error) {
	req := &coltracepb.ExportTraceServiceRequest{}
	if enc == consume.EncodingJSON {
		td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(b)
		if err != nil {
			return nil, 0, fmt.Errorf("otlp_json: %w", err)
		}
		if b, err = (&ptrace.ProtoMarshaler{}).MarshalTraces(td); err != nil {
			return nil, 0, err
		}
	}
	if err := proto.Unmarshal(b, req); err != nil {
		return nil, 0, fmt.Errorf("otlp_proto: %w", err)
	}
	var newest int64
	type scopeKey struct{ rs, ss int }
	byTrace := map[string]*coltracepb.ExportTraceServiceRequest{}
	scopes := map[string]map[scopeKey]*tracepb.ScopeSpans{}
	for ri, rs := range req.ResourceSpans {
		for si, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				newest = max(newest, int64(sp.EndTimeUnixNano))
				id := hex.EncodeToString(sp.TraceId)
				t := byTrace[id]
				if t == nil {
					t = &coltracepb.ExportTraceServiceRequest{}
					byTrace[id], scopes[id] = t, map[scopeKey]*tracepb.ScopeSpans{}
				}
				k := scopeKey{ri, si}
				dst := scopes[id][k]
				if dst == nil {
					var rdst *tracepb.ResourceSpans
					for _, have := range t.ResourceSpans {
						if have.Resource == rs.Resource {
							rdst = have
						}
					}
					if rdst == nil {
						rdst = &tracepb.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl}
						t.ResourceSpans = append(t.ResourceSpans, rdst)
					}
					dst = &tracepb.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}
					rdst.ScopeSpans = append(rdst.ScopeSpans, dst)
					scopes[id][k] = dst
				}
				dst.Spans = append(dst.Spans, sp)
			}
		}
	}
	out := make(map[string][]byte, len(byTrace))
	for id, t := range byTrace {
		b, err := proto.Marshal(t)
		if err != nil {
			return nil, 0, err
		}
		out[id] = b
	}
	return out, newest, nil
}
