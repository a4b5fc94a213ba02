package otlp

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/consume/otlp/otlptest"
	"github.com/causeway/causeway/span"
)

var (
	str = otlptest.Str
	num = otlptest.Int

	tid = []byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	sid = []byte{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	pid = []byte{0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8b, 0x9a}

	t0 = otlptest.Base.UnixNano()
	t1 = t0 + 1_500_000
)

// Attribute constructors for the cases below.
func boolAttr(k string, v bool) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v}}}
}

func dblAttr(k string, v float64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}}
}

// baseSpan is the generated span most cases start from.
func baseSpan() *tracepb.Span {
	return &tracepb.Span{
		TraceId:           tid,
		SpanId:            sid,
		Name:              "GET /api/orders",
		Kind:              tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: uint64(t0),
		EndTimeUnixNano:   uint64(t1),
	}
}

// want is the record of baseSpan in service "orders", changed by mod.
func want(mod func(*span.Span)) span.Span {
	s := span.Span{
		TraceID:    span.TraceID(tid),
		SpanID:     span.ID(sid),
		Service:    "orders",
		Name:       "GET /api/orders",
		Kind:       span.KindServer,
		Start:      t0,
		End:        t1,
		GRPCStatus: -1,
	}
	if mod != nil {
		mod(&s)
	}
	return s
}

// request wraps spans in one resource whose attributes are res.
func request(res []*commonpb.KeyValue, spans ...*tracepb.Span) *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: res},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
}

// withAttrs is a request of baseSpan in service "orders" with attributes.
func withAttrs(attrs ...*commonpb.KeyValue) *coltracepb.ExportTraceServiceRequest {
	s := baseSpan()
	s.Attributes = attrs
	return request([]*commonpb.KeyValue{str("service.name", "orders")}, s)
}

func marshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// Raw wire builders, for encodings proto.Marshal never produces.

// lenField is a length-delimited field holding the concatenation of parts.
func lenField(n protowire.Number, parts ...[]byte) []byte {
	var v []byte
	for _, p := range parts {
		v = append(v, p...)
	}
	return protowire.AppendBytes(protowire.AppendTag(nil, n, protowire.BytesType), v)
}

func strField(n protowire.Number, s string) []byte { return lenField(n, []byte(s)) }

func varintField(n protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, n, protowire.VarintType), v)
}

func fixed64Field(n protowire.Number, v uint64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, n, protowire.Fixed64Type), v)
}

func fixed32Field(n protowire.Number, v uint32) []byte {
	return protowire.AppendFixed32(protowire.AppendTag(nil, n, protowire.Fixed32Type), v)
}

