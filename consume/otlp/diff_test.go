package otlp

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"unicode/utf8"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/causeway/causeway/consume/otlp/otlptest"
	"github.com/causeway/causeway/span"
)

// This file is the differential check between Decoder and the reference
// path (proto.Unmarshal, then FromProto), used by TestDifferential and
// FuzzDecodeProto.
//
// Decoder (not Strict) skips parts of a message without validating them, so
// it accepts some messages proto.Unmarshal rejects. To tell that documented
// difference apart from a bug, the check decodes the message a third way,
// with proto.Unmarshal against a relaxed copy of the OTLP schema in which
// exactly the parts Decoder skips are opaque bytes (relaxedFields), and then
// applies the one rule a schema cannot express: the value of an attribute
// whose key Decoder uses is parsed as an AnyValue, and its string value, if
// that is the member set, must be valid UTF-8. A message the strict parse
// rejects but this relaxed parse accepts is in the documented class; Decoder
// must then accept it and produce the relaxed parse's spans. Any other
// rejection must be a rejection by Decoder too.

// relaxedFields are the fields Decoder does not validate, declared bytes in
// the relaxed schema. KeyValue.value is also made repeated, so that every
// occurrence survives the parse and can be merged as protobuf would.
var relaxedFields = []protoreflect.FullName{
	"opentelemetry.proto.trace.v1.ResourceSpans.schema_url",
	"opentelemetry.proto.trace.v1.ScopeSpans.scope",
	"opentelemetry.proto.trace.v1.ScopeSpans.schema_url",
	"opentelemetry.proto.trace.v1.Span.trace_state",
	"opentelemetry.proto.trace.v1.Span.events",
	"opentelemetry.proto.trace.v1.Span.links",
	"opentelemetry.proto.trace.v1.Status.message",
	"opentelemetry.proto.resource.v1.Resource.entity_refs",
	"opentelemetry.proto.common.v1.KeyValue.value",
	// Only reached through the relaxed KeyValue.value, when the check parses
	// the value of an attribute Decoder uses:
	"opentelemetry.proto.common.v1.AnyValue.string_value",
	"opentelemetry.proto.common.v1.AnyValue.array_value",
	"opentelemetry.proto.common.v1.AnyValue.kvlist_value",
}

type relaxedSchema struct {
	req, anyValue protoreflect.MessageDescriptor
}

var relaxed = sync.OnceValue(func() relaxedSchema {
	relax := map[protoreflect.FullName]bool{}
	for _, n := range relaxedFields {
		relax[n] = true
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imps := fd.Imports()
		for i := range imps.Len() {
			add(imps.Get(i).FileDescriptor)
		}
		fp := protodesc.ToFileDescriptorProto(fd)
		for _, m := range fp.MessageType {
			for _, f := range m.Field {
				if relax[protoreflect.FullName(fp.GetPackage()+"."+m.GetName()+"."+f.GetName())] {
					f.Type = descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum()
					f.TypeName = nil
					if m.GetName() == "KeyValue" {
						f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
					}
				}
			}
		}
		set.File = append(set.File, fp)
	}
	add(coltracepb.File_opentelemetry_proto_collector_trace_v1_trace_service_proto)
	files, err := protodesc.NewFiles(set)
	if err != nil {
		panic(err)
	}
	find := func(n protoreflect.FullName) protoreflect.MessageDescriptor {
		d, err := files.FindDescriptorByName(n)
		if err != nil {
			panic(err)
		}
		return d.(protoreflect.MessageDescriptor)
	}
	return relaxedSchema{
		req:      find("opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"),
		anyValue: find("opentelemetry.proto.common.v1.AnyValue"),
	}
})

var errRelaxedUTF8 = errors.New("used attribute value: invalid UTF-8")

// relaxedDecode returns the spans Decoder (not Strict) must produce from
// msg, or an error when Decoder must reject msg.
func relaxedDecode(msg []byte) ([]span.Span, error) {
	rs := relaxed()
	m := dynamicpb.NewMessage(rs.req)
	if err := proto.Unmarshal(msg, m); err != nil {
		return nil, err
	}
	// Check the used attribute values and replace every attribute value by
	// what matters of it, then drop the other opaque fields, so the result
	// is a valid message for the generated types.
	var err error
	walk(m, func(path string, kv protoreflect.Message) {
		if err != nil {
			return
		}
		fields := kv.Descriptor().Fields()
		k := kv.Get(fields.ByName("key")).String()
		used := false
		switch path {
		case "resource_spans.resource.attributes":
			used = isServiceName(k)
		case "resource_spans.scope_spans.spans.attributes":
			used = spanKey(k).t != tNone
		default:
			panic("unexpected KeyValue at " + path)
		}
		vf := fields.ByName("value")
		vals := kv.Get(vf).List()
		if !used || vals.Len() == 0 {
			kv.Clear(vf)
			return
		}
		av := dynamicpb.NewMessage(rs.anyValue)
		for i := range vals.Len() {
			if err = (proto.UnmarshalOptions{Merge: true}).Unmarshal(vals.Get(i).Bytes(), av); err != nil {
				return
			}
		}
		avf := av.Descriptor().Fields()
		if s := avf.ByName("string_value"); av.Has(s) && !utf8.Valid(av.Get(s).Bytes()) {
			err = errRelaxedUTF8
			return
		}
		av.Clear(avf.ByName("array_value"))
		av.Clear(avf.ByName("kvlist_value"))
		enc, merr := proto.Marshal(av)
		if merr != nil {
			panic(merr)
		}
		kv.Clear(vf)
		nl := kv.Mutable(vf).List()
		nl.Append(protoreflect.ValueOfBytes(enc))
	})
	if err != nil {
		return nil, err
	}
	clearRelaxed(m)
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		panic(fmt.Sprintf("relaxed message does not re-parse: %v", err))
	}
	return FromProto(&req, new(span.Interner), nil), nil
}

