package consume_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/consume/otlp/otlptest"
)

// A message with more spans than max_spans_per_message is skipped whole,
// counted as too_many_spans; one at the limit passes.
func TestMaxSpansPerMessage(t *testing.T) {
	cm := consume.NewMetrics(nil)
	md, err := consume.NewMessageDecoder(consume.Config{Brokers: []string{"unused:9092"}, MaxSpansPerMessage: 50, MaxClockSkew: 1 << 62},
		slog.New(slog.NewTextHandler(io.Discard, nil)), cm, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spans, want int
		errors      float64
	}{{50, 50, 0}, {51, 0, 1}} {
		v, err := proto.Marshal(otlptest.RealisticRequest(tc.spans, 1))
		if err != nil {
			t.Fatal(err)
		}
		b := md.Decode(context.Background(), kafka.Message{Topic: "spans", Value: v})
		if len(b.Spans) != tc.want {
			t.Errorf("%d spans in: %d out, want %d", tc.spans, len(b.Spans), tc.want)
		}
		if got := testutil.ToFloat64(cm.Errors.WithLabelValues("too_many_spans")); got != tc.errors {
			t.Errorf("%d spans in: too_many_spans = %v, want %v", tc.spans, got, tc.errors)
		}
	}
}
