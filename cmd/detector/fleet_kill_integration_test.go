//go:build integration

package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/internal/wait"
	"github.com/causeway/causeway/sim"
	"github.com/causeway/causeway/span"
)

// The killed fleet's traffic: simulated minutes ending now, read as a
// backlog, with a paymentservice slowdown late enough for the baselines to
// alarm (they learn every window of the first baselines.SeqWarmUp, 10
// minutes: a fault at minute 4 of 10 opens no incident, replay or fleet),
// and over two minutes before the end so that its incident resolves.
const (
	killHistory    = 14 * time.Minute
	killFault      = "latency:paymentservice:+200ms@11m/2m"
	killPartitions = 4
	// killIdle is the members' idle_advance: it closes the last windows
	// once every partition is read. It is longer than a member's absence
	// (session_timeout 6s, then the rebalance): a re-key partition's
	// worker is caught up with its own partition while the re-key stage
	// of the killed member's span partitions is stalled, and an idle
	// advance then would close windows their spans are still to come for.
	killIdle = 20 * time.Second
	// killAfter is how many windows a member must have published before
	// it is killed: a few per partition of the 84 each has (14 minutes of
	// 10 s windows), so it dies with most of its backlog still to read.
	killAfter = 16
)

// TestIntegrationFleetKill: a fleet's graph is one detector's replay of
// the same spans, even when a member is killed while reading. Fourteen
// simulated minutes ending now are written, span for span the same, to a
// 4-partition topic trace-keyed (one message per trace, keyed by its id),
// to another in batches of many traces spread round robin (the Collector
// without partition_traces_by_id), and to a length-prefixed OTLP protobuf
// file, which `detector replay` reads. For each topic two detector
// processes in cluster mode read the backlog from earliest; once one has
// published some windows it is killed (SIGKILL) and started again with the
// same configuration and state directory while the backlog is still being
// read. Once both are idle, each member's graph must hold, edge by edge,
// the calls of the replay's, and their incidents must name the replay's
// top suspects. The figures are logged as a table, edge by edge.
//
// One loss is allowed, and only as much of it as the traffic holds: the
// boundary effect docs/fleet.md states. A partition's new owner (after the
// kill, or any rebalance) drops as too late the spans that end before the
// watermark its previous owner published, so a call filed after it whose
// caller span ended before it (a queue hop: the producer ends before its
// consumer) loses its edge. The test counts such calls at each hand-over
// the members log, and allows each edge into their callee that many
// calls fewer. No edge may have more calls than the replay's. In this
// traffic, 2 of the 336 windows of the 4 partitions begin between a
// producer's end and its consumer's; a kill whose hand-over fell on one
// lost 1 call of orders -> fulfillmentservice in one run of four.
func TestIntegrationFleetKill(t *testing.T) {
	bin := buildDetector(t)
	bs := brokers(t)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topics := map[bool]string{true: "kill_keyed_" + suffix, false: "kill_batches_" + suffix}
	for _, topic := range topics {
		createTopic(t, bs, topic, killPartitions)
	}
	file := filepath.Join(t.TempDir(), "spans.pb")
	traffic := produceKillTraffic(t, bs, topics[true], topics[false], file)

	began := time.Now()
	want := replayFile(t, bin, file)
	t.Logf("%d spans written to %s, %s and %s; replay: %d spans in %d windows to %s, %d edges, %d calls, incidents %q (%v)",
		traffic.spans, topics[true], topics[false], filepath.Base(file), want.Stats.Spans, want.Stats.Windows,
		want.Stats.LastWindow.Format(time.TimeOnly), len(want.Graph.Edges), totalCalls(want.Graph),
		names(unmerged(want.Incidents)), time.Since(began).Round(time.Millisecond))
	if want.Stats.Spans != int64(traffic.spans) || len(want.Stats.BadMessages) > 0 || len(want.Stats.RejectedSpans) > 0 {
		t.Fatalf("replay read %d spans of %d, bad messages %v, rejected spans %v", want.Stats.Spans, traffic.spans,
			want.Stats.BadMessages, want.Stats.RejectedSpans)
	}
	if len(unmerged(want.Incidents)) == 0 {
		t.Fatal("the replay found no incident: nothing to compare the fleet's with")
	}

	for _, keyed := range []bool{true, false} {
		t.Run(fmt.Sprintf("trace_keyed=%v", keyed), func(t *testing.T) {
			began := time.Now()
			runKilledFleet(t, bin, bs, topics[keyed], keyed, fmt.Sprintf("%v_%s", keyed, suffix), want, traffic)
			t.Logf("trace_keyed=%v: %v", keyed, time.Since(began).Round(time.Millisecond))
		})
	}
}

