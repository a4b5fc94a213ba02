package fleet

import (
	"context"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/collector/pdata/ptrace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/consume/otlp/otlptest"
	"github.com/causeway/causeway/internal/syncbuf"
	"github.com/causeway/causeway/internal/wait"
)

// TestSplitByTrace: every span lands in the re-key partition of its
// trace, with its own resource and scope, in both encodings; nothing is
// lost or added.
func TestSplitByTrace(t *testing.T) {
	req := otlptest.RealisticRequest(400, 7)
	want := map[string]int{}   // trace -> spans
	svc := map[string]string{} // span id -> service.name
	var newest uint64
	for _, rs := range req.ResourceSpans {
		name := serviceName(rs)
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				newest = max(newest, sp.EndTimeUnixNano)
				want[hex.EncodeToString(sp.TraceId)]++
				svc[hex.EncodeToString(sp.SpanId)] = name
			}
		}
	}
	if len(want) < 2 {
		t.Fatalf("fixture has %d traces", len(want))
	}
	pb, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(pb)
	if err != nil {
		t.Fatal(err)
	}
	js, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	const parts = 4
	bal := rekeyBalancer{&kafka.Hash{}}
	for enc, in := range map[consume.Encoding][]byte{consume.EncodingProto: pb, consume.EncodingJSON: js} {
		o := newRekeyOut(parts, 1<<30)
		end, full, err := o.add(0, 0, in, enc)
		if err != nil || full {
			t.Fatalf("%s: full %v, %v", enc, full, err)
		}
		if end != int64(newest) || end == 0 {
			t.Errorf("%s: latest span end %d, want %d", enc, end, newest)
		}
		got := map[string]int{}
		for _, m := range o.messages() {
			to := bal.Balance(m, allPartitions(parts)...)
			var r coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(m.Value, &r); err != nil {
				t.Fatal(err)
			}
			for _, rs := range r.ResourceSpans {
				name := serviceName(rs)
				for _, ss := range rs.ScopeSpans {
					for _, sp := range ss.Spans {
						id := hex.EncodeToString(sp.TraceId)
						got[id]++
						if p := bal.Balance(kafka.Message{Key: []byte(id)}, allPartitions(parts)...); p != to || svc[hex.EncodeToString(sp.SpanId)] != name {
							t.Errorf("%s: span %x of trace %s (partition %d) under %q in the request of partition %d", enc, sp.SpanId, id, p, name, to)
						}
					}
				}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d traces, want %d", enc, len(got), len(want))
		}
		for id, n := range want {
			if got[id] != n {
				t.Errorf("%s: trace %s has %d spans, want %d", enc, id, got[id], n)
			}
		}
	}
	if _, _, err := newRekeyOut(parts, 1<<30).add(0, 0, []byte("not otlp"), consume.EncodingProto); err == nil {
		t.Error("garbage split without error")
	}
}

