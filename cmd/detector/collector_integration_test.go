//go:build integration

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/sim"
	"github.com/causeway/causeway/span"
)

// The real producer: simulated services send OTLP/gRPC to an OpenTelemetry
// Collector built by scripts/collector.sh (OTLP receiver, batch processor,
// contrib kafka exporter), which writes to the real broker; one detector
// reads the topic. scripts/integration.sh builds the Collector and sets
// OTELCOL_BIN.

const (
	// collectorSimulated is how much simulated traffic each run sends.
	collectorSimulated = 3 * time.Minute
	// collectorSpeed is simulated seconds per wall-clock second. Sending
	// paced close to real time keeps every partition of the topic about
	// as far along in event time as the others, as live traffic is, so
	// the detector's watermark does not run ahead of a partition it has
	// yet to read (which a backlog read in one go would allow).
	collectorSpeed = 8
	// collectorStep is the simulated time per OTLP export, like an SDK's
	// batch span processor.
	collectorStep = time.Second
)

// TestIntegrationCollector sends the same simulated traffic through the
// Collector once with partition_traces_by_id (one message per trace, keyed
// by trace id) and once without (batches of many traces, no key). Both
// times the detector's service graph must equal the graph built from the
// traffic directly: one detector reads every partition, so batched
// messages pair their spans as well as trace-keyed ones.
func TestIntegrationCollector(t *testing.T) {
	bin := collectorBinary(t)
	bs := brokers(t)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	graphs := map[bool]*graph.Snapshot{}
	for _, byID := range []bool{true, false} {
		name := "batches"
		if byID {
			name = "partition_traces_by_id"
		}
		t.Run(name, func(t *testing.T) {
			topic := fmt.Sprintf("it_otelcol_%s_%s", name, suffix)
			const partitions = 6
			createTopic(t, bs, topic, partitions)
			addr := freeAddr(t)
			startCollector(t, bin, addr, collectorConfig(addr, bs, topic, byID))

			// The detector reads from the start of the topic, so it may
			// start before or after the traffic; before is like live.
			cfg := topicDetectorConfig(bs, topic)
			m, apiAddr, stop := startMain(t, cfg)
			defer stop()

			want, sent := sendSimulated(t, addr, cfg.Graph)
			t.Logf("sent %d spans of %v simulated traffic", sent, collectorSimulated)

			waitMetric(t, apiAddr, "causeway_spans_total", float64(sent))
			got := waitGraph(t, m, want.WindowEnd)
			compareEdges(t, "detector", got, "direct", want)
			for _, s := range []string{
				"causeway_graph_spans_too_late_total",
				"causeway_graph_traces_evicted_total",
			} {
				if v := scrape(t, apiAddr, s); v != 0 {
					t.Errorf("%s = %v, want 0", s, v)
				}
			}
			checkMessages(t, bs, topic, partitions, byID)
			graphs[byID] = got
		})
	}
	if a, b := graphs[true], graphs[false]; a != nil && b != nil {
		compareEdges(t, "batches", b, "trace-keyed", a)
	}
}

// collectorBinary returns the Collector scripts/collector.sh built. A
// missing Collector fails the test: this is the only test of the real
// producer, and skipping it would hide a broken build.
func collectorBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("OTELCOL_BIN")
	if bin == "" {
		if msg := os.Getenv("OTELCOL_BUILD_ERROR"); msg != "" {
			t.Fatalf("the OpenTelemetry Collector could not be built: %s", msg)
		}
		t.Fatal("OTELCOL_BIN is not set: run these tests through scripts/integration.sh, which builds the Collector with scripts/collector.sh build")
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("OTELCOL_BIN=%s is not an executable: %v", bin, err)
	}
	return bin
}

