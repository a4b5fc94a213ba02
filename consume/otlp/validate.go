package otlp

import (
	"errors"
	"sync"
	"unicode/utf8"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// This file is Decoder.Strict: validation of the parts of a message the
// decoder skips, against the OTLP schema, as proto.Unmarshal validates them
// but without building anything. The schema is read from the generated
// descriptors, so it follows the go.opentelemetry.io/proto/otlp version in
// go.mod.

// walkedMsg names a message Decoder walks, in its place in the request:
// KeyValue and AnyValue appear at two nesting levels.
type walkedMsg uint8

const (
	wRequest       walkedMsg = iota // ExportTraceServiceRequest, level 1
	wResourceSpans                  // level 2
	wResource                       // level 3
	wScopeSpans                     // level 3
	wResourceAttr                   // KeyValue in Resource.attributes, level 4
	wSpan                           // level 4
	wResourceValue                  // AnyValue of a resource attribute, level 5
	wSpanAttr                       // KeyValue in Span.attributes, level 5
	wStatus                         // level 5
	wSpanValue                      // AnyValue of a span attribute, level 6
	nWalked
)

// level is the nesting level of each walked message, the request being 1,
// counted as proto.Unmarshal counts against its recursion limit.
var level = [nWalked]int{1, 2, 3, 3, 4, 4, 5, 5, 5, 6}

// Field kinds that need more than a wire-structure check.
const (
	fkPlain    = iota // scalar, bytes, or unknown: wire structure only
	fkString          // proto3 string: valid UTF-8
	fkMessage         // message: recurse
	fkPacked          // repeated varint scalar: a packed list may be used
	fkPacked32        // repeated fixed32 scalar
	fkPacked64        // repeated fixed64 scalar
)

type fieldSchema struct {
	kind uint8
	msg  *msgSchema
}

// msgSchema lists a message's fields by number.
type msgSchema struct {
	fields []fieldSchema
}

// field returns the schema of field number num, fkPlain when unknown.
func (m *msgSchema) field(num uint64) fieldSchema {
	if num < uint64(len(m.fields)) {
		return m.fields[num]
	}
	return fieldSchema{}
}

// schemas returns the schema of each walked message.
var schemas = sync.OnceValue(func() *[nWalked]*msgSchema {
	req := compile((&coltracepb.ExportTraceServiceRequest{}).ProtoReflect().Descriptor(), map[protoreflect.FullName]*msgSchema{})
	sub := func(m *msgSchema, num uint64) *msgSchema { return m.field(num).msg }
	rs := sub(req, 1)
	res := sub(rs, 1)
	ss := sub(rs, 2)
	sp := sub(ss, 2)
	kv := sub(res, 1)
	av := sub(kv, 2)
	return &[nWalked]*msgSchema{
		wRequest: req, wResourceSpans: rs, wResource: res, wScopeSpans: ss,
		wResourceAttr: kv, wSpan: sp, wResourceValue: av, wSpanAttr: kv,
		wStatus: sub(sp, 15), wSpanValue: av,
	}
})

func compile(md protoreflect.MessageDescriptor, done map[protoreflect.FullName]*msgSchema) *msgSchema {
	if m, ok := done[md.FullName()]; ok {
		return m
	}
	m := &msgSchema{}
	done[md.FullName()] = m
	fds := md.Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		n := int(fd.Number())
		if n >= len(m.fields) {
			m.fields = append(m.fields, make([]fieldSchema, n+1-len(m.fields))...)
		}
		f := &m.fields[n]
		switch k := fd.Kind(); {
		case k == protoreflect.StringKind && fd.Syntax() == protoreflect.Proto3:
			f.kind = fkString
		case k == protoreflect.MessageKind:
			f.kind, f.msg = fkMessage, compile(fd.Message(), done)
		case k == protoreflect.GroupKind:
			panic("otlp: group fields are not supported") // none in OTLP
		case fd.IsList() && k != protoreflect.StringKind && k != protoreflect.BytesKind:
			switch k {
			case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
				f.kind = fkPacked32
			case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
				f.kind = fkPacked64
			default:
				f.kind = fkPacked
			}
		}
	}
	return m
}

var errDepth = errors.New("exceeds maximum recursion depth")

// strictField validates v, the value of the length-delimited field t that
// walked message m skipped.
func (d *Decoder) strictField(m walkedMsg, t uint64, v []byte) error {
	f := d.schemas[m].field(t >> 3)
	if f.kind == fkPlain {
		return nil
	}
	return d.checkField(f, v, protowire.DefaultRecursionLimit-level[m])
}

// strictValues validates the values of the KeyValue kv (walked message m)
// when Decoder does not use them; v is the first of its nval values.
func (d *Decoder) strictValues(kv, v []byte, nval int, m walkedMsg) error {
	switch {
	case nval == 0:
		return nil
	case nval > 1:
		return d.checkMsg(kv, d.schemas[m], protowire.DefaultRecursionLimit-level[m]+1)
	case len(v) > 1 && v[0] == byte(tagString) && v[1] < 0x80 && int(v[1])+2 == len(v):
		// The usual value: only a short string.
		if !utf8.Valid(v[2:]) {
			return d.fail(v, "string value", errUTF8)
		}
		return nil
	}
	return d.checkMsg(v, d.schemas[m].field(tagValue>>3).msg, protowire.DefaultRecursionLimit-level[m])
}

// checkField validates v as a length-delimited field f whose message, if it
// is one, may use depth more levels.
func (d *Decoder) checkField(f fieldSchema, v []byte, depth int) error {
	switch f.kind {
	case fkString:
		if !utf8.Valid(v) {
			return d.fail(v, "string", errUTF8)
		}
	case fkMessage:
		return d.checkMsg(v, f.msg, depth)
	case fkPacked:
		for b := v; len(b) > 0; {
			_, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return d.failCode(b, "packed field", n)
			}
			b = b[n:]
		}
	case fkPacked32, fkPacked64:
		if size := 4 << (f.kind - fkPacked32); len(v)%size != 0 {
			return d.fail(v, "packed field", errors.New("length not a multiple of the element size"))
		}
	}
	return nil
}

// checkMsg validates b as message m, which may use depth levels including
// its own, counting as proto.Unmarshal does.
func (d *Decoder) checkMsg(b []byte, m *msgSchema, depth int) error {
	if depth--; depth < 0 {
		return d.fail(b, "message", errDepth)
	}
	for len(b) > 0 {
		t, n, err := tag(b)
		if n < 0 {
			return d.fail(b, "tag", err)
		}
		b = b[n:]
		f := m.field(t >> 3)
		if f.kind == fkPlain || t&7 != wBytes {
			n := protowire.ConsumeFieldValue(protowire.Number(t>>3), protowire.Type(t&7), b)
			if n < 0 {
				return d.failCode(b, "field", n)
			}
			b = b[n:]
			continue
		}
		v, n := bytesField(b)
		if n < 0 {
			return d.failCode(b, "field", n)
		}
		if err := d.checkField(f, v, depth); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