func serviceName(rs *tracepb.ResourceSpans) string {
	for _, kv := range rs.Resource.Attributes {
		if kv.Key == "service.name" {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// TestRekeyHeaders: a watermark record goes to the re-key partition it
// names, a trace by its id's hash; a worker reads back the span partition
// and watermark a message carries, and counts a message naming none under
// no span partition.
func TestRekeyHeaders(t *testing.T) {
	bal := rekeyBalancer{&kafka.Hash{}}
	parts := []int{0, 1, 2, 3}
	for p := range parts {
		m := kafka.Message{Headers: []kafka.Header{{Key: headerRekeySource, Value: []byte("5")}, {Key: headerRekeyTo, Value: []byte(strconv.Itoa(p))}}}
		if got := bal.Balance(m, parts...); got != p {
			t.Errorf("watermark record for partition %d sent to %d", p, got)
		}
	}
	trace := kafka.Message{Key: []byte("4bf92f3577b34da6a3ce929d0e0e4736")}
	if a, b := bal.Balance(trace, parts...), bal.Balance(trace, parts...); a != b {
		t.Errorf("one trace sent to partitions %d and %d", a, b)
	}

	var b consume.Batch
	rekeyedFrom(&b, []kafka.Header{{Key: headerRekeySource, Value: []byte("5")}, {Key: headerRekeyWatermark, Value: []byte("1700000000000000000")}})
	if !b.Rekeyed || b.EventSource() != 5 || b.SourceAt != 1_700_000_000_000_000_000 {
		t.Errorf("read back %+v", b)
	}
	b = consume.Batch{Partition: 2}
	rekeyedFrom(&b, nil)
	if b.EventSource() != -1 || b.SourceAt != 0 {
		t.Errorf("a message naming no span partition counts under %d (watermark %d)", b.EventSource(), b.SourceAt)
	}
}

// rekeyFixture is n span messages of realistic traffic, as OTLP protobuf.
func rekeyFixture(t *testing.T, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range n {
		b, err := proto.Marshal(otlptest.RealisticRequest(120, int64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// rekeyWrite is what the re-key stage writes for span messages msgs read
// from span partition from, starting at offset first, in batches of
// batch messages, into parts re-key partitions (bounded to max bytes).
func rekeyWrite(t *testing.T, msgs [][]byte, from int, first int64, batch, parts, max int) [][]kafka.Message {
	t.Helper()
	o := newRekeyOut(parts, max)
	var written [][]kafka.Message
	// What is written, copied: the next batch reuses the memory.
	take := func() []kafka.Message {
		var out []kafka.Message
		for _, m := range o.messages() {
			m.Value = slices.Clone(m.Value)
			m.Headers = slices.Clone(m.Headers)
			for i := range m.Headers {
				m.Headers[i].Value = slices.Clone(m.Headers[i].Value)
			}
			out = append(out, m)
		}
		return out
	}
	for i, m := range msgs {
		_, full, err := o.add(from, first+int64(i), m, consume.EncodingProto)
		if full {
			written = append(written, take())
			o.reset()
			_, full, err = o.add(from, first+int64(i), m, consume.EncodingProto)
			if full {
				t.Fatal("a message full with nothing held")
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if (i+1)%batch == 0 || i == len(msgs)-1 {
			written = append(written, take())
			o.reset()
		}
	}
	return written
}

// TestRekeyOut: a batch's spans go out as one message per span partition
// and re-key partition, each span to the partition of its trace id's
// hash, under its own resource (each resource once per segment), with one
// segment per span message whose lengths cover the value; nothing is lost
// or added, and no message passes the bound but by a single segment.
func TestRekeyOut(t *testing.T) {
	msgs := rekeyFixture(t, 6)
	want := 0
	svc := map[string]string{} // span id -> service.name
	for _, m := range msgs {
		var r coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(m, &r); err != nil {
			t.Fatal(err)
		}
		want += countSpans(&r)
		for _, rs := range r.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					svc[hex.EncodeToString(sp.SpanId)] = serviceName(rs)
				}
			}
		}
	}
	const parts, bound = 4, 10 << 10
	bal := rekeyBalancer{&kafka.Hash{}}
	got := 0
	writes := rekeyWrite(t, msgs, 2, 100, 3, parts, bound)
	if len(writes) <= 2 {
		t.Errorf("%d writes for two batches: the bound never split one", len(writes))
	}
	for _, batch := range writes {
		seen := map[int]bool{}
		for _, m := range batch {
			to := bal.Balance(m, 0, 1, 2, 3)
			if seen[to] {
				t.Errorf("two messages for re-key partition %d in one write", to)
			}
			seen[to] = true
			var segs []byte
			for _, h := range m.Headers {
				if h.Key == headerRekeySegments {
					segs = h.Value
				}
			}
			skip, repeats, next, err := applied(segs, 0, false)
			if err != nil || skip != 0 || repeats != 0 || next < 100 || next > 105 {
				t.Errorf("segments %q: skip %d, repeats %d, last %d, %v", segs, skip, repeats, next, err)
			}
			total := 0
			for _, seg := range strings.Split(string(segs), ",") {
				l, _ := strconv.Atoi(seg[strings.IndexByte(seg, ':')+1:])
				total += l
			}
			if total != len(m.Value) {
				t.Errorf("segments %q cover %d bytes of %d", segs, total, len(m.Value))
			}
			if len(m.Value) > bound && strings.Contains(string(segs), ",") {
				t.Errorf("a message of %d bytes, %d segments, passes the bound %d", len(m.Value), strings.Count(string(segs), ",")+1, bound)
			}
			var r coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(m.Value, &r); err != nil {
				t.Fatal(err)
			}
			resources := map[string]int{}
			for _, rs := range r.ResourceSpans {
				resources[rs.Resource.String()]++
				for _, ss := range rs.ScopeSpans {
					for _, sp := range ss.Spans {
						got++
						key := kafka.Message{Key: []byte(hex.EncodeToString(sp.TraceId))}
						if p := bal.Balance(key, 0, 1, 2, 3); p != to {
							t.Errorf("span of trace %x in re-key partition %d, its id hashes to %d", sp.TraceId, to, p)
						}
						if name := serviceName(rs); name != svc[hex.EncodeToString(sp.SpanId)] {
							t.Errorf("span %x under %q, sent under %q", sp.SpanId, name, svc[hex.EncodeToString(sp.SpanId)])
						}
					}
				}
			}
			segments := strings.Count(string(segs), ",") + 1
			for res, k := range resources {
				if k > segments {
					t.Errorf("resource %.60s... %d times in a message of %d segments", res, k, segments)
				}
			}
		}
	}
	if got != want {
		t.Errorf("%d spans re-keyed, want %d", got, want)
	}
}

func countSpans(r *coltracepb.ExportTraceServiceRequest) int {
	n := 0
	for _, rs := range r.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n
}

// TestRekeyRepeatsSkipped: the re-key stage writes span messages 0-7 of a
// span partition; a member taking over re-reads it from offset 3, in
// batches of other bounds, and a failed write is written again whole.
// Every re-key partition's worker applies each span message's traces
// exactly once and counts the repeats.
func TestRekeyRepeatsSkipped(t *testing.T) {
	msgs := rekeyFixture(t, 8)
	const parts = 3
	first := rekeyWrite(t, msgs[:6], 1, 0, 2, parts, 1<<20) // the owner wrote 0-5 ...
	retried := first[len(first)-1]                          // ... its last write twice ...
	again := rekeyWrite(t, msgs[3:], 1, 3, 3, parts, 1<<20) // ... and its successor re-read from 3
	var stream []kafka.Message
	for _, w := range append(append(first, retried), again...) {
		stream = append(stream, w...)
	}
	want := 0
	for _, m := range msgs {
		var r coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(m, &r); err != nil {
			t.Fatal(err)
		}
		want += countSpans(&r)
	}

	bal := rekeyBalancer{&kafka.Hash{}}
	got, repeats := 0, 0.0
	for p := range parts {
		n := &Node{m: newMetrics(nil)}
		s := &partitionSource{n: n, topic: "rekey", partition: p, applied: map[int]int64{}, log: slog.New(slog.DiscardHandler)}
		for _, m := range stream {
			if bal.Balance(m, 0, 1, 2) != p {
				continue
			}
			var r coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(s.unapplied(m), &r); err != nil {
				t.Fatal(err)
			}
			got += countSpans(&r)
		}
		repeats += testutil.ToFloat64(n.m.repeats)
		if e := testutil.ToFloat64(n.m.errors.WithLabelValues("rekey")); e != 0 {
			t.Errorf("partition %d: %v errors", p, e)
		}
	}
	if got != want {
		t.Errorf("%d spans applied, want %d once each", got, want)
	}
	if repeats == 0 {
		t.Error("no repeat counted")
	}
	t.Logf("%d spans applied once, %v repeated segments skipped", got, repeats)
}

// TestSegmentsApplied: the segments header read against the last offset
// applied from its span partition.
func TestSegmentsApplied(t *testing.T) {
	for _, c := range []struct {
		segs          string
		last          int64
		known         bool
		skip, repeats int
		next          int64
		err           bool
	}{
		{segs: "5:10,6:20", last: 0, known: false, next: 6},
		{segs: "5:10,6:20", last: 4, known: true, next: 6},
		{segs: "5:10,6:20", last: 5, known: true, skip: 10, repeats: 1, next: 6},
		{segs: "5:10,6:20", last: 9, known: true, skip: 30, repeats: 2, next: 9},
		{segs: "0:7", last: 0, known: true, skip: 7, repeats: 1, next: 0},
		{segs: "0:7", last: 0, known: false, next: 0},
		{segs: "6:1,5:1", err: true},
		{segs: "5:1,5:1", err: true},
		{segs: "5", err: true},
		{segs: "x:1", err: true},
		{segs: "5:-1", err: true},
	} {
		skip, repeats, next, err := applied([]byte(c.segs), c.last, c.known)
		if (err != nil) != c.err || err == nil && (skip != c.skip || repeats != c.repeats || next != c.next) {
			t.Errorf("%q after %d (%v): skip %d, repeats %d, next %d, err %v; want %d, %d, %d, err %v",
				c.segs, c.last, c.known, skip, repeats, next, err, c.skip, c.repeats, c.next, c.err)
		}
	}
}

// TestTracePartitionMatchesHash: the splitter puts a trace in the re-key
// partition kafka-go's Hash balancer gives a message keyed by its hex id,
// as members that wrote a message per trace did.
func TestTracePartitionMatchesHash(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	bal := &kafka.Hash{}
	for i := range 2000 {
		id := make([]byte, 16)
		for j := range id {
			id[j] = byte(r.Uint32())
		}
		if i == 0 {
			id = nil // a span without a trace id
		}
		n := 1 + r.IntN(64)
		parts := make([]int, n)
		for p := range parts {
			parts[p] = p
		}
		if got, want := tracePartition(id, n), bal.Balance(kafka.Message{Key: []byte(hex.EncodeToString(id))}, parts...); got != want {
			t.Fatalf("trace %x of %d partitions: %d, kafka.Hash %d", id, n, got, want)
		}
	}
}

// TestRekeyTooLargeDropped: a re-key topic that takes smaller messages
// than the span reader (an operator's, or an older member's) is found at
// start and said once; a re-keyed part of a span message larger than it
// takes is dropped and its spans counted, and the stage goes on with the
// span messages after it instead of retrying that write for ever.
func TestRekeyTooLargeDropped(t *testing.T) {
	c := inProcessBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Timeout: 10 * time.Second}
	const limit = 64 << 10
	if _, err := admin.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: "rekey", NumPartitions: 2, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(limit)}}}}}); err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	small, big := 0, 0
	for i := range 7 {
		n := 20
		if i == 3 {
			n = 2000 // each of its two parts well over the limit
		}
		b, err := proto.Marshal(otlptest.RealisticRequest(n, int64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			big += n
			if len(b) < 3*limit {
				t.Fatalf("the large span message is only %d bytes", len(b))
			}
		} else {
			small += n
		}
		msgs = append(msgs, b)
	}
	in := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...), Topic: "spans", BatchTimeout: time.Millisecond, BatchBytes: 16 << 20,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 })}
	defer in.Close()
	for _, b := range msgs { // one by one, in order
		if err := in.WriteMessages(ctx, kafka.Message{Value: b}); err != nil {
			t.Fatal(err)
		}
	}

	var logs syncbuf.Buffer
	keyed := false
	n, err := New(Config{Enabled: true, WindowsTopic: "windows", LeaderTopic: "leader", RekeyTopic: "rekey", Member: "m"},
		Options{Kafka: consume.Config{Brokers: c.ListenAddrs(), Topic: "spans", GroupID: "g", TraceKeyed: &keyed},
			Registerer: prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		if t.Failed() {
			t.Logf("re-keyed %v, dropped %v; the log:\n%s", testutil.ToFloat64(n.m.rekeyed), testutil.ToFloat64(n.m.dropped), logs.String())
		}
	}()
	wait.For(t, 45*time.Second, 20*time.Millisecond, "every span re-keyed or counted as dropped", func() bool {
		return testutil.ToFloat64(n.m.rekeyed)+testutil.ToFloat64(n.m.dropped) >= float64(small+big)
	})
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(n.m.rekeyed); got != float64(small) {
		t.Errorf("%v spans re-keyed, want the small messages' %d", got, small)
	}
	if got := testutil.ToFloat64(n.m.dropped); got != float64(big) {
		t.Errorf("%v spans counted as dropped, want the large message's %d", got, big)
	}
	out := logs.String()
	for _, want := range []string{"the re-key topic takes smaller messages than the span reader", "re-key: a part of a span message is larger than the re-key topic takes"} {
		if strings.Count(out, want) != 1 {
			t.Errorf("log says %q %d times, want once:\n%s", want, strings.Count(out, want), out)
		}
	}
}

