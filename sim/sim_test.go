package sim

import (
	"bytes"
	"encoding/hex"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/causeway/causeway/span"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

func TestDeterministic(t *testing.T) {
	faulty := Default()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"zero config", Config{}},
		{"default scenario", faulty},
		{"batches", Config{Seed: 7, MaxBatchSpans: 50, Faults: []Fault{{Kind: DeadInstance, Target: "cartservice"}}}},
		{"by trace", Config{Seed: 7, ByTrace: true, Rate: 200}},
		{"batch job", Config{Seed: 7, ByTrace: true, Batch: &BatchJob{Every: 5 * time.Second, Duration: 2 * time.Second, Offset: time.Second, Rate: 100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := New(tt.cfg)
			other := tt.cfg
			other.Seed++
			c, _ := New(other)
			same, diff := 0, 0
			for step := range 60 {
				d := time.Duration(step%3+1) * 100 * time.Millisecond
				ma, mb, mc := a.Messages(d), b.Messages(d), c.Messages(d)
				if len(ma) != len(mb) {
					t.Fatalf("step %d: %d vs %d messages", step, len(ma), len(mb))
				}
				for i := range ma {
					if !bytes.Equal(ma[i].Key, mb[i].Key) || !bytes.Equal(ma[i].Value, mb[i].Value) || !ma[i].Time.Equal(mb[i].Time) {
						t.Fatalf("step %d message %d differs between runs of one config", step, i)
					}
					same++
				}
				if len(ma) != len(mc) || (len(ma) > 0 && !bytes.Equal(ma[0].Value, mc[0].Value)) {
					diff++
				}
			}
			if same == 0 {
				t.Fatal("no messages")
			}
			if diff == 0 {
				t.Error("another seed gave the same output")
			}
		})
	}
}

// TestStepMatchesMessages checks the hand-written encoder against
// proto.Marshal of the structs Step returns, byte for byte.
func TestStepMatchesMessages(t *testing.T) {
	faults := []Fault{
		{Kind: Errors, Target: "checkoutservice", Fraction: 0.5},
		{Kind: DeadInstance, Target: "redis-cart", Fraction: 0.2},
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"faults", Config{Seed: 3, MaxBatchSpans: 1 << 30, Faults: faults}},
		{"batch job", Config{Seed: 3, MaxBatchSpans: 1 << 30, Faults: faults,
			Batch: &BatchJob{Every: 4 * time.Second, Duration: 2 * time.Second, Rate: 50}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := New(tt.cfg)
			b, _ := New(tt.cfg)
			for step := range 20 {
				td := a.Step(500 * time.Millisecond)
				msgs := b.Messages(500 * time.Millisecond)
				if len(msgs) != 1 {
					t.Fatalf("step %d: %d messages, want 1", step, len(msgs))
				}
				want, err := proto.Marshal(td)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(msgs[0].Value, want) {
					t.Fatalf("step %d: encoded message differs from proto.Marshal (%d vs %d bytes)", step, len(msgs[0].Value), len(want))
				}
			}
		})
	}
}

func TestTraceStructure(t *testing.T) {
	r := simulate(t, Config{Seed: 11, Steady: true}, time.Minute, 5*time.Second)
	if len(r.traces) < 2700 {
		t.Fatalf("only %d traces in a minute at 50/s", len(r.traces))
	}
	var limits span.Limits
	for _, tr := range r.traces {
		if tr.root.Service != "frontend" || tr.root.Kind != span.KindServer {
			t.Fatalf("root %s %s %s, want a frontend server span", tr.root.Service, tr.root.Kind, tr.root.Name)
		}
		for _, p := range tr.spans {
			if reason := limits.Check(&p.Span); reason != "" {
				t.Fatalf("span %s rejected: %s", p.Name, reason)
			}
			if p == tr.root {
				continue
			}
			parent := tr.byID[p.ParentID]
			if parent == nil {
				t.Fatalf("span %s %s: parent %s missing from trace", p.Service, p.Name, p.ParentID)
			}
			switch p.Kind {
			case span.KindConsumer:
				if parent.Kind != span.KindProducer || parent.Service == p.Service || p.Start < parent.End {
					t.Fatalf("consumer %s: parent %s %s %s, want an earlier producer elsewhere", p.Name, parent.Service, parent.Kind, parent.Name)
				}
				continue
			case span.KindServer:
				if parent.Kind != span.KindClient || parent.Service == p.Service || parent.Name != p.Name {
					t.Fatalf("server %s: parent %s %s %s, want its client elsewhere", p.Name, parent.Service, parent.Kind, parent.Name)
				}
				if gap := (parent.Duration() - p.Duration()) / 1000; p.Start <= parent.Start || p.End >= parent.End || gap > 2000 {
					t.Fatalf("server %s not strictly inside its client with a sub-ms gap (gap %d µs)", p.Name, gap)
				}
			default:
				if parent.Service != p.Service {
					t.Fatalf("%s span %s in %s has a parent in %s", p.Kind, p.Name, p.Service, parent.Service)
				}
			}
			if p.Start < parent.Start || p.End > parent.End {
				t.Fatalf("%s %s [%d, %d] outside parent %s [%d, %d]", p.Service, p.Name, p.Start, p.End, parent.Name, parent.Start, parent.End)
			}
			if p.Kind == span.KindClient && len(tr.kids[p.SpanID]) == 0 && p.ServerAddress == "" {
				t.Fatalf("client %s in %s has neither a server span nor server.address", p.Name, p.Service)
			}
		}
	}
}

