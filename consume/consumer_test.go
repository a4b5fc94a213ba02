package consume

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/span"
)

// testEpoch keeps test spans inside span.Limits and away from the wall clock.
var testEpoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// request builds one trace of n spans from service svc (no service.name
// when svc is ""), as an SDK would export it.
func request(trace byte, svc string, n int) *coltracepb.ExportTraceServiceRequest {
	var attrs []*commonpb.KeyValue
	if svc != "" {
		attrs = append(attrs, &commonpb.KeyValue{Key: "service.name",
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: svc}}})
	}
	tid := make([]byte, 16)
	tid[0] = trace
	var spans []*tracepb.Span
	for i := range n {
		sid := []byte{trace, byte(i + 1), 0, 0, 0, 0, 0, 1}
		var parent []byte
		if i > 0 {
			parent = []byte{trace, 1, 0, 0, 0, 0, 0, 1}
		}
		start := uint64(testEpoch.UnixNano()) + uint64(i)*1e6
		spans = append(spans, &tracepb.Span{TraceId: tid, SpanId: sid, ParentSpanId: parent,
			Name: fmt.Sprintf("op%d", i), Kind: tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: start, EndTimeUnixNano: start + 5e5})
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: attrs},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
}

func marshal(t testing.TB, req *coltracepb.ExportTraceServiceRequest) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newCluster(t *testing.T, partitions int32) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, DefaultTopic, "otlp_spans_dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func produce(t *testing.T, brokers []string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: DefaultTopic, Balancer: &kafka.Hash{},
		Transport: &kafka.Transport{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// consumeN runs a consumer in group until it has seen n messages, marking
// the first done of them applied, and returns the spans of all n.
func consumeN(t *testing.T, cfg Config, m *Metrics, n, done int) []span.Span {
	t.Helper()
	c, err := New(cfg, quietLog(), m, func() time.Time { return testEpoch })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var spans []span.Span
	for i := 0; i < n; i++ {
		select {
		case b := <-c.Batches():
			spans = append(spans, b.Spans...)
			if i < done {
				if err := c.Commit(ctx, 1, b.Position()); err != nil {
					t.Fatal(err)
				}
				c.Release(b)
			}
		case <-ctx.Done():
			t.Fatalf("saw %d of %d messages before the deadline", i, n)
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}
	return spans
}

func TestConsumerSkipsBadInputAndCommitsApplied(t *testing.T) {
	brokers := newCluster(t, 3)
	good := marshal(t, request(1, "cartservice", 3))
	truncated := good[:len(good)-5]
	noService := marshal(t, request(2, "", 2))
	produce(t, brokers,
		kafka.Message{Key: []byte("01"), Value: good},
		kafka.Message{Key: []byte("02"), Value: []byte("this is not protobuf \xff\xff\xff")},
		kafka.Message{Key: []byte("03"), Value: truncated},
		kafka.Message{Key: []byte("04"), Value: noService},
		kafka.Message{Key: []byte("05"), Value: marshal(t, request(5, "frontend", 4))},
	)
	m := NewMetrics(nil)
	cfg := Config{Brokers: brokers, CommitInterval: 10 * time.Millisecond}
	spans := consumeN(t, cfg, m, 5, 5)
	if len(spans) != 7 {
		t.Fatalf("got %d spans, want 7 (3 cartservice + 4 frontend)", len(spans))
	}
	for reason, want := range map[span.Reason]float64{span.ReasonNotProtobuf: 1, span.ReasonTruncated: 1} {
		if got := testutil.ToFloat64(m.Errors.WithLabelValues(string(reason))); got != want {
			t.Errorf("errors{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	if got := testutil.ToFloat64(m.Rejected.WithLabelValues(string(span.ReasonNoService))); got != 2 {
		t.Errorf("rejected{no_service_name} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.Commits); got != 5 {
		t.Errorf("commits = %v, want 5", got)
	}

	// Everything was committed: a new member of the group sees only what
	// is produced after.
	produce(t, brokers, kafka.Message{Key: []byte("06"), Value: marshal(t, request(6, "adservice", 1))})
	spans = consumeN(t, cfg, NewMetrics(nil), 1, 1)
	if len(spans) != 1 || spans[0].Service != "adservice" {
		t.Fatalf("after restart got %v, want the one adservice span", spans)
	}
}

func TestConsumerRedeliversUnapplied(t *testing.T) {
	brokers := newCluster(t, 1)
	var msgs []kafka.Message
	for i := range 4 {
		msgs = append(msgs, kafka.Message{Value: marshal(t, request(byte(i+1), fmt.Sprintf("svc%d", i), 1))})
	}
	produce(t, brokers, msgs...)
	cfg := Config{Brokers: brokers, CommitInterval: 10 * time.Millisecond}
	// Apply only the first two, then stop: the other two were never applied.
	consumeN(t, cfg, NewMetrics(nil), 4, 2)
	spans := consumeN(t, cfg, NewMetrics(nil), 2, 2)
	if spans[0].Service != "svc2" || spans[1].Service != "svc3" {
		t.Fatalf("redelivered %s, %s; want svc2, svc3", spans[0].Service, spans[1].Service)
	}
}

func TestConsumerJSONAndDeadLetter(t *testing.T) {
	brokers := newCluster(t, 1)
	good := []byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},` +
		`"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",` +
		`"name":"PlaceOrder","kind":2,"startTimeUnixNano":"` + fmt.Sprint(testEpoch.UnixNano()) +
		`","endTimeUnixNano":"` + fmt.Sprint(testEpoch.UnixNano()+2e6) + `","status":{"code":2}}]}]}]}`)
	produce(t, brokers,
		kafka.Message{Key: []byte("5b8efff798038103d269b633813fc60c"), Value: good},
		kafka.Message{Value: []byte(`{"resourceSpans":[{"resource":`)},
	)
	m := NewMetrics(nil)
	cfg := Config{Brokers: brokers, Encoding: EncodingJSON, DeadLetterTopic: "otlp_spans_dlq", CommitInterval: 10 * time.Millisecond}
	spans := consumeN(t, cfg, m, 2, 2)
	if len(spans) != 1 {
		t.Fatalf("got %d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Service != "checkout" || s.TraceID.String() != "5b8efff798038103d269b633813fc60c" || s.Status != span.StatusError || s.Kind != span.KindServer {
		t.Fatalf("decoded %+v", s)
	}
	if got := testutil.ToFloat64(m.Errors.WithLabelValues(string(span.ReasonBadJSON))); got != 1 {
		t.Errorf("errors{bad_json} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.DeadLetter.WithLabelValues("ok")); got != 1 {
		t.Fatalf("dead letters ok = %v, want 1", got)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "otlp_spans_dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dl, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{}
	for _, h := range dl.Headers {
		headers[h.Key] = string(h.Value)
	}
	if headers["causeway.reason"] != "bad_json" || headers["causeway.source.offset"] != "1" || string(dl.Value) != `{"resourceSpans":[{"resource":` {
		t.Fatalf("dead letter %q with headers %v", dl.Value, headers)
	}
}

func TestConfigValidateNamesField(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "kafka.brokers"},
		{Config{Brokers: []string{"localhost"}}, "kafka.brokers"},
		{Config{Brokers: []string{"h:1"}, Encoding: "otlp_xml"}, "kafka.encoding"},
		{Config{Brokers: []string{"h:1"}, SASL: SASLConfig{Mechanism: "GSSAPI"}}, "kafka.sasl.mechanism"},
		{Config{Brokers: []string{"h:1"}, SASL: SASLConfig{Mechanism: "SCRAM-SHA-512"}}, "kafka.sasl.username"},
		{Config{Brokers: []string{"h:1"}, TLS: TLSConfig{CertFile: "c.pem"}}, "kafka.tls"},
		{Config{Brokers: []string{"h:1"}, StartAt: "middle"}, "kafka.start_at"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{Brokers: []string{"127.0.0.1:9092"}}).WithDefaults().Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

// TestResumedAfterErrors: messages returning after a gap during which the
// client reported errors are logged as a recovery; a quiet topic's next
// message, or a short gap, is not.
func TestResumedAfterErrors(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var c Consumer
	if c.resumed(now.Add(-time.Minute), now) {
		t.Error("a quiet gap without errors counted as a recovery")
	}
	c.troubled.ns.Store(now.Add(-30 * time.Second).UnixNano())
	if !c.resumed(now.Add(-time.Minute), now) {
		t.Error("a minute without messages, with errors in it, is not a recovery")
	}
	if c.resumed(now.Add(-time.Second), now) {
		t.Error("a one-second gap counted as a recovery")
	}
	if c.resumed(now.Add(-20*time.Second), now) {
		t.Error("errors before the last message counted for the gap after it")
	}
}

// TestLagUnknownWhileKafkaFails: the lag is exported as last reported
// until the Kafka client reports an error; from then on (a broker away:
// the true lag grows unseen) it is absent, not a stale value, until the
// next message reports it again.
func TestLagUnknownWhileKafkaFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	exported := func() (float64, bool) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "causeway_consume_lag_messages" {
				return mf.GetMetric()[0].GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	if v, ok := exported(); !ok || v != 0 {
		t.Errorf("before any message: %v, %v; want 0", v, ok)
	}
	m.Lag.Set(12)
	if v, ok := exported(); !ok || v != 12 {
		t.Errorf("after a report of 12: %v, %v", v, ok)
	}
	m.KafkaError()
	if v, ok := exported(); ok {
		t.Errorf("after a client error: %v exported, want none", v)
	}
	if n := testutil.ToFloat64(m.KafkaErrors); n != 1 {
		t.Errorf("kafka errors counted: %v, want 1", n)
	}
	m.Lag.Set(3)
	if v, ok := exported(); !ok || v != 3 {
		t.Errorf("after the next report: %v, %v", v, ok)
	}
}