func groupField(n protowire.Number, parts ...[]byte) []byte {
	b := protowire.AppendTag(nil, n, protowire.StartGroupType)
	for _, p := range parts {
		b = append(b, p...)
	}
	return protowire.AppendTag(b, n, protowire.EndGroupType)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Messages by the field that holds them.
var (
	rsF    = func(p ...[]byte) []byte { return lenField(1, p...) } // request.resource_spans
	resF   = func(p ...[]byte) []byte { return lenField(1, p...) } // ResourceSpans.resource
	ssF    = func(p ...[]byte) []byte { return lenField(2, p...) } // ResourceSpans.scope_spans
	rAttrF = func(p ...[]byte) []byte { return lenField(1, p...) } // Resource.attributes
	spanF  = func(p ...[]byte) []byte { return lenField(2, p...) } // ScopeSpans.spans
	attrF  = func(p ...[]byte) []byte { return lenField(9, p...) } // Span.attributes
	statF  = func(p ...[]byte) []byte { return lenField(15, p...) }
	keyF   = func(k string) []byte { return strField(1, k) }           // KeyValue.key
	valF   = func(p ...[]byte) []byte { return lenField(2, p...) }     // KeyValue.value
	sValF  = func(s string) []byte { return strField(1, s) }           // AnyValue.string_value
	iValF  = func(i int64) []byte { return varintField(3, uint64(i)) } // AnyValue.int_value
)

// svcAttr is the raw resource attribute service.name=orders.
var svcAttr = rAttrF(keyF("service.name"), valF(sValF("orders")))

// baseFields are baseSpan's fields on the wire.
func baseFields() []byte {
	return cat(lenField(1, tid), lenField(2, sid), strField(5, "GET /api/orders"),
		varintField(6, 2), fixed64Field(7, uint64(t0)), fixed64Field(8, uint64(t1)))
}

// rawSpan is a request of one span, in service orders, made of fields.
func rawSpan(fields ...[]byte) []byte {
	return rsF(resF(svcAttr), ssF(spanF(fields...)))
}

// unknownFields holds one unknown field of every wire type, a nested group
// and the largest field number.
var unknownFields = cat(
	varintField(100, 1<<40),
	fixed32Field(101, 7),
	fixed64Field(102, 8),
	strField(103, "unknown"),
	groupField(104, varintField(1, 1), groupField(2, strField(3, "x")), fixed64Field(536870911, 1)),
	varintField(protowire.MaxValidNumber, 1),
)

// nonMinimal re-encodes the varint at the start of b with one byte too many.
func nonMinimal(v uint64) []byte {
	b := protowire.AppendVarint(nil, v)
	b[len(b)-1] |= 0x80
	return append(b, 0)
}

type wireCase struct {
	name string
	msg  []byte
	want []span.Span
}

// wireCases are valid messages and the records both decoders must make.
func wireCases() []wireCase {
	orders := []*commonpb.KeyValue{str("service.name", "orders")}
	cases := []wireCase{
		{"empty request", nil, nil},
		{"plain span", marshal(withAttrs()), []span.Span{want(nil)}},

		// HTTP status.
		{"http.response.status_code", marshal(withAttrs(num("http.response.status_code", 200))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 200 })}},
		{"http.status_code", marshal(withAttrs(num("http.status_code", 404))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 404 })}},
		{"http newer first", marshal(withAttrs(num("http.response.status_code", 200), num("http.status_code", 500))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 200 })}},
		{"http newer last", marshal(withAttrs(num("http.status_code", 500), num("http.response.status_code", 200))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 200 })}},
		{"http string", marshal(withAttrs(str("http.status_code", "503"))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 503 })}},
		{"http string signed", marshal(withAttrs(str("http.response.status_code", "+201"))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 201 })}},
		{"http string not a number", marshal(withAttrs(str("http.response.status_code", "OK"))),
			[]span.Span{want(nil)}},
		{"http string int32 overflow", marshal(withAttrs(str("http.response.status_code", "2147483648"))),
			[]span.Span{want(nil)}},
		{"http string int32 min", marshal(withAttrs(str("http.response.status_code", "-2147483648"))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = math.MinInt32 })}},
		{"http string with space", marshal(withAttrs(str("http.response.status_code", " 200"))),
			[]span.Span{want(nil)}},
		{"http int overflow", marshal(withAttrs(num("http.response.status_code", 1<<40))),
			[]span.Span{want(nil)}},
		{"http newer key with a bool loses to older", marshal(withAttrs(boolAttr("http.response.status_code", true), num("http.status_code", 500))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 500 })}},
		{"http newer key unparsable string loses to older", marshal(withAttrs(num("http.status_code", 500), str("http.response.status_code", "x"))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 500 })}},
		{"http double does not count", marshal(withAttrs(dblAttr("http.status_code", 200))),
			[]span.Span{want(nil)}},
		{"http same key twice: last wins", marshal(withAttrs(num("http.status_code", 500), num("http.status_code", 502))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 502 })}},

		// gRPC status.
		{"grpc", marshal(withAttrs(num("rpc.grpc.status_code", 14))),
			[]span.Span{want(func(s *span.Span) { s.GRPCStatus = 14 })}},
		{"grpc ok", marshal(withAttrs(num("rpc.grpc.status_code", 0))),
			[]span.Span{want(func(s *span.Span) { s.GRPCStatus = 0 })}},
		{"grpc string does not count", marshal(withAttrs(str("rpc.grpc.status_code", "14"))),
			[]span.Span{want(nil)}},
		{"grpc overflow does not count", marshal(withAttrs(num("rpc.grpc.status_code", -1<<33))),
			[]span.Span{want(nil)}},

		// String attributes.
		{"peer.service", marshal(withAttrs(str("peer.service", "billing"))),
			[]span.Span{want(func(s *span.Span) { s.PeerService = "billing" })}},
		{"server.address newer first", marshal(withAttrs(str("server.address", "new"), str("net.peer.name", "old"))),
			[]span.Span{want(func(s *span.Span) { s.ServerAddress = "new" })}},
		{"server.address newer last", marshal(withAttrs(str("net.peer.name", "old"), str("server.address", "new"))),
			[]span.Span{want(func(s *span.Span) { s.ServerAddress = "new" })}},
		{"server.address twice: last wins", marshal(withAttrs(str("server.address", "first"), str("net.peer.name", "old"), str("server.address", "second"))),
			[]span.Span{want(func(s *span.Span) { s.ServerAddress = "second" })}},
		{"http string twice: last wins", marshal(withAttrs(str("http.status_code", "500"), str("http.status_code", "501"))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 501 })}},
		{"net.peer.name alone", marshal(withAttrs(str("net.peer.name", "old"))),
			[]span.Span{want(func(s *span.Span) { s.ServerAddress = "old" })}},
		{"empty server.address does not hide net.peer.name", marshal(withAttrs(str("net.peer.name", "old"), str("server.address", ""))),
			[]span.Span{want(func(s *span.Span) { s.ServerAddress = "old" })}},
		{"int server.address does not count", marshal(withAttrs(num("server.address", 7), str("net.peer.name", "old"))),
			[]span.Span{want(func(s *span.Span) { s.ServerAddress = "old" })}},
		{"db.system.name newer first", marshal(withAttrs(str("db.system.name", "postgresql"), str("db.system", "mysql"))),
			[]span.Span{want(func(s *span.Span) { s.DBSystem = "postgresql" })}},
		{"db.system.name newer last", marshal(withAttrs(str("db.system", "mysql"), str("db.system.name", "postgresql"))),
			[]span.Span{want(func(s *span.Span) { s.DBSystem = "postgresql" })}},
		{"db.system alone", marshal(withAttrs(str("db.system", "mysql"))),
			[]span.Span{want(func(s *span.Span) { s.DBSystem = "mysql" })}},
		{"db.namespace newer first", marshal(withAttrs(str("db.namespace", "new"), str("db.name", "old"))),
			[]span.Span{want(func(s *span.Span) { s.DBNamespace = "new" })}},
		{"db.namespace newer last", marshal(withAttrs(str("db.name", "old"), str("db.namespace", "new"))),
			[]span.Span{want(func(s *span.Span) { s.DBNamespace = "new" })}},
		{"db.name alone", marshal(withAttrs(str("db.name", "old"))),
			[]span.Span{want(func(s *span.Span) { s.DBNamespace = "old" })}},
		{"messaging.system", marshal(withAttrs(str("messaging.system", "kafka"))),
			[]span.Span{want(func(s *span.Span) { s.MessagingSystem = "kafka" })}},
		{"messaging.destination.name newer first", marshal(withAttrs(str("messaging.destination.name", "new"), str("messaging.destination", "old"))),
			[]span.Span{want(func(s *span.Span) { s.MessagingDest = "new" })}},
		{"messaging.destination.name newer last", marshal(withAttrs(str("messaging.destination", "old"), str("messaging.destination.name", "new"))),
			[]span.Span{want(func(s *span.Span) { s.MessagingDest = "new" })}},
		{"messaging.destination alone", marshal(withAttrs(str("messaging.destination", "old"))),
			[]span.Span{want(func(s *span.Span) { s.MessagingDest = "old" })}},
		{"all attributes among others", marshal(withAttrs(
			str("http.request.method", "GET"), str("url.path", "/api/orders/7"),
			num("http.response.status_code", 503), num("rpc.grpc.status_code", 2),
			str("peer.service", "billing"), str("server.address", "db1"),
			str("db.system.name", "postgresql"), str("db.namespace", "orders"),
			str("messaging.system", "kafka"), str("messaging.destination.name", "orders"),
			str("rpc.system", "grpc"), str("network.peer.address", "10.0.0.1"),
		)), []span.Span{want(func(s *span.Span) {
			s.HTTPStatus, s.GRPCStatus = 503, 2
			s.PeerService, s.ServerAddress = "billing", "db1"
			s.DBSystem, s.DBNamespace = "postgresql", "orders"
			s.MessagingSystem, s.MessagingDest = "kafka", "orders"
		})}},
		{"span attribute service.name is not the service", marshal(withAttrs(str("service.name", "other"))),
			[]span.Span{want(nil)}},
		{"resource attribute peer.service is not read", marshal(request(
			[]*commonpb.KeyValue{str("service.name", "orders"), str("peer.service", "x")}, baseSpan())),
			[]span.Span{want(nil)}},

		// service.name.
		{"missing service.name", marshal(request(nil, baseSpan())),
			[]span.Span{want(func(s *span.Span) { s.Service = "" })}},
		{"no resource", marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{baseSpan()}}}}}}),
			[]span.Span{want(func(s *span.Span) { s.Service = "" })}},
		{"int service.name", marshal(request([]*commonpb.KeyValue{num("service.name", 3)}, baseSpan())),
			[]span.Span{want(func(s *span.Span) { s.Service = "" })}},
		{"empty service.name does not count", marshal(request([]*commonpb.KeyValue{str("service.name", "orders"), str("service.name", "")}, baseSpan())),
			[]span.Span{want(nil)}},
		{"service.name twice: last wins", marshal(request([]*commonpb.KeyValue{str("service.name", "first"), str("service.name", "orders")}, baseSpan())),
			[]span.Span{want(nil)}},

		// Ids, kind, status.
		{"bad id lengths", marshal(request(orders, func() *tracepb.Span {
			s := baseSpan()
			s.TraceId, s.SpanId, s.ParentSpanId = tid[:15], append(sid, 1), pid[:7]
			return s
		}())), []span.Span{want(func(s *span.Span) { s.TraceID, s.SpanID = span.TraceID{}, span.ID{} })}},
		{"parent", marshal(request(orders, func() *tracepb.Span {
			s := baseSpan()
			s.ParentSpanId = pid
			return s
		}())), []span.Span{want(func(s *span.Span) { s.ParentID = span.ID(pid) })}},
		{"kind out of range", marshal(request(orders, func() *tracepb.Span {
			s := baseSpan()
			s.Kind = 6
			return s
		}())), []span.Span{want(func(s *span.Span) { s.Kind = span.KindUnspecified })}},
		{"negative kind", marshal(request(orders, func() *tracepb.Span {
			s := baseSpan()
			s.Kind = -1
			return s
		}())), []span.Span{want(func(s *span.Span) { s.Kind = span.KindUnspecified })}},
		{"status error", marshal(request(orders, func() *tracepb.Span {
			s := baseSpan()
			s.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"}
			return s
		}())), []span.Span{want(func(s *span.Span) { s.Status = span.StatusError })}},
		{"status out of range", marshal(request(orders, func() *tracepb.Span {
			s := baseSpan()
			s.Status = &tracepb.Status{Code: 3}
			return s
		}())), []span.Span{want(nil)}},

		// Shape.
		{"several resources and scopes", marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
			{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "a")}},
				ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{baseSpan(), baseSpan()}}, {}, {Spans: []*tracepb.Span{baseSpan()}}}},
			{},
			{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "b")}},
				ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "lib", Version: "1"}, Spans: []*tracepb.Span{baseSpan()}}}},
		}}), []span.Span{
			want(func(s *span.Span) { s.Service = "a" }), want(func(s *span.Span) { s.Service = "a" }),
			want(func(s *span.Span) { s.Service = "a" }), want(func(s *span.Span) { s.Service = "b" }),
		}},
		{"events, links, trace state, scope and flags are skipped", marshal(request(orders, func() *tracepb.Span {
			s := baseSpan()
			s.TraceState, s.Flags = "rojo=00f067aa0ba902b7", 0x301
			s.Events = []*tracepb.Span_Event{{Name: "exception", TimeUnixNano: 5, Attributes: []*commonpb.KeyValue{str("http.status_code", "500")}}}
			s.Links = []*tracepb.Span_Link{{TraceId: tid, SpanId: pid, Attributes: []*commonpb.KeyValue{str("peer.service", "x")}}}
			s.DroppedAttributesCount, s.DroppedEventsCount, s.DroppedLinksCount = 1, 2, 3
			s.Attributes = []*commonpb.KeyValue{
				{Key: "tags", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{{Value: &commonpb.AnyValue_StringValue{StringValue: "a"}}}}}}},
				{Key: "peer.service", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{}}}},
				{Key: "blob", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0xff}}}},
				{Key: "db.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValueStrindex{StringValueStrindex: 3}}},
				{KeyStrindex: 4, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 1}}},
			}
			return s
		}())), []span.Span{want(nil)}},
	}

	// Valid encodings that proto.Marshal does not produce.
	base := want(nil)
	raw := []wireCase{
		{"raw base", rawSpan(baseFields()), []span.Span{base}},
		{"resource after scope_spans", rsF(ssF(spanF(baseFields())), resF(svcAttr)), []span.Span{base}},
		{"resource split in two", rsF(resF(rAttrF(keyF("host.name"), valF(sValF("h")))), ssF(spanF(baseFields())), resF(svcAttr)),
			[]span.Span{base}},
		{"resource_spans split by unknown fields", cat(rsF(resF(svcAttr), ssF(spanF(baseFields()))), unknownFields, rsF(resF(svcAttr), ssF(spanF(baseFields())))),
			[]span.Span{base, base}},
		{"spans split around scope and schema_url", rsF(resF(svcAttr), ssF(spanF(baseFields()), lenField(1, strField(1, "lib")), spanF(baseFields()), strField(3, "https://x")), ssF(spanF(baseFields()))),
			[]span.Span{base, base, base}},
		{"span fields reversed", rawSpan(fixed64Field(8, uint64(t1)), fixed64Field(7, uint64(t0)), varintField(6, 2),
			strField(5, "GET /api/orders"), lenField(2, sid), lenField(1, tid)), []span.Span{base}},
		{"value before key", rawSpan(baseFields(), attrF(valF(iValF(404)), keyF("http.status_code"))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 404 })}},
		{"value before key, as the Collector writes", rawSpan(baseFields(), attrF(valF(sValF("payments")), keyF("peer.service")), attrF(valF(sValF("x")), keyF("db.system.other"))),
			[]span.Span{want(func(s *span.Span) { s.PeerService = "payments" })}},
		{"key twice, value between", rawSpan(baseFields(), attrF(keyF("db.name"), valF(sValF("x")), keyF("peer.service"))),
			[]span.Span{want(func(s *span.Span) { s.PeerService = "x" })}},
		{"service.name value before key", rsF(resF(rAttrF(valF(sValF("orders")), keyF("service.name"))), ssF(spanF(baseFields()))),
			[]span.Span{base}},
		{"key twice: last wins", rawSpan(baseFields(), attrF(keyF("peer.service"), valF(sValF("x")), keyF("db.name"))),
			[]span.Span{want(func(s *span.Span) { s.DBNamespace = "x" })}},
		{"value split: later member wins", rawSpan(baseFields(), attrF(keyF("http.status_code"), valF(sValF("500")), valF(iValF(404)))),
			[]span.Span{want(func(s *span.Span) { s.HTTPStatus = 404 })}},
		{"value split: empty part keeps the value", rawSpan(baseFields(), attrF(keyF("server.address"), valF(sValF("db1")), valF())),
			[]span.Span{want(func(s *span.Span) { s.ServerAddress = "db1" })}},
		{"value split around the key", rawSpan(baseFields(), attrF(valF(iValF(1)), keyF("rpc.grpc.status_code"), valF(unknownFields))),
			[]span.Span{want(func(s *span.Span) { s.GRPCStatus = 1 })}},
		{"oneof: a later bool hides the string", rawSpan(baseFields(), attrF(keyF("peer.service"), valF(sValF("x"), varintField(2, 1)))),
			[]span.Span{base}},
		{"oneof: a later strindex hides the int", rawSpan(baseFields(), attrF(keyF("rpc.grpc.status_code"), valF(iValF(3), varintField(8, 1)))),
			[]span.Span{base}},
		{"oneof: member with the wrong wire type is unknown", rawSpan(baseFields(), attrF(keyF("peer.service"), valF(sValF("x"), varintField(1, 5), fixed64Field(3, 5)))),
			[]span.Span{want(func(s *span.Span) { s.PeerService = "x" })}},
		{"value with no member", rawSpan(baseFields(), attrF(keyF("peer.service"), valF())), []span.Span{base}},
		{"attribute without value", rawSpan(baseFields(), attrF(keyF("peer.service"))), []span.Span{base}},
		{"status split", rawSpan(baseFields(), statF(varintField(3, 2)), statF(strField(2, "m"))),
			[]span.Span{want(func(s *span.Span) { s.Status = span.StatusError })}},
		{"status split: later code wins", rawSpan(baseFields(), statF(varintField(3, 2)), statF(varintField(3, 1))),
			[]span.Span{want(func(s *span.Span) { s.Status = span.StatusOK })}},
		{"trace_id twice: last wins, bad length zeroes", rawSpan(baseFields(), lenField(1, tid[:3])),
			[]span.Span{want(func(s *span.Span) { s.TraceID = span.TraceID{} })}},
		{"span_id fixed after a bad one", rawSpan(lenField(2, sid[:2]), baseFields()), []span.Span{base}},
		{"name twice: last wins", rawSpan(baseFields(), strField(5, "second")),
			[]span.Span{want(func(s *span.Span) { s.Name = "second" })}},
		{"empty name", rawSpan(baseFields(), strField(5, "")),
			[]span.Span{want(func(s *span.Span) { s.Name = "" })}},
		{"kind truncated to int32", rawSpan(baseFields(), varintField(6, 1<<32|3)),
			[]span.Span{want(func(s *span.Span) { s.Kind = span.KindClient })}},
		{"unknown fields everywhere", cat(unknownFields, rsF(unknownFields, resF(unknownFields, rAttrF(unknownFields, keyF("service.name"), unknownFields, valF(unknownFields, sValF("orders"), unknownFields))),
			ssF(unknownFields, spanF(unknownFields, baseFields(), unknownFields, statF(unknownFields, varintField(3, 2), unknownFields),
				attrF(keyF("peer.service"), unknownFields, valF(sValF("p"), unknownFields)))))),
			[]span.Span{want(func(s *span.Span) { s.Status, s.PeerService = span.StatusError, "p" })}},
		{"known fields with the wrong wire type are unknown", cat(varintField(1, 5), rsF(fixed32Field(1, 1), varintField(2, 3), resF(svcAttr, fixed64Field(1, 1)),
			ssF(varintField(2, 1), spanF(baseFields(), varintField(5, 1), fixed32Field(1, 1), varintField(9, 1), fixed64Field(15, 0), lenField(6, []byte{1}),
				lenField(7, make([]byte, 8)), statF(lenField(3, []byte{2})), attrF(varintField(1, 1), keyF("db.name"), fixed32Field(2, 0), valF(sValF("n"))))))),
			[]span.Span{want(func(s *span.Span) { s.DBNamespace = "n" })}},
		{"non-minimal varints", cat(
			nonMinimal(1<<3|2), nonMinimal(uint64(len(rawSpan(baseFields()))-2)), rawSpan(baseFields())[2:]),
			[]span.Span{base}},
		{"non-minimal kind and int value", rawSpan(baseFields(), nonMinimal(6<<3), nonMinimal(4),
			attrF(keyF("http.status_code"), valF(nonMinimal(3<<3), []byte{0x94, 0x83, 0x80, 0x80, 0x00}))),
			[]span.Span{want(func(s *span.Span) { s.Kind, s.HTTPStatus = span.KindProducer, 404 })}},
		{"ten-byte varint", rawSpan(baseFields(), varintField(6, math.MaxUint64)),
			[]span.Span{want(func(s *span.Span) { s.Kind = span.KindUnspecified })}},
	}
	cases = append(cases, raw...)

	// A realistic request, and one span of it.
	real := otlptest.RealisticRequest(24, 7)
	var in span.Interner
	cases = append(cases, wireCase{"realistic", marshal(real), FromProto(real, &in, nil)})
	return cases
}

