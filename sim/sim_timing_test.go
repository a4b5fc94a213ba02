package sim

import (
	"testing"
	"time"
)

// benchConfig generates about 180k spans per simulated second.
func benchConfig(byTrace bool) Config {
	return Config{Seed: 1, Rate: 10000, Steady: true, ByTrace: byTrace,
		Faults: []Fault{{Kind: Latency, Target: "paymentservice", Delay: 100 * time.Millisecond}}}
}

func reportSpans(b *testing.B, spans int) {
	b.ReportMetric(float64(spans)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(spans), "ns/span")
}

// BenchmarkStep measures generating spans as OTLP structs.
func BenchmarkStep(b *testing.B) {
	s, _ := New(benchConfig(false))
	spans := 0
	for b.Loop() {
		for _, rs := range s.Step(100 * time.Millisecond).ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans += len(ss.Spans)
			}
		}
	}
	reportSpans(b, spans)
}

// BenchmarkMessages measures generating spans as encoded Kafka messages,
// the path that feeds load tests.
func BenchmarkMessages(b *testing.B) {
	for _, bb := range []struct {
		name    string
		byTrace bool
	}{{"batches", false}, {"by trace", true}} {
		b.Run(bb.name, func(b *testing.B) {
			s, _ := New(benchConfig(bb.byTrace))
			spans, bytes := 0, 0
			for b.Loop() {
				for _, m := range s.Messages(100 * time.Millisecond) {
					bytes += len(m.Value)
				}
				spans += len(s.out)
			}
			reportSpans(b, spans)
			b.ReportMetric(float64(bytes)/float64(spans), "B/span")
		})
	}
}
