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
	"go.opentelemetry.io/collector/pdata/ptrace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
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

// scrape returns the value of one metric line of /metrics, e.g.
// `causeway_consume_errors_total{reason="bad_json"}`; 0 when absent.
func scrape(t *testing.T, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
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

func TestIntegrationKafkaProtoAndJSON(t *testing.T) {
	bs := brokers(t)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	protoTopic, jsonTopic := "it_proto_"+suffix, "it_json_"+suffix
	createTopic(t, bs, protoTopic, 3)
	createTopic(t, bs, jsonTopic, 3)
	now := time.Now()

	// otlp_proto from a Go producer, keyed by trace id as the Collector does
	// with partition_traces_by_id, malformed messages interleaved.
	w := &kafka.Writer{Addr: kafka.TCP(bs...), Topic: protoTopic, Balancer: &kafka.Hash{}, Transport: &kafka.Transport{}, BatchTimeout: 5 * time.Millisecond}
	var msgs []kafka.Message
	const protoTraces = 30
	for i := range protoTraces {
		req := traceRequest(i, now)
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("%x", req.ResourceSpans[0].ScopeSpans[0].Spans[0].TraceId)), Value: b})
		switch i {
		case 7:
			msgs = append(msgs, kafka.Message{Value: []byte("definitely \xff not protobuf")})
		case 19:
			msgs = append(msgs, kafka.Message{Value: b[:len(b)/2]})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	// otlp_json produced by kcat, one message per line, one malformed.
	var jm ptrace.JSONMarshaler
	var pu ptrace.ProtoUnmarshaler
	var lines []string
	const jsonTraces = 20
	for i := range jsonTraces {
		b, _ := proto.Marshal(traceRequest(1000+i, now))
		td, err := pu.UnmarshalTraces(b)
		if err != nil {
			t.Fatal(err)
		}
		j, err := jm.MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		// Keyed by trace id, as with partition_traces_by_id, so kcat spreads
		// the messages over the partitions.
		lines = append(lines, fmt.Sprintf("%032x\t%s", 1000+i, j))
		if i == 10 {
			lines = append(lines, "bad\t"+`{"resourceSpans":[{"resource":{"attributes":[`)
		}
	}
	file := filepath.Join(t.TempDir(), "spans.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("kcat", "-P", "-b", bs[0], "-t", jsonTopic, "-K\t", "-l", file).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v: %s", err, out)
	}

	for _, tc := range []struct {
		topic, enc   string
		traces       int
		errors       map[string]float64
		totalMessage int
	}{
		{protoTopic, "otlp_proto", protoTraces, map[string]float64{"not_protobuf": 1, "truncated": 1}, protoTraces + 2},
		{jsonTopic, "otlp_json", jsonTraces, map[string]float64{"bad_json": 1}, jsonTraces + 1},
	} {
		t.Run(tc.enc, func(t *testing.T) {
			cfg := topicDetectorConfig(bs, tc.topic)
			cfg.Kafka.Encoding = consumeEncoding(tc.enc)
			cfg.Kafka.CommitInterval = 50 * time.Millisecond
			_, addr, stop := startMain(t, cfg)
			waitMetric(t, addr, "causeway_spans_total", float64(tc.traces*spansPerTrace))
			waitMetric(t, addr, "causeway_consume_commits_total", float64(tc.totalMessage))
			for reason, want := range tc.errors {
				if got := scrape(t, addr, `causeway_consume_errors_total{reason="`+reason+`"}`); got != want {
					t.Errorf("errors{%s} = %v, want %v", reason, got, want)
				}
			}
			stop()
			assertCommitted(t, bs, cfg.Kafka.GroupID, tc.topic)

			// A restarted detector resumes after the committed offsets:
			// it reads only what was produced since.
			w := &kafka.Writer{Addr: kafka.TCP(bs...), Topic: tc.topic, Transport: &kafka.Transport{}, BatchTimeout: 5 * time.Millisecond}
			b, _ := proto.Marshal(traceRequest(5000, now))
			if tc.enc == "otlp_json" {
				td, _ := pu.UnmarshalTraces(b)
				b, _ = jm.MarshalTraces(td)
			}
			if err := w.WriteMessages(context.Background(), kafka.Message{Value: b}); err != nil {
				t.Fatal(err)
			}
			w.Close()
			_, addr, stop = startMain(t, cfg)
			waitMetric(t, addr, "causeway_consume_commits_total", 1)
			if got := scrape(t, addr, "causeway_spans_total"); got != spansPerTrace {
				t.Errorf("after restart read %v spans, want only the %d new ones", got, spansPerTrace)
			}
			stop()
		})
	}
}

// assertCommitted checks the group's committed offset equals the end of
// every partition of topic.
func assertCommitted(t *testing.T, bs []string, group, topic string) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(bs...), Transport: &kafka.Transport{}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts := []int{0, 1, 2}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range parts {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	end := map[int]int64{}
	for _, po := range ends.Topics[topic] {
		end[po.Partition] = po.LastOffset
	}
	for _, p := range committed.Topics[topic] {
		if end[p.Partition] == 0 {
			t.Errorf("partition %d is empty: the test should spread messages over all partitions", p.Partition)
		}
		if p.CommittedOffset != end[p.Partition] {
			t.Errorf("partition %d: committed %d, end %d", p.Partition, p.CommittedOffset, end[p.Partition])
		}
	}
}
