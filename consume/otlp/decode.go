// Package otlp decodes OTLP trace export requests, as the OpenTelemetry
// Collector's kafka exporter writes them, into span.Span records.
//
// Decoder is the hot path: it walks the protobuf wire format directly into
// a reused slice of records, allocating nothing per span once the names in
// the stream have been seen. FromProto is the reference conversion from the
// generated types; the differential tests and FuzzDecodeProto hold Decoder
// to producing exactly what proto.Unmarshal followed by FromProto produces.
package otlp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/causeway/causeway/span"
)

// DecodeError is the error Decoder.Decode returns for a message it rejects.
// Reason is meant for a metric label; Err says what was wrong and where.
type DecodeError struct {
	Reason span.Reason
	Err    error
}

// Error returns "decode otlp protobuf: REASON: DETAIL".
func (e *DecodeError) Error() string {
	return "decode otlp protobuf: " + string(e.Reason) + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// Decoder decodes OTLP/protobuf ExportTraceServiceRequest messages into
// span.Span records following the rules of FromProto. The zero value is
// ready to use. A Decoder keeps an interner of the names it has seen, so
// reuse one per stream; it is not safe for concurrent use.
//
// Validation. Decode rejects every message proto.Unmarshal rejects, except
// for problems inside the parts it skips. It walks the request,
// ResourceSpans, Resource, ScopeSpans, Span and Status messages and the
// KeyValue messages of resource and span attributes, checking their wire
// structure as proto.Unmarshal does (tags, field numbers, wire types,
// varints, lengths, groups in unknown fields), the UTF-8 of every span name
// and attribute key, and, for each attribute whose key it uses (service.name
// in a resource, the keys listed in attrs.go in a span), its AnyValue, whose
// string value must be valid UTF-8 when it is the member the oneof ends up
// holding. It checks only that the following fit in their enclosing message,
// not what they hold: ResourceSpans and ScopeSpans schema_url,
// ScopeSpans.scope, Span.trace_state, Span.events, Span.links,
// Status.message, Resource.entity_refs, the value of every other attribute,
// and the array_value and kvlist_value of used ones. Precisely: Decode
// accepts a message exactly when proto.Unmarshal accepts it against the OTLP
// schema with those fields declared bytes and the used attribute values pass
// the check above; diff_test.go and FuzzDecodeProto test it that way.
//
// So invalid UTF-8 in, say, a db.statement or an exception event costs
// nothing and does not drop the other spans of the batch. The Collector
// forwards such strings without checking them (opentelemetry-collector
// issue 11449), and stricter decoders then reject whole batches. Set Strict
// to reject them anyway, exactly as proto.Unmarshal does.
type Decoder struct {
	// MaxSpans is the most spans one message may hold; a message with more
	// is rejected with span.ReasonTooManySpans. Zero means no limit.
	MaxSpans int
	// Strict makes Decode reject exactly the messages proto.Unmarshal
	// rejects, by also validating the parts it skips, recursion limit
	// included. It costs about a quarter more time on realistic spans
	// (BenchmarkDecodeProto/strict).
	Strict bool

	in    span.Interner
	cache [512]string // see intern
	n0    int         // len(dst) on entry to Decode
	base  int         // cap of the message being decoded, to report byte offsets
	// schemas are the walked messages' schemas, set when Strict.
	schemas *[nWalked]*msgSchema
}

// Decode appends one record per span in msg, an OTLP/protobuf
// ExportTraceServiceRequest, to dst and returns the extended slice. It does
// not retain msg; the records share no memory with it.
//
// On error it returns dst[:len(dst)] as it was on entry, with no partial
// records, and a *DecodeError whose Reason is span.ReasonTruncated when msg
// ends inside a top-level field (a message cut short), span.ReasonTooManySpans
// when MaxSpans is exceeded, and span.ReasonNotProtobuf for anything else
// malformed. Decode may overwrite dst's spare capacity even on error.
func (d *Decoder) Decode(msg []byte, dst []span.Span) ([]span.Span, error) {
	d.n0, d.base = len(dst), cap(msg)
	if d.Strict && d.schemas == nil {
		d.schemas = schemas()
	}
	out, err := d.request(msg, dst)
	if err != nil {
		return dst[:d.n0], err
	}
	return out, nil
}

// Wire tags (field number << 3 | wire type) of the fields Decoder reads.
const (
	wVarint  = uint64(protowire.VarintType)
	wFixed64 = uint64(protowire.Fixed64Type)
	wBytes   = uint64(protowire.BytesType)

	tagResourceSpans = 1<<3 | wBytes // ExportTraceServiceRequest.resource_spans

	tagResource   = 1<<3 | wBytes // ResourceSpans.resource
	tagScopeSpans = 2<<3 | wBytes // ResourceSpans.scope_spans

	tagResourceAttr = 1<<3 | wBytes // Resource.attributes

	tagSpan = 2<<3 | wBytes // ScopeSpans.spans

	tagTraceID  = 1<<3 | wBytes   // Span.trace_id
	tagSpanID   = 2<<3 | wBytes   // Span.span_id
	tagParentID = 4<<3 | wBytes   // Span.parent_span_id
	tagName     = 5<<3 | wBytes   // Span.name
	tagKind     = 6<<3 | wVarint  // Span.kind
	tagStart    = 7<<3 | wFixed64 // Span.start_time_unix_nano
	tagEnd      = 8<<3 | wFixed64 // Span.end_time_unix_nano
	tagAttr     = 9<<3 | wBytes   // Span.attributes
	tagStatus   = 15<<3 | wBytes  // Span.status

	tagStatusCode = 3<<3 | wVarint // Status.code

	tagKey   = 1<<3 | wBytes // KeyValue.key
	tagValue = 2<<3 | wBytes // KeyValue.value

	tagString = 1<<3 | wBytes   // AnyValue.string_value
	tagBool   = 2<<3 | wVarint  // AnyValue.bool_value
	tagInt    = 3<<3 | wVarint  // AnyValue.int_value
	tagDouble = 4<<3 | wFixed64 // AnyValue.double_value
	tagArray  = 5<<3 | wBytes   // AnyValue.array_value
	tagKVList = 6<<3 | wBytes   // AnyValue.kvlist_value
	tagBytes  = 7<<3 | wBytes   // AnyValue.bytes_value
	tagStrIdx = 8<<3 | wVarint  // AnyValue.string_value_strindex
)

var (
	errFieldNumber = errors.New("invalid field number")
	errUTF8        = errors.New("invalid UTF-8")
)

// fail returns the *DecodeError for a malformed message; at is the rest of
// the message from where the problem was found.
func (d *Decoder) fail(at []byte, what string, err error) error {
	return &DecodeError{
		Reason: span.ReasonNotProtobuf,
		Err:    fmt.Errorf("%s at byte %d: %w", what, d.base-cap(at), err),
	}
}

// failCode is fail for a protowire error code.
func (d *Decoder) failCode(at []byte, what string, code int) error {
	return d.fail(at, what, protowire.ParseError(code))
}

// varint reads a varint, inline for the common one- and two-byte cases.
func varint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	if len(b) > 1 && b[1] < 0x80 {
		return uint64(b[0]&0x7f) | uint64(b[1])<<7, 2
	}
	return protowire.ConsumeVarint(b)
}

