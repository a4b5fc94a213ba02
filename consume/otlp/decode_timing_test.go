package otlp

import (
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/consume/otlp/otlptest"
	"github.com/causeway/causeway/span"
)

const benchSpans = 1000

// benchMsg is the realistic request both benchmarks decode.
var benchMsg = sync.OnceValue(func() []byte {
	b, err := proto.Marshal(otlptest.RealisticRequest(benchSpans, 1))
	if err != nil {
		panic(err)
	}
	return b
})

// reportSpans adds spans/s and ns/span to a benchmark of decoding benchMsg.
func reportSpans(b *testing.B) {
	spans := float64(b.N) * benchSpans
	b.ReportMetric(spans/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/spans, "ns/span")
}

// BenchmarkDecodeProto measures Decoder.Decode in steady state: dst and the
// interner reused, as the consumer runs. The strict variant adds the
// validation of the parts the decoder skips.
func BenchmarkDecodeProto(b *testing.B) {
	for _, strict := range []bool{false, true} {
		name := "lenient"
		if strict {
			name = "strict"
		}
		b.Run(name, func(b *testing.B) {
			msg := benchMsg()
			d := Decoder{Strict: strict}
			dst := make([]span.Span, 0, benchSpans)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = d.Decode(msg, dst[:0]); err != nil || len(dst) != benchSpans {
					b.Fatalf("Decode: %d spans, %v", len(dst), err)
				}
			}
			reportSpans(b)
		})
	}
}

// BenchmarkProtoUnmarshal measures the reference path: proto.Unmarshal into
// the generated types, then FromProto.
func BenchmarkProtoUnmarshal(b *testing.B) {
	msg := benchMsg()
	var in span.Interner
	dst := make([]span.Span, 0, benchSpans)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(msg, &req); err != nil {
			b.Fatal(err)
		}
		if dst = FromProto(&req, &in, dst[:0]); len(dst) != benchSpans {
			b.Fatalf("FromProto: %d spans", len(dst))
		}
	}
	reportSpans(b)
}
