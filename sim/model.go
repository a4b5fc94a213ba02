package sim

import (
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// This file holds the simulator's model of the shop: services and their
// instances, operations with their bodies (steps of calls), calls to other
// services or to uninstrumented peers, and the span templates each produces.
// One model is built per Sim, so faults are attached to it directly.

// outcome is how a span ends. Each template exists once per outcome.
type outcome uint8

const (
	outOK          outcome = iota
	outInternal            // the operation failed (gRPC INTERNAL, HTTP 500)
	outUnavailable         // the callee could not be reached (gRPC UNAVAILABLE)
	outDeadline            // the caller gave up waiting (gRPC DEADLINE_EXCEEDED)
	nOutcomes
)

// instr is the instrumentation that records a span; it picks the
// instrumentation scope, as SDK instrumentation libraries do.
type instr uint8

const (
	instrHTTP instr = iota
	instrGRPC
	instrSQL
	instrRedis
	instrKafka
	instrManual
	nInstr
)

// scopeNames names the instrumentation libraries per SDK language.
func scopeName(lang string, in instr, service string) string {
	switch in {
	case instrManual:
		return service
	case instrSQL:
		return "github.com/XSAM/otelsql"
	case instrKafka:
		return "github.com/IBM/sarama/otelsarama"
	}
	switch lang {
	case "go":
		if in == instrHTTP {
			return "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
		}
		return "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	case "dotnet":
		if in == instrRedis {
			return "OpenTelemetry.Instrumentation.StackExchangeRedis"
		}
		return "OpenTelemetry.Instrumentation.AspNetCore"
	case "nodejs":
		if in == instrHTTP {
			return "@opentelemetry/instrumentation-http"
		}
		return "@opentelemetry/instrumentation-grpc"
	case "python":
		return "opentelemetry.instrumentation.grpc"
	case "java":
		return "io.opentelemetry.grpc-1.6"
	}
	return "unknown"
}

// service is one instrumented service.
type service struct {
	name     string
	lang     string
	version  string
	port     int64
	nInst    int
	insts    []*instance
	ops      []*op                            // operations callable from outside, in definition order
	scopes   []*commonpb.InstrumentationScope // indexed by tmpl.scope
	scopeEnc [][]byte                         // ScopeSpans.scope field, encoded
	scopeIdx [nInstr]int                      // instr -> index into scopes, -1 when unused
	dead     []window                         // dead_instance faults
	jobPath  bool                             // slowed while the batch job runs
}

// instance is one running copy of a service: one OTLP resource.
type instance struct {
	svc    *service
	idx    int // position among all instances, the resource order in output
	res    *resourcepb.Resource
	resEnc []byte // ResourceSpans.resource field, encoded
}

// opKind is the kind of span an operation records.
type opKind uint8

const (
	opHTTP     opKind = iota // HTTP server span
	opGRPC                   // gRPC server span
	opConsumer               // message consumer span
	opInternal               // internal span inside its caller's process
)

// op is an operation a service performs: its own span, its self time, and
// the calls it makes in order.
type op struct {
	svc     *service
	kind    opKind
	name    string // span name
	method  string // rpc.method, or "" for HTTP, consumer and internal spans
	rpcSvc  string // rpc.service for gRPC
	route   string // http.route
	verb    string // http.request.method
	dest    string // messaging.destination.name for a consumer
	group   string // messaging.consumer.group.name for a consumer
	self    lognormal
	errRate float64 // background failure probability
	steps   []step
	tmpl    [nOutcomes]*tmpl

	latency []window // latency faults (extra self time)
	errors  []window // errors faults (failure probability)
}

// step is one stage of an operation body: a group of calls made in sequence
// or in parallel, possibly repeated (a loop), possibly skipped.
type step struct {
	calls    []*call
	parallel bool
	min, max int     // repetitions, uniform in [min, max]; 0 means once
	prob     float64 // probability the step happens; 0 means always
}

// callKind says how a call leaves the caller.
type callKind uint8

const (
	callRPC   callKind = iota // client span, then the callee's server span
	callLocal                 // internal span in the same process
	callLeaf                  // client span to an uninstrumented peer
	callQueue                 // producer span; the consumer runs asynchronously
)

// call is one call site in an operation body. Templates belong to the call
// site because the caller-side span is recorded by the caller.
type call struct {
	kind     callKind
	from     *service
	to       *op      // callRPC, callLocal, callQueue
	peer     *peer    // callLeaf
	leaf     leafSpec // callLeaf; for callQueue only lat (the send)
	optional bool     // the caller tolerates its failure
	tmpl     [nOutcomes]*tmpl
	delay    []window // network_delay faults on this edge
}

// leafSpec describes a call to an uninstrumented peer.
type leafSpec struct {
	name    string // span name
	lat     lognormal
	errRate float64
	attrs   []attr
	in      instr
	http    bool // HTTP client span: has a response status code
}

// peer is an uninstrumented dependency: a database, a cache, an external
// host. It appears only in its callers' client spans.
type peer struct {
	name    string // server.address
	system  string // db.system, or "http" for an external host
	port    int64
	slow    []window // slow_db faults
	dead    []window // dead_instance faults
	jobPath bool     // slowed while the batch job runs
}

// window is a fault's active interval in Unix nanoseconds, [from, to), with
// its size: a delay in nanoseconds or a fraction.
type window struct {
	from, to int64
	delay    float64
	frac     float64
}

// delayAt sums the delays of the windows active at t.
func delayAt(ws []window, t int64) float64 {
	var d float64
	for i := range ws {
		if t >= ws[i].from && t < ws[i].to {
			d += ws[i].delay
		}
	}
	return d
}

// fracAt returns the probability that at least one window active at t fires.
func fracAt(ws []window, t int64) float64 {
	p := 1.0
	for i := range ws {
		if t >= ws[i].from && t < ws[i].to {
			p *= 1 - ws[i].frac
		}
	}
	return 1 - p
}

// tmpl is everything about a span that does not change between spans of
// the same operation, call site and outcome, both as OTLP structs (shared,
// read-only) and pre-encoded.
type tmpl struct {
	svc    *service
	scope  int
	name   string
	kind   tracepb.Span_SpanKind
	remote bool // the parent span lives in another process
	attrs  []*commonpb.KeyValue
	status *tracepb.Status
	head   []byte // encoded name and kind fields
	tail   []byte // encoded attributes and status fields
	failed bool
}

// attr is one span or resource attribute with a string or integer value.
type attr struct {
	key   string
	str   string
	num   int64
	isNum bool
}

func strAttr(k, v string) attr { return attr{key: k, str: v} }
func numAttr(k string, v int64) attr {
	return attr{key: k, num: v, isNum: true}
}

func (a attr) kv() *commonpb.KeyValue {
	v := &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: a.str}}
	if a.isNum {
		v = &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: a.num}}
	}
	return &commonpb.KeyValue{Key: a.key, Value: v}
}
