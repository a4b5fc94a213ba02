package consume_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/internal/metrictest"
	"github.com/causeway/causeway/span"
)

// TestClockSkewedProducers feeds the decoder and the graph, as the
// detector does, a stream of calls one second apart in which two producers
// with wrong clocks interleave traces: one an hour ahead (beyond
// kafka.max_clock_skew), one an hour behind (after the windows of its time
// have closed). It checks that
//   - the future trace is rejected by the decoder as bad_timestamp and
//     never reaches the graph: the watermark and the closed windows are
//     those of the honest stream alone;
//   - the past trace is counted too late by the graph
//     (causeway_graph_spans_too_late_total) and opens no window;
//   - the windows close in order, contiguous, each holding exactly the
//     honest calls of its ten seconds, none lost around the skewed ones.
//
// Everything runs on a fixed clock: it is deterministic.
func TestClockSkewedProducers(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cm := consume.NewMetrics(nil)
	md, err := consume.NewMessageDecoder(consume.Config{Brokers: []string{"unused:9092"}, MaxClockSkew: time.Minute},
		slog.New(slog.NewTextHandler(io.Discard, nil)), cm, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	gm := graph.NewMetrics(reg)
	var windows []*graph.Window
	agg := graph.New(graph.Config{Window: 10 * time.Second, TraceIdle: time.Second, Lateness: time.Second},
		func(w *graph.Window) { windows = append(windows, w) }, gm)

	const honest = 60 // one call a second, from now-90s
	first := now.Add(-90 * time.Second)
	var offset int64
	feed := func(id int, end time.Time) (spans, late int) {
		b := md.Decode(context.Background(), kafka.Message{Topic: "spans", Partition: 0, Offset: offset, Value: call(t, id, end)})
		offset++
		return len(b.Spans), agg.AddFrom(b.Partition, b.Spans)
	}
	var closedBeforeFuture, closedBeforePast int64
	for i := range honest {
		switch i {
		case 30:
			closedBeforeFuture = agg.ClosedTo()
			if n, _ := feed(10_000, now.Add(time.Hour)); n != 0 {
				t.Errorf("a trace an hour in the future gave %d spans to the graph", n)
			}
			if got := agg.ClosedTo(); got != closedBeforeFuture {
				t.Errorf("the future trace moved the closed windows from %v to %v", time.Unix(0, closedBeforeFuture), time.Unix(0, got))
			}
		case 40:
			closedBeforePast = agg.ClosedTo()
			if n, late := feed(20_000, now.Add(-time.Hour)); n != 2 || late != 2 {
				t.Errorf("a trace an hour in the past: %d spans decoded, %d too late; want 2 and 2", n, late)
			}
			if got := agg.ClosedTo(); got != closedBeforePast {
				t.Errorf("the past trace moved the closed windows from %v to %v", time.Unix(0, closedBeforePast), time.Unix(0, got))
			}
		}
		if _, late := feed(i, first.Add(time.Duration(i)*time.Second)); late != 0 {
			t.Fatalf("honest call %d counted too late", i)
		}
	}
	agg.Flush()

	if got := testutil.ToFloat64(cm.Rejected.WithLabelValues(string(span.ReasonBadTimestamp))); got != 2 {
		t.Errorf("spans rejected as bad_timestamp = %v, want 2 (the future trace)", got)
	}
	if got := metrictest.Value(t, reg, "causeway_graph_spans_too_late_total"); got != 2 {
		t.Errorf("spans too late = %v, want 2 (the past trace)", got)
	}
	if closedBeforeFuture == 0 || closedBeforePast <= closedBeforeFuture {
		t.Fatalf("windows had not closed before the skewed traces came (%v, %v): the test proves nothing", closedBeforeFuture, closedBeforePast)
	}
	total := 0
	for i, w := range windows {
		if w.Start.Before(first.Add(-10*time.Second)) || w.End.After(now.Add(10*time.Second)) {
			t.Errorf("window %v–%v: outside the honest stream", w.Start, w.End)
		}
		if i > 0 && !w.Start.Equal(windows[i-1].End) {
			t.Errorf("window %d starts at %v, the one before ended at %v", i, w.Start, windows[i-1].End)
		}
		for k, e := range w.Edges {
			if k.Source == "frontend" && k.Target == "cartservice" {
				total += int(e.Requests)
			}
		}
	}
	if total != honest {
		t.Errorf("the windows hold %d frontend→cartservice calls, want the %d honest ones", total, honest)
	}
}

// call is one trace: a frontend client span and the cartservice server
// span it calls, ending at end.
func call(t *testing.T, id int, end time.Time) []byte {
	t.Helper()
	tid := make([]byte, 16)
	copy(tid, fmt.Sprintf("skew-%08d", id))
	sid := func(i byte) []byte { return []byte{byte(id >> 8), byte(id), i, 0, 0, 0, 0, 1} }
	e := uint64(end.UnixNano())
	rs := func(svc string, s *tracepb.Span) *tracepb.ResourceSpans {
		return &tracepb.ResourceSpans{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name",
				Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: svc}}}}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{s}}}}
	}
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		rs("frontend", &tracepb.Span{TraceId: tid, SpanId: sid(1), Name: "GetCart", Kind: tracepb.Span_SPAN_KIND_CLIENT,
			StartTimeUnixNano: e - 10e6, EndTimeUnixNano: e}),
		rs("cartservice", &tracepb.Span{TraceId: tid, SpanId: sid(2), ParentSpanId: sid(1), Name: "GetCart", Kind: tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: e - 9e6, EndTimeUnixNano: e - 1e6}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