// bytesField reads a length-delimited value, inline for short ones.
func bytesField(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 && int(b[0]) < len(b) {
		return b[1 : 1+b[0]], 1 + int(b[0])
	}
	return protowire.ConsumeBytes(b)
}

// validUTF8 is utf8.Valid, faster for the short ASCII strings of names and
// keys.
func validUTF8(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return utf8.Valid(b)
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return utf8.Valid(b)
		}
	}
	return true
}

// intern returns the interned string equal to b. A small direct-mapped
// cache in front of the Interner's map serves the few names that make up
// most spans without hashing them.
func (d *Decoder) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	h := uint(len(b))*31 + uint(b[0])*7 + uint(b[len(b)-1]) + uint(b[len(b)/2])*131
	c := &d.cache[h%uint(len(d.cache))]
	if *c == string(b) {
		return *c
	}
	*c = d.in.Bytes(b)
	return *c
}

// tag reads a field tag and checks its field number as proto.Unmarshal
// does. It returns n < 0 on error, with err describing it.
func tag(b []byte) (t uint64, n int, err error) {
	t, n = varint(b)
	if n < 0 {
		return 0, n, protowire.ParseError(n)
	}
	if t>>3 < uint64(protowire.MinValidNumber) || t>>3 > uint64(protowire.MaxValidNumber) {
		return 0, -1, errFieldNumber
	}
	return t, n, nil
}

