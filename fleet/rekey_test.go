package fleet

import (
	"encoding/hex"
	"testing"

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
	for _, rs := range req.ResourceSpans {
		name := serviceName(rs)
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
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
		out, err := splitByTrace(in, enc)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
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
	if _, err := splitByTrace([]byte("not otlp"), consume.EncodingProto); err == nil {
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