// collectorConfig is a Collector pipeline from OTLP/gRPC on addr to topic.
// The Collector's own metrics are off: their default listener is not on
// loopback, and nothing here reads them.
func collectorConfig(addr string, brokers []string, topic string, byID bool) string {
	return fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
processors:
  batch:
    timeout: 200ms
    send_batch_size: 2000
exporters:
  kafka:
    brokers: [%s]
    traces:
      topic: %s
      encoding: otlp_proto
    partition_traces_by_id: %t
service:
  telemetry:
    logs:
      level: info
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [kafka]
`, addr, strings.Join(brokers, ", "), topic, byID)
}

// startCollector runs the Collector with config until the test ends, and
// returns once its OTLP/gRPC receiver at addr accepts exports. Its log is
// printed if the test fails.
func startCollector(t *testing.T, bin, addr, config string) {
	t.Helper()
	dir := t.TempDir()
	confPath := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(confPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "collector.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", confPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start collector: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		// SIGTERM lets it flush what it holds; a hung one is killed.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("collector ignored SIGTERM for 15s and was killed")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("collector config:\n%s\ncollector log (%s):\n%s", config, logPath, b)
		}
	})

	// Ready when an empty export goes through the pipeline.
	conn := dialOTLP(t, addr)
	client := coltracepb.NewTraceServiceClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Export(ctx, &coltracepb.ExportTraceServiceRequest{})
		cancel()
		if err == nil {
			return
		}
		select {
		case werr := <-exited:
			exited <- werr // for the cleanup
			t.Fatalf("collector exited during start-up: %v", werr)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector did not accept OTLP on %s within 30s: %v", addr, err)
		}
	}
}

func dialOTLP(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
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

// sendSimulated exports collectorSimulated of the simulator's traffic to
// the Collector at addr, paced at collectorSpeed. It returns the graph the
// same spans give when fed straight into an aggregator with the detector's
// graph settings gcfg (the windows the spans themselves close, no flush),
// and how many spans it sent.
func sendSimulated(t *testing.T, addr string, gcfg graph.Config) (*graph.Snapshot, int) {
	t.Helper()
	agg := graph.New(gcfg, nil, nil)
	// Event time starts a little before now, on a window boundary, so
	// every run files the same calls in the same windows and their graphs
	// can be compared.
	window := agg.Config().Window
	s, err := sim.New(sim.Config{Seed: 11, Start: time.Now().Truncate(window).Add(-window), Rate: 20})
	if err != nil {
		t.Fatal(err)
	}
	client := coltracepb.NewTraceServiceClient(dialOTLP(t, addr))
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	sent := 0
	tick := time.NewTicker(time.Duration(float64(collectorStep) / collectorSpeed))
	defer tick.Stop()
	for elapsed := time.Duration(0); elapsed < collectorSimulated; elapsed += collectorStep {
		td := s.Step(collectorStep)
		if len(td.ResourceSpans) == 0 {
			continue
		}
		// TracesData and ExportTraceServiceRequest are the same message.
		req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: td.ResourceSpans}
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		res, err := dec.Decode(b)
		if err != nil {
			t.Fatalf("decode simulated traffic: %v", err)
		}
		if len(res.Rejected) > 0 {
			t.Fatalf("the decoder rejects simulated spans: %v", res.Rejected)
		}
		sent += len(res.Spans)
		agg.Add(res.Spans)

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = client.Export(ctx, req)
		cancel()
		if err != nil {
			t.Fatalf("export to collector at %v simulated: %v", elapsed, err)
		}
		<-tick.C
	}
	want := agg.Snapshot()
	if want.WindowEnd.IsZero() || len(want.Edges) < 10 {
		t.Fatalf("the simulated traffic closed no window or gave only %d edges", len(want.Edges))
	}
	return want, sent
}

// waitGraph returns the detector's graph once it has closed the window
// ending at end: spans are counted as they are decoded, a moment before
// the graph applies them.
func waitGraph(t *testing.T, m *Main, end time.Time) *graph.Snapshot {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		g := m.Graph().Snapshot()
		if g.WindowEnd.Equal(end) {
			return g
		}
		if g.WindowEnd.After(end) || time.Now().After(deadline) {
			t.Fatalf("detector's last closed window ends at %v, want %v", g.WindowEnd, end)
		}
	}
	return nil
}

// edgeSet lists a graph's edges as "source->target", sorted.
func edgeSet(g *graph.Snapshot) []string {
	var out []string
	for _, e := range g.Edges {
		out = append(out, e.Source+"->"+e.Target)
	}
	slices.Sort(out)
	return out
}

// compareEdges checks graph got has exactly want's edges, each with the
// same number of calls and errors over all closed windows, give or take 1%:
// the same spans reach both, so a difference means calls were joined
// differently, which should not happen, but a stray few must not fail a
// test of the transport.
func compareEdges(t *testing.T, gotName string, got *graph.Snapshot, wantName string, want *graph.Snapshot) {
	t.Helper()
	if g, w := edgeSet(got), edgeSet(want); !slices.Equal(g, w) {
		t.Errorf("edges differ:\n %-11s %v\n %-11s %v", gotName, g, wantName, w)
	}
	byName := map[string]graph.EdgeView{}
	for _, e := range got.Edges {
		byName[e.Source+"->"+e.Target] = e
	}
	near := func(a, b int64) bool { return max(a-b, b-a) <= max(1, b/100) }
	exact := 0
	for _, w := range want.Edges {
		name := w.Source + "->" + w.Target
		g, ok := byName[name]
		switch {
		case !ok:
		case g.Total.Requests == w.Total.Requests && g.Total.Errors == w.Total.Errors:
			exact++
		case !near(g.Total.Requests, w.Total.Requests) || !near(g.Total.Errors, w.Total.Errors):
			t.Errorf("%s: %s has %d calls, %d errors; %s has %d, %d", name,
				gotName, g.Total.Requests, g.Total.Errors, wantName, w.Total.Requests, w.Total.Errors)
		}
	}
	t.Logf("%s vs %s: %d edges, %d with exactly the same calls and errors; %d calls from frontend",
		gotName, wantName, len(want.Edges), exact, frontendCalls(got))
}

func frontendCalls(g *graph.Snapshot) int64 {
	var n int64
	for _, e := range g.Edges {
		if e.Source == "frontend" {
			n += e.Total.Requests
		}
	}
	return n
}

var hexTraceID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// checkMessages reads every message of topic back and checks the
// Collector keyed them as configured: with partition_traces_by_id one trace
// per message, keyed by its hex id, spread over all partitions; without
// it, no key and batches holding many traces.
func checkMessages(t *testing.T, brokers []string, topic string, partitions int, byID bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: &kafka.Transport{}}
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	used, messages, multiTrace := 0, 0, 0
	for _, po := range ends.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("partition %d: %v", po.Partition, po.Error)
		}
		if po.LastOffset > 0 {
			used++
		}
		for next := int64(0); next < po.LastOffset; {
			res, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: po.Partition, Offset: next, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: time.Second})
			if err == nil {
				err = res.Error
			}
			if err != nil {
				t.Fatalf("fetch partition %d at offset %d of %d: %v", po.Partition, next, po.LastOffset, err)
			}
			for {
				rec, err := res.Records.ReadRecord()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("read partition %d after offset %d: %v", po.Partition, next, err)
				}
				next = rec.Offset + 1
				messages++
				key, value := readBytes(t, rec.Key), readBytes(t, rec.Value)
				spans, err := dec.Decode(value)
				if err != nil {
					t.Fatalf("partition %d offset %d: %v", po.Partition, rec.Offset, err)
				}
				traces := map[string]bool{}
				for _, s := range spans.Spans {
					traces[s.TraceID.String()] = true
				}
				if len(traces) > 1 {
					multiTrace++
				}
				switch {
				case byID && (!hexTraceID.Match(key) || len(traces) != 1 || !traces[string(key)]):
					t.Fatalf("partition %d offset %d: key %q for %d traces; want one trace keyed by its hex id", po.Partition, rec.Offset, key, len(traces))
				case !byID && len(key) != 0:
					t.Fatalf("partition %d offset %d: key %q, want none without partition_traces_by_id", po.Partition, rec.Offset, key)
				}
			}
		}
	}
	t.Logf("%d messages on %d of %d partitions, %d of them with several traces", messages, used, partitions, multiTrace)
	if byID && used != partitions {
		t.Errorf("trace-keyed messages reached %d of %d partitions", used, partitions)
	}
	if !byID && multiTrace == 0 {
		t.Errorf("no message holds several traces: the Collector did not batch")
	}
}

// readBytes reads a record's key or value; nil is empty.
func readBytes(t *testing.T, b kafka.Bytes) []byte {
	t.Helper()
	if b == nil {
		return nil
	}
	defer b.Close()
	out, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