// walk calls f for every KeyValue in m, with the path of field names to it.
func walk(m protoreflect.Message, f func(path string, kv protoreflect.Message)) {
	var rec func(path string, m protoreflect.Message)
	rec = func(path string, m protoreflect.Message) {
		if m.Descriptor().Name() == "KeyValue" {
			f(path, m)
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			p := string(fd.Name())
			if path != "" {
				p = path + "." + p
			}
			if fd.IsList() {
				l := v.List()
				for i := range l.Len() {
					rec(p, l.Get(i).Message())
				}
			} else {
				rec(p, v.Message())
			}
			return true
		})
	}
	rec("", m)
}

// clearRelaxed clears the opaque fields other than KeyValue.value in m.
func clearRelaxed(m protoreflect.Message) {
	var clear []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.FullName() == "opentelemetry.proto.common.v1.KeyValue.value":
		case slices.Contains(relaxedFields, fd.FullName()):
			clear = append(clear, fd)
		case fd.Kind() == protoreflect.MessageKind && fd.IsList():
			l := v.List()
			for i := range l.Len() {
				clearRelaxed(l.Get(i).Message())
			}
		case fd.Kind() == protoreflect.MessageKind:
			clearRelaxed(v.Message())
		}
		return true
	})
	for _, fd := range clear {
		m.Clear(fd)
	}
}

// prefixSpan is a record already in dst when the differential check calls
// Decode, to check that Decode appends and leaves it alone.
var prefixSpan = span.Span{Name: "already there", GRPCStatus: -1}

// checkDecode holds Decoder to the reference on msg, in both modes.
func checkDecode(t testing.TB, msg []byte) {
	t.Helper()
	var req coltracepb.ExportTraceServiceRequest
	strictErr := proto.Unmarshal(msg, &req)
	var want []span.Span
	if strictErr == nil {
		want = FromProto(&req, new(span.Interner), nil)
	}
	relaxedSpans, relaxedErr := relaxedDecode(msg)
	if strictErr == nil && relaxedErr != nil {
		t.Fatalf("relaxed schema rejects what proto.Unmarshal accepts: %v", relaxedErr)
	}
	for _, strict := range []bool{false, true} {
		d := Decoder{Strict: strict}
		got, err := d.Decode(msg, []span.Span{prefixSpan})
		mode := "lenient"
		if strict {
			mode = "strict"
		}
		if len(got) == 0 || got[0] != prefixSpan {
			t.Fatalf("%s: Decode lost the records already in dst", mode)
		}
		got = got[1:]
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || (de.Reason != span.ReasonNotProtobuf && de.Reason != span.ReasonTruncated) {
				t.Fatalf("%s: Decode error %v is not a *DecodeError with a wire reason", mode, err)
			}
			if len(got) != 0 {
				t.Fatalf("%s: Decode returned %d records with error %v", mode, len(got), err)
			}
		}
		switch {
		case strictErr == nil:
			if err != nil {
				t.Fatalf("%s: proto.Unmarshal accepts, Decode rejects: %v", mode, err)
			}
			diffSpans(t, mode, got, want)
		case strict:
			if err == nil {
				t.Fatalf("strict: proto.Unmarshal rejects (%v), Decode accepts", strictErr)
			}
		case relaxedErr == nil: // the documented difference
			if err != nil {
				t.Fatalf("lenient: the relaxed schema accepts, Decode rejects: %v (proto.Unmarshal: %v)", err, strictErr)
			}
			diffSpans(t, mode, got, relaxedSpans)
		default:
			if err == nil {
				t.Fatalf("lenient: relaxed schema rejects (%v), Decode accepts", relaxedErr)
			}
		}
	}
}

func diffSpans(t testing.TB, mode string, got, want []span.Span) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: Decode gave %d spans, reference %d", mode, len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%s: span %d:\n got  %+v\n want %+v", mode, i, got[i], want[i])
		}
	}
}

// FuzzDecodeProto checks Decoder against the reference on arbitrary input.
// Its seed corpus (testdata/fuzz/FuzzDecodeProto, see TestWriteSeedCorpus)
// holds realistic requests, every table case of decode_test.go, and
// truncated and bit-flipped variants.
func FuzzDecodeProto(f *testing.F) {
	for _, c := range wireCases() {
		f.Add(c.msg)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkDecode(t, msg)
	})
}

var writeCorpus = flag.Bool("write-corpus", false, "rewrite the seed corpus in testdata/fuzz/FuzzDecodeProto")

// TestWriteSeedCorpus writes FuzzDecodeProto's seed corpus when run with
// -write-corpus: realistic requests, small error cases, and truncated and
// bit-flipped variants of realistic requests. Files the fuzzer found are
// kept; they are named by their hash like the seeds.
func TestWriteSeedCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -write-corpus to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeProto")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := [][]byte{marshal(otlptest.RealisticRequest(12, 0))}
	for seed := range int64(3) {
		msg := marshal(otlptest.RealisticRequest(4, seed))
		seeds = append(seeds, mutations(msg, seed)...)
	}
	for _, c := range errCases() {
		seeds = append(seeds, c.msg)
	}
	for _, s := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
		name := fmt.Sprintf("seed-%x", sha256.Sum256(s))[:21]
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
