package fleet

import (
	"encoding/hex"
	"strconv"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/consume/otlp/otlptest"
)

// TestSplitByTrace: every span lands in its trace's request, with its own
// resource and scope, in both encodings; nothing is lost or added.
func TestSplitByTrace(t *testing.T) {
	req := otlptest.RealisticRequest(400, 7)
	want := map[string]int{}   // trace -> spans
	svc := map[string]string{} // span id -> service.name
	var newest uint64
	for _, rs := range req.ResourceSpans {
		name := serviceName(rs)
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				newest = max(newest, sp.EndTimeUnixNano)
				want[hex.EncodeToString(sp.TraceId)]++
				svc[hex.EncodeToString(sp.SpanId)] = name
			}
		}
	}
	if len(want) < 2 {
		t.Fatalf("fixture has %d traces", len(want))
	}
	pb, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(pb)
	if err != nil {
		t.Fatal(err)
	}
	js, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	for enc, in := range map[consume.Encoding][]byte{consume.EncodingProto: pb, consume.EncodingJSON: js} {
		out, end, err := (&splitter{}).splitByTrace(in, enc)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if end != int64(newest) || end == 0 {
			t.Errorf("%s: latest span end %d, want %d", enc, end, newest)
		}
		if len(out) != len(want) {
			t.Fatalf("%s: %d traces, want %d", enc, len(out), len(want))
		}
		for id, b := range out {
			var r coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, rs := range r.ResourceSpans {
				name := serviceName(rs)
				for _, ss := range rs.ScopeSpans {
					for _, sp := range ss.Spans {
						n++
						if hex.EncodeToString(sp.TraceId) != id || svc[hex.EncodeToString(sp.SpanId)] != name {
							t.Errorf("%s: span %x of trace %x under %q in the request of %s", enc, sp.SpanId, sp.TraceId, name, id)
						}
					}
				}
			}
			if n != want[id] {
				t.Errorf("%s: trace %s has %d spans, want %d", enc, id, n, want[id])
			}
		}
	}
	if _, _, err := (&splitter{}).splitByTrace([]byte("not otlp"), consume.EncodingProto); err == nil {
		t.Error("garbage split without error")
	}
}

func serviceName(rs *tracepb.ResourceSpans) string {
	for _, kv := range rs.Resource.Attributes {
		if kv.Key == "service.name" {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// TestRekeyHeaders: a watermark record goes to the re-key partition it
// names, a trace by its id's hash; a worker reads back the span partition
// and watermark a message carries, and counts a message naming none under
// no span partition.
func TestRekeyHeaders(t *testing.T) {
	bal := rekeyBalancer{&kafka.Hash{}}
	parts := []int{0, 1, 2, 3}
	for p := range parts {
		m := kafka.Message{Headers: []kafka.Header{{Key: headerRekeySource, Value: []byte("5")}, {Key: headerRekeyTo, Value: []byte(strconv.Itoa(p))}}}
		if got := bal.Balance(m, parts...); got != p {
			t.Errorf("watermark record for partition %d sent to %d", p, got)
		}
	}
	trace := kafka.Message{Key: []byte("4bf92f3577b34da6a3ce929d0e0e4736")}
	if a, b := bal.Balance(trace, parts...), bal.Balance(trace, parts...); a != b {
		t.Errorf("one trace sent to partitions %d and %d", a, b)
	}

	var b consume.Batch
	rekeyedFrom(&b, []kafka.Header{{Key: headerRekeySource, Value: []byte("5")}, {Key: headerRekeyWatermark, Value: []byte("1700000000000000000")}})
	if !b.Rekeyed || b.EventSource() != 5 || b.SourceAt != 1_700_000_000_000_000_000 {
		t.Errorf("read back %+v", b)
	}
	b = consume.Batch{Partition: 2}
	rekeyedFrom(&b, nil)
	if b.EventSource() != -1 || b.SourceAt != 0 {
		t.Errorf("a message naming no span partition counts under %d (watermark %d)", b.EventSource(), b.SourceAt)
	}
}