// produceKillTraffic writes killHistory of simulated traffic, ending now,
// with killFault: trace-keyed to keyedTopic (hashed by trace id), in
// batches to batchTopic (round robin), and the batches again to file,
// each request preceded by its length (4 bytes, big-endian), as `detector
// replay` reads it. Two simulators with the same seed and configuration
// make the two forms; the spans of both are checked to be the same
// (count, and a sum of a hash of each span's ids and times).
func produceKillTraffic(t *testing.T, bs []string, keyedTopic, batchTopic, file string) killTraffic {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fault, err := sim.ParseFault(killFault) // its start is an offset from cfg.Start
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-killHistory).Truncate(10 * time.Second) // in the past: a backlog
	sims := map[bool]*sim.Sim{}
	for _, keyed := range []bool{true, false} {
		cfg := sim.Default()
		cfg.Seed, cfg.ByTrace, cfg.Start, cfg.Faults = 11, keyed, start, []sim.Fault{fault}
		if sims[keyed], err = sim.New(cfg); err != nil {
			t.Fatal(err)
		}
	}
	writer := func(topic string, bal kafka.Balancer) *kafka.Writer {
		return &kafka.Writer{Addr: kafka.TCP(bs...), Topic: topic, Balancer: bal, Transport: &kafka.Transport{},
			BatchTimeout: 5 * time.Millisecond, BatchSize: 1000, BatchBytes: 900_000, RequiredAcks: kafka.RequireAll}
	}
	keyedW, batchW := writer(keyedTopic, &kafka.Hash{}), writer(batchTopic, &kafka.RoundRobin{})
	defer keyedW.Close()
	defer batchW.Close()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := bufio.NewWriter(f)
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	keyedSum, batchSum := spanSum{index: newSpanIndex()}, spanSum{}
	for step := time.Duration(0); step < killHistory; step += 10 * time.Second {
		keyed, batches := sims[true].Messages(10*time.Second), sims[false].Messages(10*time.Second)
		keyedSum.add(t, dec, keyed)
		batchSum.add(t, dec, batches)
		if err := keyedW.WriteMessages(ctx, kafkaMessages(keyed)...); err != nil {
			t.Fatal(err)
		}
		if err := batchW.WriteMessages(ctx, kafkaMessages(batches)...); err != nil {
			t.Fatal(err)
		}
		for _, m := range batches {
			out.Write(binary.BigEndian.AppendUint32(nil, uint32(len(m.Value)))) // a write error is kept for Flush
			out.Write(m.Value)
		}
	}
	if err := out.Flush(); err != nil {
		t.Fatal(err)
	}
	if keyedSum.spans != batchSum.spans || keyedSum.sum != batchSum.sum || keyedSum.spans == 0 {
		t.Fatalf("the trace-keyed messages hold other spans than the batches: %d spans (hash sum %x) against %d (%x)",
			keyedSum.spans, keyedSum.sum, batchSum.spans, batchSum.sum)
	}
	return killTraffic{spans: keyedSum.spans, parts: batchSum.parts, async: keyedSum.index.asyncCalls()}
}

// killTraffic is what produceKillTraffic wrote.
type killTraffic struct {
	spans int // in each form
	parts int // traces of the batches, once per message: what the re-key stage is to write
	async []asyncCall
}

// kafkaMessages are the simulator's messages as a kafka.Writer takes them.
func kafkaMessages(msgs []sim.Message) []kafka.Message {
	out := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		out[i] = kafka.Message{Key: m.Key, Value: m.Value}
	}
	return out
}

// spanSum identifies a multiset of spans whatever their order or grouping
// into messages: how many, and the sum of a hash of each one's trace id,
// span id, start and end. It also counts the traces of each message
// (parts: a trace in two messages counts twice), which is what the re-key
// stage writes, one message each. With an index, it keeps the spans'
// links too.
type spanSum struct {
	spans int
	sum   uint64
	parts int
	index *spanIndex
}