// TestSelfTime checks that a span covers its children plus some self time
// and that parallel children overlap.
func TestSelfTime(t *testing.T) {
	r := simulate(t, Config{Seed: 5}, 30*time.Second, 5*time.Second)
	overlaps := 0
	for _, tr := range r.traces {
		for _, p := range tr.spans {
			var kids []*sp
			for _, k := range tr.kids[p.SpanID] {
				if k.Kind != span.KindConsumer {
					kids = append(kids, k)
				}
			}
			if len(kids) == 0 || p.Kind == span.KindClient {
				continue
			}
			slices.SortFunc(kids, func(a, b *sp) int { return int(a.Start - b.Start) })
			var covered, reach int64 = 0, p.Start
			for _, k := range kids {
				if k.Start < reach && k != kids[0] {
					overlaps++
				}
				start := max(k.Start, reach)
				if k.End > start {
					covered += k.End - start
				}
				reach = max(reach, k.End)
			}
			if self := p.Duration() - covered; self <= 0 {
				t.Fatalf("%s %s: children cover %d of %d ns, no self time", p.Service, p.Name, covered, p.Duration())
			}
		}
	}
	if overlaps == 0 {
		t.Error("no parallel calls found")
	}
}

func TestEdges(t *testing.T) {
	r := simulate(t, Config{Seed: 2, Rate: 100}, time.Minute, 5*time.Second)
	found := map[Edge]int{}
	for _, tr := range r.traces {
		for _, p := range tr.spans {
			parent := tr.byID[p.ParentID]
			switch {
			case parent != nil && parent.Service != p.Service && p.Kind == span.KindConsumer:
				found[Edge{parent.Service, p.Service, parent.MessagingSystem}]++
			case parent != nil && parent.Service != p.Service:
				found[Edge{parent.Service, p.Service, "grpc"}]++
			case p.Kind == span.KindClient && p.DBSystem != "":
				found[Edge{p.Service, p.ServerAddress, p.DBSystem}]++
			case p.Kind == span.KindClient && len(tr.kids[p.SpanID]) == 0:
				found[Edge{p.Service, p.ServerAddress, "http"}]++
			}
		}
	}
	for _, want := range []Edge{
		{"frontend", "cartservice", "grpc"},
		{"cartservice", "redis-cart", "redis"},
		{"productcatalogservice", "catalog-db", "postgresql"},
		{"checkoutservice", "fulfillmentservice", "kafka"},
		{"paymentservice", "api.payments.example", "http"},
		{"recommendationservice", "productcatalogservice", "grpc"},
	} {
		if found[want] == 0 {
			t.Errorf("edge %v never seen", want)
		}
	}
	var got []Edge
	for e := range found {
		got = append(got, e)
	}
	slices.SortFunc(got, func(a, b Edge) int { return cmpEdge(a, b) })
	if want := Edges(); !slices.Equal(got, want) {
		t.Errorf("edges seen:\n%v\nEdges():\n%v", got, want)
	}
	// The brief's topology, in full.
	callees := map[string][]string{}
	for _, e := range Edges() {
		callees[e.From] = append(callees[e.From], e.To)
	}
	for from, want := range map[string][]string{
		"frontend":        {"adservice", "cartservice", "checkoutservice", "currencyservice", "productcatalogservice", "recommendationservice", "shippingservice"},
		"checkoutservice": {"cartservice", "currencyservice", "emailservice", "fulfillmentservice", "paymentservice", "productcatalogservice", "shippingservice"},
	} {
		if !slices.Equal(callees[from], want) {
			t.Errorf("%s calls %v, want %v", from, callees[from], want)
		}
	}
}

