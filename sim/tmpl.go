package sim

import (
	"strconv"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// gRPC status codes and HTTP status codes per outcome.
func grpcCode(out outcome) int64 {
	switch out {
	case outInternal:
		return 13 // INTERNAL
	case outUnavailable:
		return 14 // UNAVAILABLE
	case outDeadline:
		return 4 // DEADLINE_EXCEEDED
	}
	return 0
}

func httpCode(out outcome) int64 {
	switch out {
	case outInternal:
		return 500
	case outUnavailable:
		return 503
	case outDeadline:
		return 504
	}
	return 200
}

// statusMessage is the status description of a failed span.
func statusMessage(out outcome) string {
	switch out {
	case outInternal:
		return "internal error"
	case outUnavailable:
		return "connection refused"
	case outDeadline:
		return "context deadline exceeded"
	}
	return ""
}

// errorType is the error.type attribute of a failed call without a status
// code of its own.
func errorType(out outcome) string {
	switch out {
	case outUnavailable:
		return "connection_refused"
	case outDeadline:
		return "timeout"
	}
	return "_OTHER"
}

// opTmpl is the template of operation o's own span.
func opTmpl(o *op, out outcome) *tmpl {
	s := o.svc
	var (
		kind  tracepb.Span_SpanKind
		in    instr
		attrs []attr
	)
	switch o.kind {
	case opHTTP:
		kind, in = tracepb.Span_SPAN_KIND_SERVER, instrHTTP
		attrs = []attr{
			strAttr("http.request.method", o.verb),
			strAttr("http.route", o.route),
			strAttr("url.scheme", "http"),
			numAttr("http.response.status_code", httpCode(out)),
		}
		if out != outOK {
			attrs = append(attrs, strAttr("error.type", strconv.FormatInt(httpCode(out), 10)))
		}
	case opGRPC:
		kind, in = tracepb.Span_SPAN_KIND_SERVER, instrGRPC
		attrs = []attr{
			strAttr("rpc.system", "grpc"),
			strAttr("rpc.service", o.rpcSvc),
			strAttr("rpc.method", o.method),
			numAttr("rpc.grpc.status_code", grpcCode(out)),
		}
	case opConsumer:
		kind, in = tracepb.Span_SPAN_KIND_CONSUMER, instrKafka
		attrs = []attr{
			strAttr("messaging.system", "kafka"),
			strAttr("messaging.destination.name", o.dest),
			strAttr("messaging.operation.type", "process"),
			strAttr("messaging.operation.name", "process"),
			strAttr("messaging.consumer.group.name", o.group),
		}
		if out != outOK {
			attrs = append(attrs, strAttr("error.type", errorType(out)))
		}
	default:
		kind, in = tracepb.Span_SPAN_KIND_INTERNAL, instrManual
	}
	return newTmpl(s, in, o.name, kind, o.kind != opInternal, attrs, out)
}

// callTmpl is the template of the caller-side span of call site c.
func callTmpl(c *call, out outcome) *tmpl {
	switch c.kind {
	case callRPC:
		to := c.to
		return newTmpl(c.from, instrGRPC, to.name, tracepb.Span_SPAN_KIND_CLIENT, false, []attr{
			strAttr("rpc.system", "grpc"),
			strAttr("rpc.service", to.rpcSvc),
			strAttr("rpc.method", to.method),
			strAttr("server.address", to.svc.name),
			numAttr("server.port", to.svc.port),
			numAttr("rpc.grpc.status_code", grpcCode(out)),
		}, out)
	case callQueue:
		attrs := []attr{
			strAttr("messaging.system", "kafka"),
			strAttr("messaging.destination.name", c.to.dest),
			strAttr("messaging.operation.type", "send"),
			strAttr("messaging.operation.name", "send"),
		}
		if out != outOK {
			attrs = append(attrs, strAttr("error.type", errorType(out)))
		}
		return newTmpl(c.from, instrKafka, "send "+c.to.dest, tracepb.Span_SPAN_KIND_PRODUCER, false, attrs, out)
	}
	attrs := append([]attr(nil), c.leaf.attrs...)
	if c.leaf.http && (out == outOK || out == outInternal) {
		code := int64(200)
		if out == outInternal {
			code = 502
		}
		attrs = append(attrs, numAttr("http.response.status_code", code))
		if out == outInternal {
			attrs = append(attrs, strAttr("error.type", "502"))
		}
	} else if out != outOK {
		attrs = append(attrs, strAttr("error.type", errorType(out)))
	}
	return newTmpl(c.from, c.leaf.in, c.leaf.name, tracepb.Span_SPAN_KIND_CLIENT, false, attrs, out)
}

// newTmpl builds a template and its pre-encoded fields.
func newTmpl(s *service, in instr, name string, kind tracepb.Span_SpanKind, remote bool, attrs []attr, out outcome) *tmpl {
	t := &tmpl{
		svc:    s,
		scope:  scopeFor(s, in),
		name:   name,
		kind:   kind,
		remote: remote,
		status: &tracepb.Status{},
		failed: out != outOK,
	}
	if t.failed {
		t.status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: statusMessage(out)}
	}
	t.head = protowire.AppendTag(t.head, 5, protowire.BytesType)
	t.head = protowire.AppendString(t.head, name)
	t.head = protowire.AppendTag(t.head, 6, protowire.VarintType)
	t.head = protowire.AppendVarint(t.head, uint64(kind))
	for _, a := range attrs {
		t.attrs = append(t.attrs, a.kv())
		t.tail = appendAttr(t.tail, 9, a)
	}
	var st []byte
	if m := t.status.Message; m != "" {
		st = protowire.AppendTag(st, 2, protowire.BytesType)
		st = protowire.AppendString(st, m)
	}
	if c := t.status.Code; c != 0 {
		st = protowire.AppendTag(st, 3, protowire.VarintType)
		st = protowire.AppendVarint(st, uint64(c))
	}
	t.tail = protowire.AppendTag(t.tail, 15, protowire.BytesType)
	t.tail = protowire.AppendBytes(t.tail, st)
	return t
}

