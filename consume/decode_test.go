package consume

import (
	"errors"
	"reflect"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/causeway/causeway/consume/otlp/otlptest"
	"github.com/causeway/causeway/span"
)

// jsonOf renders protobuf as the Collector's otlp_json encoding does.
func jsonOf(t testing.TB, pb []byte) []byte {
	t.Helper()
	var u ptrace.ProtoUnmarshaler
	var m ptrace.JSONMarshaler
	td, err := u.UnmarshalTraces(pb)
	if err != nil {
		t.Fatal(err)
	}
	j, err := m.MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func clone(r Result) []span.Span { return append([]span.Span(nil), r.Spans...) }

// TestJSONMatchesProto: the same request decodes to the same spans from
// either encoding.
func TestJSONMatchesProto(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		pb := marshal(t, otlptest.RealisticRequest(300, seed))
		p, err := NewDecoder(EncodingProto, span.Limits{}, 0).Decode(pb)
		if err != nil {
			t.Fatal(err)
		}
		j, err := NewDecoder(EncodingJSON, span.Limits{}, 0).Decode(jsonOf(t, pb))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Spans) == 0 || !reflect.DeepEqual(clone(p), clone(j)) || !reflect.DeepEqual(p.Rejected, j.Rejected) {
			t.Fatalf("seed %d: proto and json decode differently (%d vs %d spans)", seed, len(p.Spans), len(j.Spans))
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := marshal(t, request(1, "cart", 2))
	for _, tc := range []struct {
		name string
		enc  Encoding
		max  int
		msg  []byte
		want span.Reason
	}{
		{"garbage", EncodingProto, 0, []byte{0x0f, 0x01}, span.ReasonNotProtobuf}, // wire type 7
		{"unfinished varint", EncodingProto, 0, []byte{0xff, 0xff, 0xff}, span.ReasonTruncated},
		{"truncated", EncodingProto, 0, good[:len(good)-3], span.ReasonTruncated},
		{"oversize", EncodingProto, 10, good, span.ReasonOversize},
		{"bad json", EncodingJSON, 0, []byte(`{"resourceSpans":[`), span.ReasonBadJSON},
		{"json not an object", EncodingJSON, 0, []byte(`[1,2]`), span.ReasonBadJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDecoder(tc.enc, span.Limits{}, tc.max).Decode(tc.msg)
			var de *Error
			if !errors.As(err, &de) || de.Reason != tc.want {
				t.Fatalf("Decode = %v, want reason %s", err, tc.want)
			}
		})
	}
}

func TestDecodeRejectsSpansByReason(t *testing.T) {
	req := request(1, "cart", 3)
	spans := req.ResourceSpans[0].ScopeSpans[0].Spans
	spans[1].EndTimeUnixNano = spans[1].StartTimeUnixNano - 1 // reversed
	spans[2].TraceId = make([]byte, 16)                       // zero id
	res, err := NewDecoder(EncodingProto, span.Limits{}, 0).Decode(marshal(t, req))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Spans) != 1 || res.Rejected[span.ReasonBadTimestamp] != 1 || res.Rejected[span.ReasonBadID] != 1 {
		t.Fatalf("kept %d, rejected %v", len(res.Spans), res.Rejected)
	}
}

// FuzzDecodeJSON: nothing in a message can crash the JSON path; what it
// rejects it rejects as bad JSON, and what it keeps passes the span checks.
func FuzzDecodeJSON(f *testing.F) {
	// Small seeds keep the fuzzer fast; the real Nezha lines are covered by
	// the replay tests.
	for seed := int64(1); seed <= 3; seed++ {
		j := jsonOf(f, marshal(f, otlptest.RealisticRequest(12, seed)))
		f.Add(j)
		f.Add(j[:len(j)/2])
	}
	f.Add(jsonOf(f, marshal(f, request(1, "cart", 2))))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		res, err := NewDecoder(EncodingJSON, span.Limits{}, 0).Decode(msg)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || de.Reason != span.ReasonBadJSON {
				t.Fatalf("json error %v, want reason bad_json", err)
			}
			return
		}
		for i := range res.Spans {
			if r := (span.Limits{}).Check(&res.Spans[i]); r != "" {
				t.Fatalf("kept a span that fails its check: %s", r)
			}
		}
	})
}

// DecodeInto fills the caller's storage and leaves it alone afterwards:
// the spans it returned stay as they were through later decodes, into the
// decoder's own buffer or into other storage.
func TestDecodeIntoIsTheCallers(t *testing.T) {
	d := NewDecoder(EncodingProto, span.Limits{}, 0)
	a := marshal(t, otlptest.RealisticRequest(50, 1))
	b := marshal(t, otlptest.RealisticRequest(50, 2))
	want, err := NewDecoder(EncodingProto, span.Limits{}, 0).Decode(a)
	if err != nil {
		t.Fatal(err)
	}
	mine := make([]span.Span, 0, 100)
	got, err := d.DecodeInto(a, mine)
	if err != nil {
		t.Fatal(err)
	}
	if &got.Spans[0] != &mine[:1][0] {
		t.Fatal("DecodeInto did not decode into the storage it was given")
	}
	if _, err := d.Decode(b); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DecodeInto(b, nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Spans, clone(want)) {
		t.Fatal("later decodes changed the spans DecodeInto returned")
	}
}