func cmpEdge(a, b Edge) int {
	for _, c := range [][2]string{{a.From, b.From}, {a.To, b.To}, {a.Via, b.Via}} {
		if c[0] != c[1] {
			if c[0] < c[1] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func TestAttributes(t *testing.T) {
	r := simulate(t, Config{Seed: 4}, 20*time.Second, 5*time.Second)
	seen := map[string]bool{}
	for _, p := range r.spans {
		check := func(key string, want any) {
			t.Helper()
			if got, ok := p.Attrs[key]; !ok || (want != nil && got != want) {
				t.Fatalf("%s %s %s: %s = %v, want %v", p.Service, p.Kind, p.Name, key, got, want)
			}
		}
		switch {
		case p.GRPCStatus >= 0:
			seen["grpc"] = true
			check("rpc.system", "grpc")
			check("rpc.service", nil)
			check("rpc.method", nil)
		case p.Kind == span.KindServer:
			seen["http server"] = true
			check("http.request.method", nil)
			check("http.route", nil)
			check("http.response.status_code", nil)
		case p.DBSystem == "redis":
			seen["redis"] = true
			check("server.address", "redis-cart")
		case p.DBSystem == "postgresql":
			seen["postgresql"] = true
			check("db.namespace", "catalog")
			check("server.address", "catalog-db")
		case p.Kind == span.KindProducer || p.Kind == span.KindConsumer:
			seen[p.Kind.String()] = true
			check("messaging.system", "kafka")
			check("messaging.destination.name", "orders")
		case p.Kind == span.KindClient:
			seen["external"] = true
			check("server.address", "api.payments.example")
			check("http.request.method", "POST")
		default:
			seen["internal"] = true
			if p.Kind != span.KindInternal {
				t.Fatalf("unexpected span %s %s %s", p.Service, p.Kind, p.Name)
			}
		}
		if p.Instance == "" {
			t.Fatalf("span %s without service.instance.id", p.Name)
		}
	}
	if len(seen) != 8 {
		t.Errorf("span families seen: %v", seen)
	}
}

// TestLatencyRealism checks medians and tails of a few operations.
func TestLatencyRealism(t *testing.T) {
	r := simulate(t, Config{Seed: 8, Steady: true}, time.Minute, 5*time.Second)
	tests := []struct {
		name           string
		match          func(p *sp) bool
		p50min, p50max float64 // ms
	}{
		{"redis", client("cartservice", "redis-cart"), 0.2, 0.45},
		{"postgres", client("productcatalogservice", "catalog-db"), 1.2, 5},
		{"currency convert", server("currencyservice", "hipstershop.CurrencyService/Convert"), 0.3, 0.7},
		{"cart", server("cartservice", "hipstershop.CartService/GetCart"), 0.7, 1.5},
		{"product page", server("frontend", "GET /product/{id}"), 8, 30},
		{"payment", server("paymentservice", ""), 15, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := r.durations(tt.match)
			p50, p99 := quantile(d, 0.5), quantile(d, 0.99)
			if len(d) < 100 || p50 < tt.p50min || p50 > tt.p50max {
				t.Errorf("p50 %.3f ms over %d spans, want %v–%v", p50, len(d), tt.p50min, tt.p50max)
			}
			if p99/p50 < 2 || p99/p50 > 10 {
				t.Errorf("p99/p50 = %.1f (p50 %.3f, p99 %.3f), want a few times", p99/p50, p50, p99)
			}
		})
	}
}

// exportTraceServiceRequest builds the descriptor of the Collector's
// ExportTraceServiceRequest without importing its gRPC package.
func exportTraceServiceRequest(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	_ = (&tracepb.TracesData{}).ProtoReflect() // registers trace.proto
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:       proto.String("opentelemetry/proto/collector/trace/v1/trace_service.proto"),
		Package:    proto.String("opentelemetry.proto.collector.trace.v1"),
		Dependency: []string{"opentelemetry/proto/trace/v1/trace.proto"},
		Syntax:     proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("ExportTraceServiceRequest"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name:     proto.String("resource_spans"),
				Number:   proto.Int32(1),
				Label:    descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum(),
				Type:     descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(),
				TypeName: proto.String(".opentelemetry.proto.trace.v1.ResourceSpans"),
				JsonName: proto.String("resourceSpans"),
			}},
		}},
	}, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().Get(0)
}

// noUnknown fails if m or any message inside it has unknown fields.
func noUnknown(t *testing.T, m protoreflect.Message) {
	t.Helper()
	if len(m.GetUnknown()) > 0 {
		t.Fatalf("%s has unknown fields", m.Descriptor().FullName())
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				noUnknown(t, v.List().Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			noUnknown(t, v.Message())
		}
		return true
	})
}