// scopeFor returns the index of the instrumentation scope of s that records
// spans of instrumentation in, adding the scope on first use.
func scopeFor(s *service, in instr) int {
	if i := s.scopeIdx[in]; i >= 0 {
		return i
	}
	name := scopeName(s.lang, in, s.name)
	idx := -1
	for i, sc := range s.scopes {
		if sc.Name == name {
			idx = i
		}
	}
	if idx < 0 {
		idx = len(s.scopes)
		s.scopes = append(s.scopes, &commonpb.InstrumentationScope{Name: name})
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, name)
		enc := protowire.AppendTag(nil, 1, protowire.BytesType)
		s.scopeEnc = append(s.scopeEnc, protowire.AppendBytes(enc, b))
	}
	s.scopeIdx[in] = idx
	return idx
}

// sdkVersions are plausible OpenTelemetry SDK versions per language.
func sdkVersion(lang string) string {
	switch lang {
	case "go":
		return "1.38.0"
	case "dotnet":
		return "1.12.0"
	case "nodejs":
		return "2.0.1"
	case "python":
		return "1.36.0"
	case "java":
		return "1.54.0"
	}
	return "1.0.0"
}

// resource builds the OTLP resource of instance i of s, with ids drawn from
// r, and its encoding as the ResourceSpans.resource field. podHash is the
// ReplicaSet part of the pod name, shared by the service's instances.
func resource(s *service, podHash string, r *rng) (*resourcepb.Resource, []byte) {
	var u [16]byte
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			u[i+j] = byte(v >> (8 * j))
		}
	}
	u[6] = u[6]&0x0f | 0x40 // UUID version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	const hexdigits = "0123456789abcdef"
	id := make([]byte, 0, 36)
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			id = append(id, '-')
		}
		id = append(id, hexdigits[c>>4], hexdigits[c&15])
	}
	attrs := []attr{
		strAttr("service.name", s.name),
		strAttr("service.version", s.version),
		strAttr("service.instance.id", string(id)),
		strAttr("telemetry.sdk.name", "opentelemetry"),
		strAttr("telemetry.sdk.language", s.lang),
		strAttr("telemetry.sdk.version", sdkVersion(s.lang)),
		strAttr("k8s.namespace.name", "shop"),
		strAttr("k8s.pod.name", s.name+"-"+podHash+"-"+podSuffix(r, 5)),
	}
	res := &resourcepb.Resource{}
	var b []byte
	for _, a := range attrs {
		res.Attributes = append(res.Attributes, a.kv())
		b = appendAttr(b, 1, a)
	}
	enc := protowire.AppendTag(nil, 1, protowire.BytesType)
	return res, protowire.AppendBytes(enc, b)
}

// podSuffix returns n characters of the alphabet Kubernetes uses for
// generated names.
func podSuffix(r *rng, n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// appendAttr appends attribute a as a KeyValue in field num.
func appendAttr(b []byte, num protowire.Number, a attr) []byte {
	var val int // AnyValue size
	if a.isNum {
		val = 1 + protowire.SizeVarint(uint64(a.num))
	} else {
		val = 1 + protowire.SizeBytes(len(a.str))
	}
	kv := 1 + protowire.SizeBytes(len(a.key)) + 1 + protowire.SizeBytes(val)
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(kv))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, a.key)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(val))
	if a.isNum {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(a.num))
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendString(b, a.str)
}