// skip consumes the value of field t of walked message m that Decoder does
// not read, validating its wire structure as proto.Unmarshal does for
// unknown fields and, in Strict mode, its contents (see strictField). The
// tag has already been consumed from b.
func (d *Decoder) skip(b []byte, t uint64, m walkedMsg) (int, error) {
	if t&7 != wBytes {
		n := protowire.ConsumeFieldValue(protowire.Number(t>>3), protowire.Type(t&7), b)
		if n < 0 {
			return n, d.failCode(b, "field", n)
		}
		return n, nil
	}
	v, n := bytesField(b)
	if n < 0 {
		return n, d.failCode(b, "field", n)
	}
	if d.Strict {
		if err := d.strictField(m, t, v); err != nil {
			return -1, err
		}
	}
	return n, nil
}

// request walks an ExportTraceServiceRequest. It is the only level at which
// running out of input means the message was cut short: a nested field that
// overruns its enclosing message is malformed, not truncated.
func (d *Decoder) request(b []byte, dst []span.Span) ([]span.Span, error) {
	for len(b) > 0 {
		t, n, err := tag(b)
		if n < 0 {
			return dst, d.top(b, "request tag", err)
		}
		b = b[n:]
		if t != tagResourceSpans {
			n, err := d.skip(b, t, wRequest)
			if err != nil {
				return dst, d.top(b, "request field", err)
			}
			b = b[n:]
			continue
		}
		v, n := bytesField(b)
		if n < 0 {
			return dst, d.top(b, "resource_spans", protowire.ParseError(n))
		}
		if dst, err = d.resourceSpans(v, dst); err != nil {
			return dst, err
		}
		b = b[n:]
	}
	return dst, nil
}

// top is fail for the top level, where io.ErrUnexpectedEOF is truncation.
func (d *Decoder) top(at []byte, what string, err error) error {
	var e *DecodeError
	if !errors.As(err, &e) {
		e = d.fail(at, what, err).(*DecodeError)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		e.Reason = span.ReasonTruncated
	}
	return e
}

// resourceSpans walks one ResourceSpans. The resource may follow the scope
// spans on the wire, and may even be split in several parts that protobuf
// merges, so Service is set on this resource's spans at the end.
func (d *Decoder) resourceSpans(b []byte, dst []span.Span) ([]span.Span, error) {
	first := len(dst)
	var svc []byte
	for len(b) > 0 {
		t, n, err := tag(b)
		if n < 0 {
			return dst, d.fail(b, "resource_spans tag", err)
		}
		b = b[n:]
		switch t {
		case tagScopeSpans:
			v, n := bytesField(b)
			if n < 0 {
				return dst, d.failCode(b, "scope_spans", n)
			}
			if dst, err = d.scopeSpans(v, dst); err != nil {
				return dst, err
			}
			b = b[n:]
		case tagResource:
			v, n := bytesField(b)
			if n < 0 {
				return dst, d.failCode(b, "resource", n)
			}
			if err := d.resource(v, &svc); err != nil {
				return dst, err
			}
			b = b[n:]
		default:
			n, err := d.skip(b, t, wResourceSpans)
			if err != nil {
				return dst, err
			}
			b = b[n:]
		}
	}
	if service := d.intern(svc); service != "" {
		for i := first; i < len(dst); i++ {
			dst[i].Service = service
		}
	}
	return dst, nil
}

