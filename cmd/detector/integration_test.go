//go:build integration

package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// These tests need a real Kafka broker: scripts/integration.sh starts one
// and sets KAFKA_BROKERS.

func brokers(t testing.TB) []string {
	t.Helper()
	b := os.Getenv("KAFKA_BROKERS")
	if b == "" {
		t.Fatal("KAFKA_BROKERS is not set: run these tests through scripts/integration.sh (make integration)")
	}
	return strings.Split(b, ",")
}

func createTopic(t testing.TB, brokers []string, topic string, partitions int) {
	t.Helper()
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
}

// traceRequest is one trace: frontend calls cartservice, which reads Redis.
func traceRequest(n int, at time.Time) *coltracepb.ExportTraceServiceRequest {
	tid := make([]byte, 16)
	copy(tid, fmt.Sprintf("trace-%08d", n))
	sid := func(i byte) []byte { return []byte{byte(n >> 8), byte(n), i, 0, 0, 0, 0, 1} }
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	t0 := uint64(at.UnixNano())
	rs := func(svc string, spans ...*tracepb.Span) *tracepb.ResourceSpans {
		return &tracepb.ResourceSpans{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", svc)}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		rs("frontend",
			&tracepb.Span{TraceId: tid, SpanId: sid(1), Name: "GET /cart", Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: t0, EndTimeUnixNano: t0 + 20e6},
			&tracepb.Span{TraceId: tid, SpanId: sid(2), ParentSpanId: sid(1), Name: "CartService/GetCart", Kind: tracepb.Span_SPAN_KIND_CLIENT, StartTimeUnixNano: t0 + 1e6, EndTimeUnixNano: t0 + 15e6}),
		rs("cartservice",
			&tracepb.Span{TraceId: tid, SpanId: sid(3), ParentSpanId: sid(2), Name: "CartService/GetCart", Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: t0 + 2e6, EndTimeUnixNano: t0 + 14e6},
			&tracepb.Span{TraceId: tid, SpanId: sid(4), ParentSpanId: sid(3), Name: "HGET", Kind: tracepb.Span_SPAN_KIND_CLIENT, StartTimeUnixNano: t0 + 3e6, EndTimeUnixNano: t0 + 5e6,
				Attributes: []*commonpb.KeyValue{str("db.system", "redis"), str("server.address", "redis-cart")}}),
	}}
}

const spansPerTrace = 4

// buildDetector builds this package's detector into a temporary directory
// and returns its path, for tests that run it as a process.
func buildDetector(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "detector")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// scrape returns the value of one metric line of /metrics, e.g.
// `causeway_consume_errors_total{reason="bad_json"}`; 0 when absent.
func scrape(t *testing.T, addr, series string) float64 {
	t.Helper()
	v, err := scrapeValue(addr, series)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// scrapeValue is scrape, returning its error.
func scrapeValue(addr, series string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, sc.Err()
}

// waitMetric polls /metrics until series reaches want. A real broker gives
// no other signal; the deadline bounds the wait.
func waitMetric(t *testing.T, addr, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		got := scrape(t, addr, series)
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", series, got, want)
		}
	}
}

// topicDetectorConfig is a detector reading topic on bs in a group of its
// own, committing often, its API on a free loopback port.
func topicDetectorConfig(bs []string, topic string) Config {
	cfg := defaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Kafka.Brokers, cfg.Kafka.Topic, cfg.Kafka.GroupID = bs, topic, "it_"+topic
	cfg.Kafka.CommitInterval = 100 * time.Millisecond
	return cfg
}

// startMain runs one detector until the returned stop, which waits for a
// clean shutdown, is called.
func startMain(t *testing.T, cfg Config) (*Main, string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Main{Config: cfg, Log: quietLogger(t)}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	addr := m.Addr(wctx)
	if addr == "" {
		cancel()
		t.Fatalf("detector did not start: %v", <-done)
	}
	return m, addr, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("detector stopped with %v", err)
		}
	}
}