// A re-keyed message taken apart gives one message per segment, whose
// values are the segments in order and whose headers name that segment
// alone.
func TestSegmentMessages(t *testing.T) {
	m := kafka.Message{Value: []byte("aaabbbbc"), Headers: []kafka.Header{{Key: headerRekeySource, Value: []byte("1")},
		{Key: headerRekeySegments, Value: []byte("10:3,11:4,14:1")}, {Key: headerRekeyTo, Value: []byte("0")}}}
	got := segmentMessages(m)
	want := []struct{ value, seg string }{{"aaa", "10:3"}, {"bbbb", "11:4"}, {"c", "14:1"}}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i, g := range got {
		var seg, src, to string
		for _, h := range g.Headers {
			switch h.Key {
			case headerRekeySegments:
				seg = string(h.Value)
			case headerRekeySource:
				src = string(h.Value)
			case headerRekeyTo:
				to = string(h.Value)
			}
		}
		if string(g.Value) != want[i].value || seg != want[i].seg || src != "1" || to != "0" {
			t.Errorf("message %d: value %q segments %q source %q to %q", i, g.Value, seg, src, to)
		}
	}
	if bad := segmentMessages(kafka.Message{Value: []byte("ab"), Headers: []kafka.Header{{Key: headerRekeySegments, Value: []byte("1:5")}}}); len(bad) != 1 {
		t.Errorf("a segments header past the value split into %d", len(bad))
	}
}