// resource walks a Resource, leaving in *svc the service.name value that
// wins (the last non-empty string one).
func (d *Decoder) resource(b []byte, svc *[]byte) error {
	for len(b) > 0 {
		t, n, err := tag(b)
		if n < 0 {
			return d.fail(b, "resource tag", err)
		}
		b = b[n:]
		if t != tagResourceAttr {
			n, err := d.skip(b, t, wResource)
			if err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		kv, n := bytesField(b)
		if n < 0 {
			return d.failCode(b, "resource attribute", n)
		}
		b = b[n:]
		k, v, nv, err := d.keyValue(kv, wResourceAttr)
		if err != nil {
			return err
		}
		if !isServiceName(k) {
			if d.Strict {
				if err := d.strictValues(kv, v, nv, wResourceAttr); err != nil {
					return err
				}
			}
			continue
		}
		var av anyValue
		if err := d.values(kv, v, nv, &av, wResourceValue); err != nil {
			return err
		}
		if av.kind == avString && len(av.str) > 0 {
			*svc = av.str
		}
	}
	return nil
}

// scopeSpans walks a ScopeSpans, appending its spans to dst.
func (d *Decoder) scopeSpans(b []byte, dst []span.Span) ([]span.Span, error) {
	for len(b) > 0 {
		t, n, err := tag(b)
		if n < 0 {
			return dst, d.fail(b, "scope_spans tag", err)
		}
		b = b[n:]
		if t != tagSpan {
			n, err := d.skip(b, t, wScopeSpans)
			if err != nil {
				return dst, err
			}
			b = b[n:]
			continue
		}
		v, n := bytesField(b)
		if n < 0 {
			return dst, d.failCode(b, "span", n)
		}
		if d.MaxSpans > 0 && len(dst)-d.n0 >= d.MaxSpans {
			return dst, &DecodeError{
				Reason: span.ReasonTooManySpans,
				Err:    fmt.Errorf("more than %d spans", d.MaxSpans),
			}
		}
		dst = append(dst, span.Span{})
		if err := d.span(v, &dst[len(dst)-1]); err != nil {
			return dst, err
		}
		b = b[n:]
	}
	return dst, nil
}

// span walks one Span into s, which is zero on entry. For every field the
// last occurrence wins and Status messages merge, as in proto.Unmarshal.
// It is the hot loop, so one-byte tags and lengths are read inline.
func (d *Decoder) span(b []byte, s *span.Span) error {
	var (
		name   []byte
		kind   int32
		status int32
		p      picks[[]byte]
	)
	for len(b) > 0 {
		t := uint64(b[0])
		if t-8 < 0x80-8 { // one-byte tag with a valid field number
			b = b[1:]
		} else {
			var n int
			var err error
			if t, n, err = tag(b); n < 0 {
				return d.fail(b, "span tag", err)
			}
			b = b[n:]
		}
		var v []byte // the value of a length-delimited field
		if t&7 == wBytes {
			if len(b) > 0 && b[0] < 0x80 && int(b[0]) < len(b) {
				v, b = b[1:1+b[0]], b[1+b[0]:]
			} else {
				var n int
				if v, n = protowire.ConsumeBytes(b); n < 0 {
					return d.failCode(b, "span field", n)
				}
				b = b[n:]
			}
		}
		switch t {
		case tagAttr:
			if err := d.spanAttr(v, &p); err != nil {
				return err
			}
		case tagStart, tagEnd:
			if len(b) < 8 {
				return d.fail(b, "span time", io.ErrUnexpectedEOF)
			}
			if t == tagStart {
				s.Start = int64(binary.LittleEndian.Uint64(b))
			} else {
				s.End = int64(binary.LittleEndian.Uint64(b))
			}
			b = b[8:]
		case tagTraceID:
			s.TraceID = span.TraceID{}
			if len(v) == len(s.TraceID) {
				s.TraceID = span.TraceID(v)
			}
		case tagSpanID:
			s.SpanID = span.ID{}
			if len(v) == len(s.SpanID) {
				s.SpanID = span.ID(v)
			}
		case tagParentID:
			s.ParentID = span.ID{}
			if len(v) == len(s.ParentID) {
				s.ParentID = span.ID(v)
			}
		case tagName:
			if !validUTF8(v) {
				return d.fail(v, "span name", errUTF8)
			}
			name = v
		case tagKind:
			if len(b) > 0 && b[0] < 0x80 {
				kind, b = int32(b[0]), b[1:]
				break
			}
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return d.failCode(b, "span kind", n)
			}
			kind, b = int32(x), b[n:]
		case tagStatus:
			if err := d.status(v, &status); err != nil {
				return err
			}
		default:
			if t&7 == wBytes {
				if d.Strict {
					if err := d.strictField(wSpan, t, v); err != nil {
						return err
					}
				}
				break
			}
			n := protowire.ConsumeFieldValue(protowire.Number(t>>3), protowire.Type(t&7), b)
			if n < 0 {
				return d.failCode(b, "span field", n)
			}
			b = b[n:]
		}
	}
	s.Name = d.intern(name)
	s.Kind = kindOf(kind)
	s.Status = statusOf(status)
	s.HTTPStatus = p.http
	s.GRPCStatus = p.grpcStatus()
	for i, str := range p.str[tPeerService:] {
		if len(str) > 0 {
			switch target(i) + tPeerService {
			case tPeerService:
				s.PeerService = d.intern(str)
			case tServerAddress:
				s.ServerAddress = d.intern(str)
			case tDBSystem:
				s.DBSystem = d.intern(str)
			case tDBNamespace:
				s.DBNamespace = d.intern(str)
			case tMessagingSystem:
				s.MessagingSystem = d.intern(str)
			case tMessagingDest:
				s.MessagingDest = d.intern(str)
			}
		}
	}
	return nil
}

