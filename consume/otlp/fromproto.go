package otlp

import (
	"strconv"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/causeway/causeway/span"
)

// FromProto appends one span.Span for every span in req to dst and returns
// the extended slice. It is the reference conversion: Decoder.Decode must
// produce exactly what FromProto produces from proto.Unmarshal's result, and
// the differential tests hold it to that. Strings are interned with in.
//
// The rules:
//   - Service is the resource attribute service.name when it is a non-empty
//     string, else "". Spans without it are still returned; the caller
//     rejects them with span.Limits.Check.
//   - TraceID, SpanID and ParentID are copied only when exactly 16, 8 and 8
//     bytes long; any other length leaves them zero (so ParentID is zero for
//     an empty parent).
//   - Kind is kept when it is within the OTLP enum (0–5), else
//     KindUnspecified; a status code above 2 (or negative) becomes
//     StatusUnset.
//   - The attribute-fed fields follow the rule described in attrs.go: the
//     newer semantic-convention key wins regardless of order, a repeated
//     key overrides the earlier one, empty strings and values of the wrong
//     type do not count. HTTPStatus accepts an int value or a string holding
//     a decimal number (strconv.ParseInt(s, 10, 32)); GRPCStatus accepts an
//     int only and is -1 when absent. Integers outside int32 do not count.
func FromProto(req *coltracepb.ExportTraceServiceRequest, in *span.Interner, dst []span.Span) []span.Span {
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if isServiceName(kv.GetKey()) {
				if sv, ok := kv.GetValue().GetValue().(*commonpb.AnyValue_StringValue); ok && sv.StringValue != "" {
					service = sv.StringValue
				}
			}
		}
		service = in.String(service)
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := span.Span{
					Service: service,
					Name:    in.String(sp.GetName()),
					Kind:    kindOf(int32(sp.GetKind())),
					Start:   int64(sp.GetStartTimeUnixNano()),
					End:     int64(sp.GetEndTimeUnixNano()),
					Status:  statusOf(int32(sp.GetStatus().GetCode())),
				}
				if id := sp.GetTraceId(); len(id) == len(s.TraceID) {
					copy(s.TraceID[:], id)
				}
				if id := sp.GetSpanId(); len(id) == len(s.SpanID) {
					copy(s.SpanID[:], id)
				}
				if id := sp.GetParentSpanId(); len(id) == len(s.ParentID) {
					copy(s.ParentID[:], id)
				}
				var p picks[string]
				for _, kv := range sp.GetAttributes() {
					k := spanKey(kv.GetKey())
					if k.t == tNone {
						continue
					}
					switch v := kv.GetValue().GetValue().(type) {
					case *commonpb.AnyValue_StringValue:
						if k.t == tHTTPStatus {
							// The reference uses strconv; the decoder its own
							// parser, and the differential tests compare them.
							if n, err := strconv.ParseInt(v.StringValue, 10, 32); err == nil {
								p.offerInt(k, n)
							}
							continue
						}
						p.offerString(k, v.StringValue)
					case *commonpb.AnyValue_IntValue:
						p.offerInt(k, v.IntValue)
					}
				}
				s.HTTPStatus = p.http
				s.GRPCStatus = p.grpcStatus()
				s.PeerService = in.String(p.str[tPeerService])
				s.ServerAddress = in.String(p.str[tServerAddress])
				s.DBSystem = in.String(p.str[tDBSystem])
				s.DBNamespace = in.String(p.str[tDBNamespace])
				s.MessagingSystem = in.String(p.str[tMessagingSystem])
				s.MessagingDest = in.String(p.str[tMessagingDest])
				dst = append(dst, s)
			}
		}
	}
	return dst
}
