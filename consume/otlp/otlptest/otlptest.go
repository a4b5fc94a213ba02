// Package otlptest builds realistic OTLP trace export requests for tests and
// benchmarks of the packages that consume them.
package otlptest

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Base is the start time of the first trace in a RealisticRequest.
var Base = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Services are the service.name values RealisticRequest uses, in the order
// of their ResourceSpans.
var Services = []string{"frontend", "cart", "checkout", "payment", "inventory"}

// RealisticRequest returns a request holding nSpans spans shaped like an
// instrumented shop: each trace is twelve spans across the five Services
// (HTTP server and client spans, a gRPC call, Redis and PostgreSQL client
// spans, a Kafka producer and consumer, an internal span) with the
// attributes the OpenTelemetry SDKs set, about 270 bytes per span encoded.
// Some services use the older semantic-convention names (http.status_code,
// net.peer.name, db.system), and about 2% of traces fail in payment.
//
// Spans are grouped into one ResourceSpans per service with one ScopeSpans
// each, as an SDK batch or the Collector's batch processor produces them. The
// request is the same for the same arguments; the last trace is cut short
// when nSpans is not a multiple of twelve. Parents always precede children
// within a service, but a trace's spans are spread over the resources.
func RealisticRequest(nSpans int, seed int64) *coltracepb.ExportTraceServiceRequest {
	g := &gen{
		r:     rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)),
		spans: make(map[string][]*tracepb.Span, len(Services)),
		left:  nSpans,
	}
	start := Base
	for g.left > 0 {
		g.trace(start)
		start = start.Add(time.Duration(1+g.r.IntN(20)) * time.Millisecond)
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	for i, svc := range Services {
		if len(g.spans[svc]) == 0 {
			continue
		}
		req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{
			Resource: &resourcepb.Resource{Attributes: resourceAttrs(svc, i)},
			ScopeSpans: []*tracepb.ScopeSpans{{
				Scope: &commonpb.InstrumentationScope{
					Name:    "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
					Version: "0.63.0",
				},
				Spans:     g.spans[svc],
				SchemaUrl: "https://opentelemetry.io/schemas/1.26.0",
			}},
			SchemaUrl: "https://opentelemetry.io/schemas/1.26.0",
		})
	}
	return req
}

func resourceAttrs(svc string, i int) []*commonpb.KeyValue {
	return []*commonpb.KeyValue{
		Str("service.name", svc),
		Str("service.version", fmt.Sprintf("1.%d.%d", 4+i, 12*i+3)),
		Str("service.namespace", "shop"),
		Str("deployment.environment.name", "production"),
		Str("host.name", fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", i+1, 17*i+40)),
		Str("k8s.pod.name", fmt.Sprintf("%s-7d9f8c6b5-%c%c%c%c%c", svc, 'a'+i, 'k'+i, 'q', 'x'+i%3, 'b'+i)),
		Str("telemetry.sdk.name", "opentelemetry"),
		Str("telemetry.sdk.language", "go"),
		Str("telemetry.sdk.version", "1.38.0"),
	}
}

// Str returns a string attribute.
func Str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// Int returns an integer attribute.
func Int(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

type gen struct {
	r     *rand.Rand
	spans map[string][]*tracepb.Span
	left  int
	trID  []byte
}

func (g *gen) id(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], g.r.Uint64()|1)
	}
	return b
}

// add records a span of svc if the span budget allows, returning its id.
func (g *gen) add(svc string, parent []byte, name string, kind tracepb.Span_SpanKind, start time.Time, d time.Duration, fail bool, attrs ...*commonpb.KeyValue) []byte {
	if g.left == 0 {
		return nil
	}
	g.left--
	s := &tracepb.Span{
		TraceId:           g.trID,
		SpanId:            g.id(8),
		ParentSpanId:      parent,
		Name:              name,
		Kind:              kind,
		StartTimeUnixNano: uint64(start.UnixNano()),
		EndTimeUnixNano:   uint64(start.Add(d).UnixNano()),
		Attributes:        attrs,
		Flags:             0x101,
	}
	if fail {
		s.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "payment declined: upstream timeout"}
	}
	g.spans[svc] = append(g.spans[svc], s)
	return s.SpanId
}

func (g *gen) ms(lo, hi int) time.Duration {
	return time.Duration(lo*1000+g.r.IntN((hi-lo)*1000+1)) * time.Microsecond
}

