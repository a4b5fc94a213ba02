package bench

import (
	"testing"
	"time"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/sim"
	"github.com/causeway/causeway/span"
)

// workload is two simulated minutes of the default shop at 200 requests/s,
// as batch messages of up to 1000 spans: what a Collector would write.
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
	for range 120 {
		for _, m := range s.Messages(time.Second) {
			msgs = append(msgs, m.Value)
			bytes += len(m.Value)
		}
	}
	return msgs, bytes
}

func countSpans(b *testing.B, msgs [][]byte) int {
	d := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	n := 0
	for _, m := range msgs {
		r, err := d.Decode(m)
		if err != nil {
			b.Fatal(err)
		}
		n += len(r.Spans)
	}
	return n
}

// BenchmarkDecode is the fast protobuf decoder plus span checks alone.
func BenchmarkDecode(b *testing.B) {
	msgs, bytes := workload(b)
	spans := countSpans(b, msgs)
	d := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, m := range msgs {
			if _, err := d.Decode(m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(spans)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkDecodeAggregate is decode + trace join + window aggregation, the
// path every span takes, on one goroutine.
func BenchmarkDecodeAggregate(b *testing.B) {
	msgs, bytes := workload(b)
	spans := countSpans(b, msgs)
	d := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		agg := graph.New(graph.Config{}, nil, nil)
		for _, m := range msgs {
			r, err := d.Decode(m)
			if err != nil {
				b.Fatal(err)
			}
			agg.Add(r.Spans)
		}
		agg.Flush()
	}
	b.ReportMetric(float64(spans)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}
