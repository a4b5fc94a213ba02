//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/consume"
)

// otlp_proto and otlp_json spans from a real broker, and a restart resuming after the commits.

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

func consumeEncoding(s string) consume.Encoding { return consume.Encoding(s) }
