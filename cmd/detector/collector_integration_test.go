//go:build integration

package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
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