// trace emits one checkout trace starting at t.
func (g *gen) trace(t time.Time) {
	const (
		server   = tracepb.Span_SPAN_KIND_SERVER
		client   = tracepb.Span_SPAN_KIND_CLIENT
		producer = tracepb.Span_SPAN_KIND_PRODUCER
		consumer = tracepb.Span_SPAN_KIND_CONSUMER
		internal = tracepb.Span_SPAN_KIND_INTERNAL
	)
	g.trID = g.id(16)
	fail := g.r.IntN(50) == 0
	code := int64(200)
	if fail {
		code = 502
	}
	user := 1000 + g.r.IntN(90000)
	cart := fmt.Sprintf("/api/cart/%d", user)

	root := g.add("frontend", nil, "POST /api/checkout", server, t, g.ms(40, 90), fail,
		Str("http.request.method", "POST"),
		Str("url.path", "/api/checkout"),
		Str("http.route", "/api/checkout"),
		Str("url.scheme", "https"),
		Int("http.response.status_code", code),
		Str("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0"),
		Str("client.address", fmt.Sprintf("10.1.%d.%d", g.r.IntN(256), g.r.IntN(256))),
	)
	t1 := t.Add(g.ms(1, 2))
	c1 := g.add("frontend", root, "GET", client, t1, g.ms(5, 12), false,
		Str("http.request.method", "GET"),
		Str("url.full", "http://cart:8080"+cart),
		Str("server.address", "cart"),
		Int("server.port", 8080),
		Int("http.response.status_code", 200),
		Str("network.protocol.version", "1.1"),
	)
	s1 := g.add("cart", c1, "GET /api/cart/{user}", server, t1.Add(g.ms(0, 1)), g.ms(3, 9), false,
		Str("http.request.method", "GET"),
		Str("url.path", cart),
		Str("http.route", "/api/cart/{user}"),
		Int("http.status_code", 200),
		Str("net.host.name", "cart"),
		Str("user_agent.original", "Go-http-client/1.1"),
	)
	g.add("cart", s1, "HGETALL", client, t1.Add(g.ms(1, 2)), g.ms(0, 2), false,
		Str("db.system", "redis"),
		Str("db.operation", "HGETALL"),
		Str("db.statement", fmt.Sprintf("HGETALL cart:%d", user)),
		Str("net.peer.name", "redis-cart"),
		Int("net.peer.port", 6379),
		Str("db.redis.database_index", "0"),
	)
	t2 := t1.Add(g.ms(12, 14))
	c2 := g.add("frontend", root, "POST", client, t2, g.ms(25, 60), fail,
		Str("http.request.method", "POST"),
		Str("url.full", "http://checkout:8080/checkout"),
		Str("server.address", "checkout"),
		Int("server.port", 8080),
		Int("http.response.status_code", code),
		Str("network.protocol.version", "1.1"),
	)
	s2 := g.add("checkout", c2, "POST /checkout", server, t2.Add(g.ms(0, 1)), g.ms(22, 55), fail,
		Str("http.request.method", "POST"),
		Str("url.path", "/checkout"),
		Str("http.route", "/checkout"),
		Int("http.response.status_code", code),
		Str("network.protocol.version", "1.1"),
	)
	t3 := t2.Add(g.ms(2, 3))
	grpcCode := int64(0)
	if fail {
		grpcCode = 14
	}
	c3 := g.add("checkout", s2, "payment.PaymentService/Charge", client, t3, g.ms(15, 40), fail,
		Str("rpc.system", "grpc"),
		Str("rpc.service", "payment.PaymentService"),
		Str("rpc.method", "Charge"),
		Str("server.address", "payment"),
		Int("server.port", 50051),
		Int("rpc.grpc.status_code", grpcCode),
	)
	s3 := g.add("payment", c3, "payment.PaymentService/Charge", server, t3.Add(g.ms(0, 1)), g.ms(12, 35), fail,
		Str("rpc.system", "grpc"),
		Str("rpc.service", "payment.PaymentService"),
		Str("rpc.method", "Charge"),
		Int("rpc.grpc.status_code", grpcCode),
		Str("network.peer.address", fmt.Sprintf("10.2.%d.%d", g.r.IntN(256), g.r.IntN(256))),
	)
	g.add("payment", s3, "SELECT payments.accounts", client, t3.Add(g.ms(1, 2)), g.ms(2, 8), false,
		Str("db.system.name", "postgresql"),
		Str("db.namespace", "payments"),
		Str("db.operation.name", "SELECT"),
		Str("db.collection.name", "accounts"),
		Str("db.query.text", "SELECT balance, currency FROM accounts WHERE id = $1"),
		Str("server.address", "pg-payments.internal"),
		Int("server.port", 5432),
	)
	t4 := t3.Add(g.ms(16, 20))
	p := g.add("checkout", s2, "orders publish", producer, t4, g.ms(1, 3), false,
		Str("messaging.system", "kafka"),
		Str("messaging.destination.name", "orders"),
		Str("messaging.operation.type", "publish"),
		Str("server.address", "kafka-0.kafka"),
		Int("messaging.kafka.message.offset", int64(g.r.IntN(1<<30))),
	)
	t5 := t4.Add(g.ms(2, 30))
	cs := g.add("inventory", p, "orders process", consumer, t5, g.ms(3, 10), false,
		Str("messaging.system", "kafka"),
		Str("messaging.destination", "orders"),
		Str("messaging.operation", "process"),
		Str("messaging.kafka.consumer.group", "inventory"),
		Str("messaging.client_id", "inventory-7d9f8c6b5-2"),
	)
	g.add("inventory", cs, "reserve stock", internal, t5.Add(g.ms(0, 1)), g.ms(1, 6), false,
		Int("inventory.items", int64(1+g.r.IntN(6))),
		Str("code.function", "reserveStock"),
		Str("code.namespace", "shop/inventory.(*Service)"),
	)
}