func (s *spanSum) add(t *testing.T, dec *consume.Decoder, msgs []sim.Message) {
	t.Helper()
	h := fnv.New64a()
	for _, m := range msgs {
		res, err := dec.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rejected) > 0 {
			t.Fatalf("simulated spans rejected: %v", res.Rejected)
		}
		traces := map[span.TraceID]bool{}
		for i := range res.Spans {
			sp := &res.Spans[i]
			traces[sp.TraceID] = true
			if s.index != nil {
				s.index.add(sp)
			}
			h.Reset()
			h.Write(sp.TraceID[:])
			h.Write(sp.SpanID[:])
			h.Write(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(sp.Start)), uint64(sp.End)))
			s.sum += h.Sum64()
		}
		s.spans += len(res.Spans)
		s.parts += len(traces)
	}
}

// replayFile runs `detector replay` on file and returns what it wrote.
func replayFile(t *testing.T, bin, file string) ReplayOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "replay.json")
	if b, err := exec.CommandContext(ctx, bin, "replay", "--input", file, "--out", path).CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, b)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out ReplayOutput
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("replay output: %v", err)
	}
	if out.Graph == nil || len(out.Graph.Edges) == 0 {
		t.Fatal("the replay's graph has no edge")
	}
	return out
}

// runKilledFleet runs two members on topic from earliest, kills one with
// SIGKILL once it has published killAfter windows, starts it again, waits
// for both to be idle, and compares each one's graph and incidents with
// the replay's.
func runKilledFleet(t *testing.T, bin string, bs []string, topic string, keyed bool, id string, want ReplayOutput, traffic killTraffic) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "causeway.yaml")
	yaml := fleetConfig(bs, topic, "kill-"+id, keyed, killIdle, "kill_"+id)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	// start runs m's process (member.start): a new one on a new port each
	// time, with the same configuration and state directory, its output
	// appended to one log. Whatever is still running when the test ends is
	// stopped: SIGTERM, then SIGKILL if it has not exited within 30 s.
	start := func(m *member) {
		t.Helper()
		m.start(t, bin, conf, filepath.Join(dir, m.name))
		cmd := m.cmd
		t.Cleanup(func() {
			if cmd.ProcessState != nil {
				return // killed, and waited for
			}
			exited := make(chan struct{})
			go func() {
				_ = cmd.Wait()
				close(exited)
			}()
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				t.Errorf("member %s did not stop within 30 s of SIGTERM; killed", m.name)
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}
	members := []*member{{name: "a", log: filepath.Join(dir, "a.log")}, {name: "b", log: filepath.Join(dir, "b.log")}}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range members {
				b, _ := os.ReadFile(m.log)
				t.Logf("member %s log (tail):\n%s", m.name, tail(string(b), 6000))
			}
		}
	})
	began := time.Now()
	for _, m := range members {
		start(m)
	}

	// The victim is the first member to have published killAfter windows:
	// it is reading its share of the backlog.
	var victim, survivor *member
	wait.For(t, 2*time.Minute, 10*time.Millisecond, fmt.Sprintf("a member publishing %d windows", killAfter), func() bool {
		for i, m := range members {
			if scrapeOr(m.api, "causeway_fleet_windows_published_total") >= killAfter {
				victim, survivor = m, members[1-i]
				return true
			}
		}
		return false
	})
	before := progress(victim.api)
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = victim.cmd.Wait()
	t.Logf("%v after start: SIGKILL to member %s (%s); member %s then: %s", time.Since(began).Round(time.Millisecond),
		victim.name, before, survivor.name, progress(survivor.api))
	start(victim)
	wait.For(t, 30*time.Second, 50*time.Millisecond, "the restarted member ready", func() bool {
		resp, err := http.Get("http://" + victim.api + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	t.Logf("%v after start: member %s restarted and ready; member %s: %s", time.Since(began).Round(time.Millisecond),
		victim.name, survivor.name, progress(survivor.api))

	// Both idle: every member's graph has reached the replay's last window
	// and has not changed for 3 s; or, should it never reach it, has not
	// changed for longer than an idle advance takes (the comparison then
	// says what is missing).
	snaps := map[*member]*graph.Snapshot{}
	calls := map[*member]int64{}
	since := time.Now()
	wait.Report(t, 2*time.Minute, 500*time.Millisecond, "both members idle", func() (bool, string) {
		changed, reached := false, true
		var seen []string
		for _, m := range members {
			var s graph.Snapshot
			getJSON(t, "http://"+m.api+"/api/v1/graph", &s)
			n := totalCalls(&s)
			changed = changed || n != calls[m]
			reached = reached && !s.WindowEnd.Before(want.Graph.WindowEnd)
			snaps[m], calls[m] = &s, n
			seen = append(seen, fmt.Sprintf("%s: %d calls to %s", m.name, n, s.WindowEnd.Format(time.TimeOnly)))
		}
		if changed {
			since = time.Now()
		}
		quiet := time.Since(since)
		return reached && quiet >= 3*time.Second || quiet >= killIdle+15*time.Second,
			fmt.Sprintf("%s; replay %d to %s", strings.Join(seen, ", "), totalCalls(want.Graph), want.Graph.WindowEnd.Format(time.TimeOnly))
	})
	t.Logf("%v after start: idle; member %s: %s; member %s: %s", time.Since(began).Round(time.Millisecond),
		members[0].name, fleetFigures(members[0].api), members[1].name, fleetFigures(members[1].api))

	if !keyed {
		// The re-key stage is at-least-once: a message re-read after the
		// kill or a rebalance is split and written again, and the
		// partition workers skip what they applied already. What it wrote
		// twice shows the skipping was needed.
		t.Logf("re-key topic, for the batches' %d traces: %s", traffic.parts, readRekeyed(t, bs, "rekey_kill_"+id))
	}
	var logs []string
	for _, m := range members {
		logs = append(logs, m.log)
	}
	hs := handOvers(t, logs...)
	allowed, lost := boundaryLosses(traffic.async, hs)
	t.Logf("hand-overs (partition@published watermark): %v; calls whose caller span ended before one and callee span after, in its partition: %s",
		hs, lost)
	compareMemberCalls(t, want.Graph, members, snaps, allowed)

	// The same incidents: state and top suspect, as the replay's.
	wantNames := names(unmerged(want.Incidents))
	slices.Sort(wantNames)
	for _, m := range members {
		var incs struct{ Incidents []incident.Incident }
		getJSON(t, "http://"+m.api+"/api/v1/incidents", &incs)
		got := names(unmerged(incs.Incidents))
		slices.Sort(got)
		t.Logf("member %s incidents: %s", m.name, strings.Join(brief(unmerged(incs.Incidents)), "; "))
		if !slices.Equal(got, wantNames) {
			t.Errorf("member %s: incidents %q, replay %q", m.name, got, wantNames)
		}
	}
}

// compareMemberCalls logs each edge's calls in the replay and in each
// member's graph, and fails for each member edge that differs. An edge may
// lack as many calls as allowed names for its callee (hand-overs' boundary
// effect); a member whose last window ends before the replay's (it never
// closed it) may also lack that window's calls of the edge, the replay's
// "current". No edge may have more calls than the replay's: a call counted
// twice is a failure.
func compareMemberCalls(t *testing.T, want *graph.Snapshot, members []*member, snaps map[*member]*graph.Snapshot, allowed map[string]int64) {
	t.Helper()
	type row struct {
		target       string
		replay, last int64
		got          []int64
	}
	rows := map[string]*row{}
	key := func(e graph.EdgeView) string { return e.Source + " -> " + e.Target }
	get := func(e graph.EdgeView) *row {
		k := key(e)
		if rows[k] == nil {
			rows[k] = &row{target: e.Target, got: make([]int64, len(members))}
		}
		return rows[k]
	}
	for _, e := range want.Edges {
		r := get(e)
		r.replay += e.Total.Requests
		if e.Current != nil {
			r.last += e.Current.Requests
		}
	}
	for i, m := range members {
		if snaps[m].Truncated {
			t.Errorf("member %s: the API left nodes out of the graph (%d nodes, %d edges in all)", m.name, snaps[m].TotalNodes, snaps[m].TotalEdges)
		}
		for _, e := range snaps[m].Edges {
			get(e).got[i] += e.Total.Requests
		}
	}
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "edge\treplay\tlast window\t")
	for _, m := range members {
		fmt.Fprintf(tw, "member %s\t", m.name)
	}
	fmt.Fprintln(tw)
	sums := &row{got: make([]int64, len(members))}
	bad := make([][]string, len(members)) // per member, its edges out of bounds
	for _, k := range keys {
		r := rows[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t", k, r.replay, r.last)
		sums.replay += r.replay
		sums.last += r.last
		for i, m := range members {
			sums.got[i] += r.got[i]
			fmt.Fprintf(tw, "%d%s\t", r.got[i], diff(r.got[i]-r.replay))
			may := allowed[r.target]
			if snaps[m].WindowEnd.Before(want.WindowEnd) {
				may += r.last
			}
			if d := r.replay - r.got[i]; d < 0 || d > may {
				bad[i] = append(bad[i], fmt.Sprintf("%s %d%s (at most %d fewer)", k, r.got[i], diff(r.got[i]-r.replay), may))
			}
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "all %d edges\t%d\t%d\t", len(keys), sums.replay, sums.last)
	for i := range members {
		fmt.Fprintf(tw, "%d%s\t", sums.got[i], diff(sums.got[i]-sums.replay))
	}
	fmt.Fprintln(tw)
	tw.Flush()
	t.Logf("calls per edge, replay and members:\n%s", b.String())
	for i, m := range members {
		if len(bad[i]) > 0 {
			t.Errorf("member %s (graph to %s, replay's to %s): %d edges with other calls than the replay's:\n%s", m.name,
				snaps[m].WindowEnd.Format(time.TimeOnly), want.WindowEnd.Format(time.TimeOnly), len(bad[i]), strings.Join(bad[i], "\n"))
		}
	}
}

// diff is a difference worth showing beside a count: "" when none.
func diff(d int64) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf(" (%+d)", d)
}

// totalCalls is the calls of every edge of s, over every window.
func totalCalls(s *graph.Snapshot) int64 {
	var n int64
	for _, e := range s.Edges {
		n += e.Total.Requests
	}
	return n
}

// progress is how far a member has read, for the log.
func progress(api string) string {
	return fmt.Sprintf("%v partitions owned, %v windows published, %v spans read",
		scrapeOr(api, "causeway_fleet_partitions_owned"), scrapeOr(api, "causeway_fleet_windows_published_total"),
		scrapeOr(api, "causeway_spans_total"))
}

// fleetFigures are a member's fleet counters once idle, for the log.
func fleetFigures(api string) string {
	return fmt.Sprintf("%s; %v windows merged, %v repeated and %v late summaries dropped, %v spans too late (spans re-read behind a published watermark count here), %v spans re-keyed, %v re-keyed span messages skipped as repeats",
		progress(api), scrapeOr(api, "causeway_fleet_windows_merged_total"), scrapeOr(api, "causeway_fleet_repeated_summaries_total"),
		scrapeOr(api, "causeway_fleet_late_summaries_total"), scrapeSum(api, "causeway_graph_spans_too_late_total"),
		scrapeOr(api, "causeway_fleet_rekeyed_spans_total"), scrapeOr(api, "causeway_fleet_rekey_repeats_total"))
}

// scrapeSum is the sum of every series of a metric, whatever its labels
// (a member's graph metrics are per partition); 0 when it cannot be read.
func scrapeSum(addr, metric string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, metric)
		if !ok || rest == "" || rest[0] != ' ' && rest[0] != '{' {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// spanIndex keeps, of every span, what pairing it with its children
// needs.
type spanIndex struct {
	spans    map[[24]byte]spanLink // trace id and span id
	services map[string]string     // interned: decoded strings are reused
}

type spanLink struct {
	parent  span.ID
	service string
	end     int64
}

func newSpanIndex() *spanIndex {
	return &spanIndex{spans: map[[24]byte]spanLink{}, services: map[string]string{}}
}

func spanKey(trace span.TraceID, id span.ID) [24]byte {
	var k [24]byte
	copy(k[:16], trace[:])
	copy(k[16:], id[:])
	return k
}

func (x *spanIndex) add(sp *span.Span) {
	svc, ok := x.services[sp.Service]
	if !ok {
		svc = strings.Clone(sp.Service)
		x.services[svc] = svc
	}
	x.spans[spanKey(sp.TraceID, sp.SpanID)] = spanLink{parent: sp.ParentID, service: svc, end: sp.End}
}

// asyncCall is a call between two services whose callee span (the child)
// ends after its caller span (the parent), in the partition its trace is
// hashed to (by hex trace id, as the span and re-key topics are keyed).
type asyncCall struct {
	partition            int
	callerEnd, calleeEnd int64
	callee               string
}

func (x *spanIndex) asyncCalls() []asyncCall {
	var out []asyncCall
	hash := &kafka.Hash{}
	parts := make([]int, killPartitions)
	for i := range parts {
		parts[i] = i
	}
	for k, c := range x.spans {
		if c.parent == (span.ID{}) {
			continue
		}
		var trace span.TraceID
		copy(trace[:], k[:16])
		p, ok := x.spans[spanKey(trace, c.parent)]
		if !ok || p.service == c.service || p.end >= c.end {
			continue
		}
		partition := hash.Balance(kafka.Message{Key: []byte(trace.String())}, parts...)
		out = append(out, asyncCall{partition: partition, callerEnd: p.end, calleeEnd: c.end, callee: c.service})
	}
	return out
}

// handOver is a partition worker that started at a watermark published
// before it: after the kill, or after any rebalance.
type handOver struct {
	partition int
	at        time.Time
}

func (h handOver) String() string {
	return fmt.Sprintf("%d@%s", h.partition, h.at.Format(time.TimeOnly))
}

// handOvers lists, from the members' logs, every hand-over, each once.
func handOvers(t *testing.T, logs ...string) []handOver {
	t.Helper()
	re := regexp.MustCompile(`msg="partition worker started" .*\bpartition=(\d+) .*\bwatermark=(\S+)`)
	var out []handOver
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			p, err := strconv.Atoi(m[1])
			if err != nil {
				t.Fatalf("partition in %q: %v", m[0], err)
			}
			at, err := time.Parse(time.RFC3339Nano, m[2])
			if err != nil {
				t.Fatalf("watermark in %q: %v", m[0], err)
			}
			if h := (handOver{p, at.UTC()}); at.Unix() > 0 && !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	slices.SortFunc(out, func(a, b handOver) int { return cmp.Or(a.partition-b.partition, a.at.Compare(b.at)) })
	return out
}

// boundaryLosses counts, per callee, the async calls the hand-overs may
// lose: in the partition handed over, the caller span ended before the
// watermark (dropped as too late by the new owner, or not read again) and
// the callee span at or after it (its call filed in a window the new
// owner builds, without its caller).
func boundaryLosses(calls []asyncCall, hs []handOver) (map[string]int64, string) {
	out := map[string]int64{}
	for _, h := range hs {
		wm := h.at.UnixNano()
		for _, c := range calls {
			if c.partition == h.partition && c.callerEnd < wm && c.calleeEnd >= wm {
				out[c.callee]++
			}
		}
	}
	var s []string
	for _, k := range slices.Sorted(maps.Keys(out)) {
		s = append(s, fmt.Sprintf("%s %d", k, out[k]))
	}
	if len(s) == 0 {
		return out, "none"
	}
	return out, strings.Join(s, ", ")
}

// rekeyed is what the re-key topic holds: messages of spans (watermark
// records, which have no value, left out), how many of them repeat an
// earlier one byte for byte, and the spans of those repeats. where says,
// per span partition the repeats were read from, how many and where the
// first was written twice (re-key partition and offsets of both copies,
// against the partition's end offset): a copy soon after the first is a
// message re-read after a rebalance.
type rekeyed struct {
	written, twice, spans int
	where                 map[string]string
}

func (r rekeyed) String() string {
	s := fmt.Sprintf("%d messages of spans; %d written again (%d spans)", r.written, r.twice, r.spans)
	for _, k := range slices.Sorted(maps.Keys(r.where)) {
		s += "; " + r.where[k]
	}
	return s
}

// readRekeyed reads the whole re-key topic.
func readRekeyed(t *testing.T, bs []string, topic string) rekeyed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	out := rekeyed{where: map[string]string{}}
	count := map[string]int{}
	seen := map[uint64]int64{} // a copy's hash: the offset of the first
	h := fnv.New64a()
	for p := range killPartitions {
		conn, err := kafka.DialLeader(ctx, "tcp", bs[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		// A short MaxWait: Close waits for the fetch in flight.
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: bs, Topic: topic, Partition: p, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond,
			StartOffset: kafka.FirstOffset})
		for next := int64(0); next < last; {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read %s/%d: %v", topic, p, err)
			}
			next = m.Offset + 1
			if len(m.Value) == 0 {
				continue
			}
			out.written++
			h.Reset()
			h.Write(m.Value)
			k := h.Sum64()
			first, again := seen[k]
			if !again {
				seen[k] = m.Offset
				continue
			}
			out.twice++
			res, err := dec.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			out.spans += len(res.Spans)
			from := "span partition ?"
			for _, hd := range m.Headers {
				if hd.Key == "causeway.rekey.source" {
					from = "span partition " + string(hd.Value)
				}
			}
			if count[from]++; count[from] == 1 {
				out.where[from] = fmt.Sprintf("from %s: first at re-key %d/%d and %d/%d of %d", from, p, first, p, m.Offset, last)
			}
		}
		r.Close()
	}
	for k, n := range count {
		out.where[k] = fmt.Sprintf("%d messages %s", n, out.where[k])
	}
	return out
}