func TestDecode(t *testing.T) {
	for _, c := range wireCases() {
		t.Run(c.name, func(t *testing.T) {
			var req coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(c.msg, &req); err != nil {
				t.Fatalf("proto.Unmarshal rejects the case: %v", err)
			}
			if ref := FromProto(&req, new(span.Interner), nil); !reflect.DeepEqual(ref, c.want) {
				t.Errorf("FromProto:\n got  %+v\n want %+v", ref, c.want)
			}
			for _, strict := range []bool{false, true} {
				d := Decoder{Strict: strict}
				got, err := d.Decode(c.msg, nil)
				if err != nil {
					t.Fatalf("Decode (strict %v): %v", strict, err)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("Decode (strict %v):\n got  %+v\n want %+v", strict, got, c.want)
				}
			}
			checkDecode(t, c.msg)
		})
	}
}

type errCase struct {
	name    string
	msg     []byte
	lenient span.Reason // "" when the lenient Decoder accepts the message
	strict  span.Reason
}

func errCases() []errCase {
	good := slices.Clip(rawSpan(baseFields())) // so that appends copy
	badUTF8 := "caf\xc3"
	return []errCase{
		{"cut in a tag", append(good, 0x8a), span.ReasonTruncated, span.ReasonTruncated},
		{"cut in a length", append(good, 0x0a, 0x80), span.ReasonTruncated, span.ReasonTruncated},
		{"cut in a value", good[:len(good)-1], span.ReasonTruncated, span.ReasonTruncated},
		{"cut in a top-level group", append(good, groupField(7, varintField(1, 1))[:3]...), span.ReasonTruncated, span.ReasonTruncated},
		{"field number 0", append(good, 0x02, 0x00), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"field number 0 nested", rawSpan(baseFields(), []byte{0x00}), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"field number too large", append(good, protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3)...), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"wire type 6", append(good, 0x0e), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"wire type 7 nested", rawSpan(baseFields(), []byte{0x0f, 0}), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"stray end group", rawSpan(baseFields(), []byte{0x0c}), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"group end mismatch", rawSpan(baseFields(), protowire.AppendTag(protowire.AppendTag(nil, 20, protowire.StartGroupType), 21, protowire.EndGroupType)), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"unterminated nested group", rawSpan(baseFields(), protowire.AppendTag(nil, 20, protowire.StartGroupType)), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"varint overflow", rawSpan(baseFields(), []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"eleven-byte varint", rawSpan(baseFields(), []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"nested field overruns its message", rsF(resF(svcAttr), ssF(spanF(baseFields(), []byte{0x2a, 0x05, 'a'}))), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"truncated fixed64 nested", rsF(resF(svcAttr), ssF(spanF(baseFields(), []byte{0x39, 1, 2}))), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"malformed resource", rsF(resF([]byte{0x0a, 0x09}), ssF(spanF(baseFields()))), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"malformed used attribute value", rawSpan(baseFields(), attrF(keyF("peer.service"), valF([]byte{0x0a, 0x09}))), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"malformed status", rawSpan(baseFields(), statF([]byte{0x18})), span.ReasonNotProtobuf, span.ReasonNotProtobuf},

		{"invalid UTF-8 span name", rawSpan(baseFields(), strField(5, badUTF8)), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"invalid UTF-8 overridden span name", rawSpan(strField(5, badUTF8), baseFields()), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"invalid UTF-8 service.name", rsF(resF(rAttrF(keyF("service.name"), valF(sValF(badUTF8)))), ssF(spanF(baseFields()))), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"invalid UTF-8 used value", rawSpan(baseFields(), attrF(keyF("server.address"), valF(sValF(badUTF8)))), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"invalid UTF-8 lower-priority used value", rawSpan(baseFields(), attrF(keyF("server.address"), valF(sValF("a"))), attrF(keyF("net.peer.name"), valF(sValF(badUTF8)))), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"invalid UTF-8 key", rawSpan(baseFields(), attrF(keyF(badUTF8), valF(sValF("a")))), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"invalid UTF-8 key after its value", rawSpan(baseFields(), attrF(valF(sValF("a")), keyF(badUTF8))), span.ReasonNotProtobuf, span.ReasonNotProtobuf},
		{"invalid UTF-8 resource key", rsF(resF(svcAttr, rAttrF(keyF(badUTF8))), ssF(spanF(baseFields()))), span.ReasonNotProtobuf, span.ReasonNotProtobuf},

		// The documented difference: parts the lenient Decoder skips.
		{"invalid UTF-8 other value", rawSpan(baseFields(), attrF(keyF("db.statement"), valF(sValF(badUTF8)))), "", span.ReasonNotProtobuf},
		{"invalid UTF-8 other resource value", rsF(resF(svcAttr, rAttrF(keyF("host.name"), valF(sValF(badUTF8)))), ssF(spanF(baseFields()))), "", span.ReasonNotProtobuf},
		{"invalid UTF-8 overridden used value", rawSpan(baseFields(), attrF(keyF("server.address"), valF(sValF(badUTF8), iValF(1)))), "", span.ReasonNotProtobuf},
		{"invalid UTF-8 trace_state", rawSpan(baseFields(), strField(3, badUTF8)), "", span.ReasonNotProtobuf},
		{"invalid UTF-8 status message", rawSpan(baseFields(), statF(strField(2, badUTF8))), "", span.ReasonNotProtobuf},
		{"invalid UTF-8 schema_url", rsF(resF(svcAttr), ssF(spanF(baseFields())), strField(3, badUTF8)), "", span.ReasonNotProtobuf},
		{"invalid UTF-8 scope name", rsF(resF(svcAttr), ssF(lenField(1, strField(1, badUTF8)), spanF(baseFields()))), "", span.ReasonNotProtobuf},
		{"invalid UTF-8 event name", rawSpan(baseFields(), lenField(11, strField(2, badUTF8))), "", span.ReasonNotProtobuf},
		{"invalid UTF-8 in a link attribute", rawSpan(baseFields(), lenField(13, lenField(4, keyF(badUTF8)))), "", span.ReasonNotProtobuf},
		{"malformed event", rawSpan(baseFields(), lenField(11, []byte{0x00})), "", span.ReasonNotProtobuf},
		{"malformed other value", rawSpan(baseFields(), attrF(keyF("url.path"), valF([]byte{0x0a, 0x09}))), "", span.ReasonNotProtobuf},
		{"malformed array in a used value", rawSpan(baseFields(), attrF(keyF("peer.service"), valF(lenField(5, []byte{0xff})))), "", span.ReasonNotProtobuf},
		{"malformed entity ref", rsF(resF(svcAttr, lenField(3, []byte{0x0a})), ssF(spanF(baseFields()))), "", span.ReasonNotProtobuf},
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range errCases() {
		t.Run(c.name, func(t *testing.T) {
			var req coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(c.msg, &req); err == nil {
				t.Fatalf("proto.Unmarshal accepts the case")
			}
			for _, strict := range []bool{false, true} {
				wantReason := c.lenient
				if strict {
					wantReason = c.strict
				}
				d := Decoder{Strict: strict}
				dst := []span.Span{prefixSpan}
				got, err := d.Decode(c.msg, dst)
				var de *DecodeError
				switch {
				case wantReason == "" && err != nil:
					t.Errorf("Decode (strict %v): %v, want success", strict, err)
				case wantReason == "":
				case !errors.As(err, &de):
					t.Errorf("Decode (strict %v): error %v, want a *DecodeError %s", strict, err, wantReason)
				case de.Reason != wantReason:
					t.Errorf("Decode (strict %v): reason %s (%v), want %s", strict, de.Reason, err, wantReason)
				case len(got) != 1 || &got[0] != &dst[0]:
					t.Errorf("Decode (strict %v): returned %d records on error, want dst as on entry", strict, len(got))
				}
			}
			checkDecode(t, c.msg)
		})
	}
}

// TestDepthLimit checks that Strict counts nesting as proto.Unmarshal does:
// 10000 levels of messages are allowed, 10001 are not.
func TestDepthLimit(t *testing.T) {
	// request, resource_spans, scope_spans, span, attribute, value: 6 levels,
	// then two per nested array.
	nest := func(inner []byte, pairs int) []byte {
		for range pairs {
			inner = lenField(5, lenField(1, inner))
		}
		return rawSpan(baseFields(), attrF(keyF("tags"), valF(inner)))
	}
	for _, c := range []struct {
		name   string
		msg    []byte
		strict span.Reason
	}{
		{"10000 levels", nest(sValF("x"), 4997), ""},
		{"10001 levels", nest(lenField(5), 4997), span.ReasonNotProtobuf},
	} {
		t.Run(c.name, func(t *testing.T) {
			var req coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(c.msg, &req); (err == nil) != (c.strict == "") {
				t.Fatalf("proto.Unmarshal: %v", err)
			}
			checkDecode(t, c.msg)
		})
	}
}

func TestDecodeErrorText(t *testing.T) {
	var d Decoder
	good := rawSpan(baseFields())
	_, err := d.Decode(cat(good, []byte{0x0a, 0x80}), nil)
	want := fmt.Sprintf("decode otlp protobuf: truncated: resource_spans at byte %d: unexpected EOF", len(good)+1)
	if err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v does not unwrap to io.ErrUnexpectedEOF", err)
	}
}

// TestTruncations checks every prefix of a realistic request: it is either
// a valid request (cut between top-level fields) or rejected as truncated.
func TestTruncations(t *testing.T) {
	msg := marshal(otlptest.RealisticRequest(24, 3))
	var d Decoder
	for n := range len(msg) {
		var req coltracepb.ExportTraceServiceRequest
		valid := proto.Unmarshal(msg[:n], &req) == nil
		_, err := d.Decode(msg[:n], nil)
		var de *DecodeError
		switch {
		case valid && err != nil:
			t.Fatalf("prefix %d: proto.Unmarshal accepts, Decode: %v", n, err)
		case !valid && (!errors.As(err, &de) || de.Reason != span.ReasonTruncated):
			t.Fatalf("prefix %d: Decode error %v, want reason truncated", n, err)
		}
	}
}

func TestMaxSpans(t *testing.T) {
	msg := marshal(otlptest.RealisticRequest(30, 1))
	d := Decoder{MaxSpans: 30}
	got, err := d.Decode(msg, nil)
	if err != nil || len(got) != 30 {
		t.Fatalf("MaxSpans 30 of 30: %d spans, %v", len(got), err)
	}
	d.MaxSpans = 29
	dst := []span.Span{prefixSpan}
	got, err = d.Decode(msg, dst)
	var de *DecodeError
	if !errors.As(err, &de) || de.Reason != span.ReasonTooManySpans || len(got) != 1 {
		t.Fatalf("MaxSpans 29 of 30: %d spans, %v; want too_many_spans and dst unchanged", len(got), err)
	}
}

// TestDifferential runs the differential check over truncations and bit
// flips of realistic requests, so plain go test covers what the fuzzer
// explores.
func TestDifferential(t *testing.T) {
	msgs := [][]byte{marshal(otlptest.RealisticRequest(12, 1))}
	for _, c := range wireCases() {
		msgs = append(msgs, c.msg)
	}
	for _, c := range errCases() {
		if len(c.msg) < 1000 {
			msgs = append(msgs, c.msg)
		}
	}
	for i, msg := range msgs {
		for _, m := range mutations(msg, int64(i)) {
			checkDecode(t, m)
		}
	}
}

// mutations returns msg, some prefixes of it, and copies with one bit
// flipped or one byte changed, chosen deterministically from seed.
func mutations(msg []byte, seed int64) [][]byte {
	out := [][]byte{msg}
	if len(msg) == 0 {
		return out
	}
	x := uint64(seed)*0x9e3779b97f4a7c15 + 1
	next := func(n int) int {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return int(x % uint64(n))
	}
	for range 8 {
		out = append(out, msg[:next(len(msg))])
	}
	for range 24 {
		m := append([]byte(nil), msg...)
		i := next(len(m))
		if next(2) == 0 {
			m[i] ^= 1 << next(8)
		} else {
			m[i] = []byte{0x00, 0x80, 0xff, 0x7f, 0x0a, 0x12, 0x0c, 0x0b}[next(8)]
		}
		out = append(out, m)
	}
	return out
}

func TestDecodeAllocs(t *testing.T) {
	msg := marshal(otlptest.RealisticRequest(1000, 1))
	for _, strict := range []bool{false, true} {
		d := Decoder{Strict: strict}
		dst := make([]span.Span, 0, 1000)
		dst, _ = d.Decode(msg, dst) // learn the names
		allocs := testing.AllocsPerRun(20, func() {
			var err error
			if dst, err = d.Decode(msg, dst[:0]); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("steady-state Decode (strict %v) of 1000 spans: %v allocations, want 0", strict, allocs)
		}
	}
}

func TestParseInt32(t *testing.T) {
	for _, s := range []string{"", "+", "-", "0", "-0", "+0", "200", "0200", "2147483647", "2147483648",
		"-2147483648", "-2147483649", "99999999999999999999", "00000000000000000000001", "1_0", " 1", "1 ", "0x10", "٣"} {
		n, ok := parseInt32(s)
		m, err := parseInt32Ref(s)
		if ok != (err == nil) || (ok && n != m) {
			t.Errorf("parseInt32(%q) = %d, %v; strconv says %d, %v", s, n, ok, m, err)
		}
		if nb, okb := parseInt32([]byte(s)); nb != n || okb != ok {
			t.Errorf("parseInt32([]byte(%q)) differs from the string version", s)
		}
	}
}

func parseInt32Ref(s string) (int32, error) {
	v, err := strconv.ParseInt(s, 10, 32)
	return int32(v), err
}