func TestMessages(t *testing.T) {
	md := exportTraceServiceRequest(t)
	tests := []struct {
		name     string
		byTrace  bool
		maxSpans int
	}{
		{"batches", false, 0},
		{"small batches", false, 64},
		{"by trace", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Seed: 9, ByTrace: tt.byTrace, MaxBatchSpans: tt.maxSpans, Rate: 100}
			s, _ := New(cfg)
			twin, _ := New(cfg)
			limit := s.cfg.MaxBatchSpans
			total, want, msgs := 0, 0, 0
			for range 10 {
				keys := map[string]bool{}
				for _, m := range s.Messages(time.Second) {
					msgs++
					req := dynamicpb.NewMessage(md)
					if err := proto.Unmarshal(m.Value, req); err != nil {
						t.Fatalf("unmarshal ExportTraceServiceRequest: %v", err)
					}
					noUnknown(t, req)
					var td tracepb.TracesData
					if err := proto.Unmarshal(m.Value, &td); err != nil {
						t.Fatal(err)
					}
					spans := decode(t, &td)
					total += len(spans)
					if !tt.byTrace {
						if m.Key != nil || len(spans) > limit {
							t.Fatalf("batch message with key %q and %d spans (limit %d)", m.Key, len(spans), limit)
						}
						continue
					}
					if keys[string(m.Key)] {
						t.Fatalf("two messages for trace %s in one step", m.Key)
					}
					keys[string(m.Key)] = true
					for _, p := range spans {
						if got := hex.EncodeToString(p.TraceID[:]); got != string(m.Key) {
							t.Fatalf("message keyed %s holds a span of trace %s", m.Key, got)
						}
					}
				}
				want += len(decode(t, twin.Step(time.Second)))
			}
			if total != want || total == 0 {
				t.Errorf("messages hold %d spans, Step gave %d", total, want)
			}
			if !tt.byTrace && msgs < total/limit {
				t.Errorf("%d messages for %d spans with limit %d", msgs, total, limit)
			}
		})
	}
}

// TestTracesSpanSteps checks that a trace that straddles a step boundary is
// split the way a batching exporter splits it: spans arrive by end time.
func TestTracesSpanSteps(t *testing.T) {
	s, _ := New(Config{Seed: 1})
	split := 0
	seen := map[span.TraceID]int{}
	for step := range 50 {
		before := s.now
		for _, p := range decode(t, s.Step(100*time.Millisecond)) {
			if p.End < before || p.End >= s.now {
				t.Fatalf("step %d emitted a span ending at %d outside [%d, %d)", step, p.End, before, s.now)
			}
			if n, ok := seen[p.TraceID]; ok && n != step {
				split++
			}
			seen[p.TraceID] = step
		}
	}
	if split == 0 {
		t.Error("no trace was split across steps")
	}
}

func TestRateVaries(t *testing.T) {
	s, _ := New(Config{Seed: 1, Rate: 40})
	lo, hi := math.Inf(1), 0.0
	for d := time.Duration(0); d < s.cfg.Period; d += time.Second {
		r := s.RateAt(s.cfg.Start.Add(d))
		lo, hi = min(lo, r), max(hi, r)
	}
	if hi/lo < 2 || hi > 40*2 || lo < 40/4 {
		t.Errorf("rate over a day from %.1f to %.1f, want a swing of about 3x around 40", lo, hi)
	}
	// Requests follow the curve: the first 30 s are 00:00-02:00 of the
	// compressed day, near the trough; 180-240 s are 12:00-16:00, the peak.
	perHalfMinute := map[int64]int{}
	for s.now < s.start+int64(s.cfg.Period) {
		for _, rs := range s.Step(time.Second).ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, p := range ss.Spans {
					if len(p.ParentSpanId) == 0 {
						perHalfMinute[(int64(p.StartTimeUnixNano)-s.start)/int64(30*time.Second)]++
					}
				}
			}
		}
	}
	night, peak := perHalfMinute[0], perHalfMinute[6]+perHalfMinute[7]
	if float64(peak) < 2*2*float64(night) {
		t.Errorf("%d requests in the first 30 s, %d in the minute of the peak", night, peak)
	}
	steady, _ := New(Config{Steady: true, Rate: 40})
	for d := time.Duration(0); d < time.Hour; d += 7 * time.Second {
		if r := steady.RateAt(steady.cfg.Start.Add(d)); r != 40 {
			t.Fatalf("steady rate %v", r)
		}
	}
}

func TestServices(t *testing.T) {
	svcs := Services()
	if len(svcs) < 10 {
		t.Fatalf("%d services", len(svcs))
	}
	for _, s := range newShop(1, true).services {
		if len(s.scopes) > 1<<scopeBits {
			t.Errorf("%s has %d instrumentation scopes, groupKey allows %d", s.name, len(s.scopes), 1<<scopeBits)
		}
	}
	for _, s := range svcs {
		if s.Instances < 1 || len(s.Operations) == 0 || s.Language == "" {
			t.Errorf("service %+v", s)
		}
	}
}
