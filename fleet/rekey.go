package fleet

import (
	"context"
	"encoding/hex"
	"fmt"
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
	out := &kafka.Writer{Addr: kafka.TCP(n.kcfg.Brokers...), Topic: n.cfg.RekeyTopic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, WriteTimeout: 15 * time.Second, Transport: n.tr}
	defer out.Close()
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
		traces, err := splitByTrace(msg.Value, n.kcfg.Encoding)
		if err != nil {
			// The partition workers never see it: count it here, as the
			// single-detector path would.
			n.m.errors.WithLabelValues("rekey").Inc()
			n.log.Warn("re-key: undecodable message skipped", "partition", msg.Partition, "offset", msg.Offset, "err", err)
		}
		msgs := make([]kafka.Message, 0, len(traces))
		for id, b := range traces {
			msgs = append(msgs, kafka.Message{Key: []byte(id), Value: b})
		}
		for attempt := 1; len(msgs) > 0; attempt++ {
			err := out.WriteMessages(ctx, msgs...)
			if err == nil {
				n.m.rekeyed.Add(float64(len(msgs)))
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			n.m.errors.WithLabelValues("rekey").Inc()
			if attempt == 1 {
				n.log.Warn("re-key: write; retrying", "err", err)
			}
			if !sleep(ctx, min(time.Duration(attempt)*time.Second, 10*time.Second)) {
				return nil
			}
		}
		if err := r.CommitMessages(ctx, msg); err != nil && ctx.Err() == nil {
			n.log.Warn("re-key: commit", "err", err)
		}
	}
}

// splitByTrace returns one OTLP protobuf request per trace in the message,
// keyed by hex trace id; resources and scopes are kept with their spans.
func splitByTrace(b []byte, enc consume.Encoding) (map[string][]byte, error) {
	req := &coltracepb.ExportTraceServiceRequest{}
	if enc == consume.EncodingJSON {
		td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(b)
		if err != nil {
			return nil, fmt.Errorf("otlp_json: %w", err)
		}
		if b, err = (&ptrace.ProtoMarshaler{}).MarshalTraces(td); err != nil {
			return nil, err
		}
	}
	if err := proto.Unmarshal(b, req); err != nil {
		return nil, fmt.Errorf("otlp_proto: %w", err)
	}
	type scopeKey struct{ rs, ss int }
	byTrace := map[string]*coltracepb.ExportTraceServiceRequest{}
	scopes := map[string]map[scopeKey]*tracepb.ScopeSpans{}
	for ri, rs := range req.ResourceSpans {
		for si, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
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
			return nil, err
		}
		out[id] = b
	}
	return out, nil
}