// status walks a Status message, updating *code.
func (d *Decoder) status(b []byte, code *int32) error {
	for len(b) > 0 {
		t, n, err := tag(b)
		if n < 0 {
			return d.fail(b, "status tag", err)
		}
		b = b[n:]
		if t == tagStatusCode {
			v, n := varint(b)
			if n < 0 {
				return d.failCode(b, "status code", n)
			}
			*code = int32(v)
			b = b[n:]
			continue
		}
		if n, err = d.skip(b, t, wStatus); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// spanAttr walks one span attribute and offers its value to p when the key
// is one we use.
func (d *Decoder) spanAttr(kv []byte, p *picks[[]byte]) error {
	k, v, nv, err := d.keyValue(kv, wSpanAttr)
	if err != nil {
		return err
	}
	key := spanKey(k)
	if key.t == tNone {
		if d.Strict {
			return d.strictValues(kv, v, nv, wSpanAttr)
		}
		return nil
	}
	var av anyValue
	if err := d.values(kv, v, nv, &av, wSpanValue); err != nil {
		return err
	}
	switch av.kind {
	case avString:
		p.offerString(key, av.str)
	case avInt:
		p.offerInt(key, av.i)
	}
	return nil
}

// keyValue walks a KeyValue (walked message m), returning its key (the last
// one, checked for UTF-8), its first value and the number of values. A
// KeyValue with more than one value field is legal protobuf: the values
// merge.
func (d *Decoder) keyValue(b []byte, m walkedMsg) (key, val []byte, nval int, err error) {
	// Fast paths: one key and one value of short lengths, in field order
	// (the generated marshalers) or the other way round (the Collector's
	// pdata marshaler writes a message's fields last first).
	if len(b) > 3 && b[1] < 0x80 && int(b[1])+3 < len(b) {
		f, r := b[2:2+b[1]], b[2+b[1]:]
		if r[1] < 0x80 && int(r[1])+2 == len(r) {
			var k, v []byte
			ok := true
			switch {
			case b[0] == byte(tagKey) && r[0] == byte(tagValue):
				k, v = f, r[2:]
			case b[0] == byte(tagValue) && r[0] == byte(tagKey):
				k, v = r[2:], f
			default:
				ok = false
			}
			if ok {
				if !validUTF8(k) {
					return nil, nil, 0, d.fail(k, "attribute key", errUTF8)
				}
				return k, v, 1, nil
			}
		}
	}
	for len(b) > 0 {
		t, n, err := tag(b)
		if n < 0 {
			return nil, nil, 0, d.fail(b, "attribute tag", err)
		}
		b = b[n:]
		switch t {
		case tagKey:
			v, n := bytesField(b)
			if n < 0 {
				return nil, nil, 0, d.failCode(b, "attribute key", n)
			}
			if !validUTF8(v) {
				return nil, nil, 0, d.fail(b, "attribute key", errUTF8)
			}
			key = v
			b = b[n:]
		case tagValue:
			v, n := bytesField(b)
			if n < 0 {
				return nil, nil, 0, d.failCode(b, "attribute value", n)
			}
			if nval == 0 {
				val = v
			}
			nval++
			b = b[n:]
		default:
			n, err := d.skip(b, t, m)
			if err != nil {
				return nil, nil, 0, err
			}
			b = b[n:]
		}
	}
	return key, val, nval, nil
}

// Kinds of anyValue.
const (
	avNone   = iota // no member of the oneof set
	avString        // string_value
	avInt           // int_value
	avOther         // any other member
)

// anyValue is the part of an AnyValue that Decoder uses.
type anyValue struct {
	kind uint8
	str  []byte
	i    int64
}

// values walks the nval value fields of the KeyValue kv into av (walked
// message m), in order, as protobuf merges them; v is the first, already
// located. The string value, when it is the member of the oneof that ends
// up set, must be valid UTF-8.
func (d *Decoder) values(kv, v []byte, nval int, av *anyValue, m walkedMsg) error {
	if nval == 1 {
		if err := d.anyValue(v, av, m); err != nil {
			return err
		}
	} else if nval > 1 {
		for len(kv) > 0 { // kv was walked once by keyValue: it is well formed
			t, n, _ := tag(kv)
			kv = kv[n:]
			v, n := bytesField(kv)
			if t&7 != wBytes {
				n = protowire.ConsumeFieldValue(protowire.Number(t>>3), protowire.Type(t&7), kv)
			} else if t == tagValue {
				if err := d.anyValue(v, av, m); err != nil {
					return err
				}
			}
			kv = kv[n:]
		}
	}
	if av.kind == avString && !validUTF8(av.str) {
		return d.fail(av.str, "string value", errUTF8)
	}
	return nil
}

// anyValue walks an AnyValue (walked message m) into av. The last member of
// the oneof present wins, as in proto.Unmarshal; a member with the wrong
// wire type is an unknown field and changes nothing.
func (d *Decoder) anyValue(b []byte, av *anyValue, m walkedMsg) error {
	for len(b) > 0 {
		t, n, err := tag(b)
		if n < 0 {
			return d.fail(b, "value tag", err)
		}
		b = b[n:]
		switch t {
		case tagString:
			v, n := bytesField(b)
			if n < 0 {
				return d.failCode(b, "string value", n)
			}
			if d.Strict && !utf8.Valid(v) { // else only the final one is checked
				return d.fail(v, "string value", errUTF8)
			}
			av.kind, av.str = avString, v
			b = b[n:]
			continue
		case tagInt:
			v, n := varint(b)
			if n < 0 {
				return d.failCode(b, "int value", n)
			}
			av.kind, av.i = avInt, int64(v)
			b = b[n:]
			continue
		case tagBool, tagDouble, tagArray, tagKVList, tagBytes, tagStrIdx:
			av.kind = avOther
		}
		if n, err = d.skip(b, t, m); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
