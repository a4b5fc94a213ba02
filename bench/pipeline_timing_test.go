package bench

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/consume/otlp"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/sim"
	"github.com/causeway/causeway/span"
)

// workload is two simulated minutes of the default shop at 200 requests/s,
// as batch messages of up to 1000 spans: what a Collector would write, and
// as it writes them (its pdata marshaler puts a message's fields last
// first: a span's attributes value before key).
func workload(b *testing.B) ([][]byte, int) {
	b.Helper()
	cfg := sim.Default()
	cfg.Faults = nil
	cfg.Rate = 200
	cfg.ByTrace = false
	s, err := sim.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var msgs [][]byte
	var bytes int
	for range int(passLength / time.Second) {
		for _, m := range s.Messages(time.Second) {
			v := remarshal(b, m.Value, &ptrace.ProtoMarshaler{})
			msgs = append(msgs, v)
			bytes += len(v)
		}
	}
	return msgs, bytes
}

// remarshal reads OTLP protobuf msg as the Collector does and writes it
// with its marshaler m.
func remarshal(b *testing.B, msg []byte, m ptrace.Marshaler) []byte {
	b.Helper()
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(msg)
	if err != nil {
		b.Fatal(err)
	}
	out, err := m.MarshalTraces(td)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// passLength is how much event time the workload covers.
const passLength = 2 * time.Minute

// run decodes every message and hands its spans to apply.
func run(b *testing.B, d *consume.Decoder, msgs [][]byte, apply func([]span.Span)) {
	for _, m := range msgs {
		r, err := d.Decode(m)
		if err != nil {
			b.Fatal(err)
		}
		apply(r.Spans)
	}
}

func countSpans(b *testing.B, msgs [][]byte) int {
	n := 0
	run(b, consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0), msgs, func(s []span.Span) { n += len(s) })
	return n
}

// measure runs pass over the workload (bytes long, spans spans) in the
// benchmark loop and reports bytes/s, allocations and spans/s.
func measure(b *testing.B, bytes, spans int, pass func()) {
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pass()
	}
	b.ReportMetric(float64(spans)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkDecode is the fast protobuf decoder plus span checks alone.
func BenchmarkDecode(b *testing.B) {
	msgs, bytes := workload(b)
	spans := countSpans(b, msgs)
	d := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	measure(b, bytes, spans, func() { run(b, d, msgs, func([]span.Span) {}) })
}

// aggregateSteady measures the pipeline in its steady state: one
// aggregator fed the workload pass after pass, each pass shifted two
// minutes later in event time, after two passes of warm-up. So pending
// traces, windows and sketches are recycled as in a long-running detector,
// and the figures are not those of a fresh start. decode returns one
// message's spans, in buf or a buffer of its own.
func aggregateSteady(b *testing.B, msgs [][]byte, bytes int, decode func(msg []byte, buf []span.Span) []span.Span) {
	spans := countSpans(b, msgs)
	agg := graph.New(graph.Config{}, nil, nil)
	var shift int64
	var buf []span.Span
	pass := func() {
		for _, m := range msgs {
			buf = decode(m, buf[:0])
			for i := range buf {
				buf[i].Start += shift
				buf[i].End += shift
			}
			agg.Add(buf)
		}
		shift += int64(passLength)
	}
	pass()
	pass()
	measure(b, bytes, spans, pass)
}

// BenchmarkDecodeAggregate is decode + trace join + window aggregation, the
// path every span takes, on one goroutine.
func BenchmarkDecodeAggregate(b *testing.B) {
	msgs, bytes := workload(b)
	d := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	aggregateSteady(b, msgs, bytes, func(m []byte, buf []span.Span) []span.Span {
		r, err := d.Decode(m)
		if err != nil {
			b.Fatal(err)
		}
		return r.Spans // the decoder's buffer, valid until its next Decode
	})
}

// BenchmarkGeneratedAggregate is the same path through the generated OTLP
// types (proto.Unmarshal, then the reference conversion FromProto), as a
// detector without the hand-written decoder would take it: the baseline
// the fast path is measured against.
func BenchmarkGeneratedAggregate(b *testing.B) {
	msgs, bytes := workload(b)
	var in span.Interner
	aggregateSteady(b, msgs, bytes, func(m []byte, buf []span.Span) []span.Span {
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(m, &req); err != nil {
			b.Fatal(err)
		}
		return otlp.FromProto(&req, &in, buf)
	})
}

// BenchmarkDecodeJSON is the otlp_json decoder alone (the Collector's own
// pdata reader, then the span checks).
func BenchmarkDecodeJSON(b *testing.B) {
	msgs, _ := workload(b)
	spans := countSpans(b, msgs)
	var js [][]byte
	bytes := 0
	for _, m := range msgs {
		j := remarshal(b, m, &ptrace.JSONMarshaler{})
		js = append(js, j)
		bytes += len(j)
	}
	d := consume.NewDecoder(consume.EncodingJSON, span.Limits{}, 0)
	measure(b, bytes, spans, func() { run(b, d, js, func([]span.Span) {}) })
}
