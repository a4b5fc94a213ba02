package fleet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the OTLP messages the splitter walks.
const (
	fieldResourceSpans = 1 // ExportTraceServiceRequest.resource_spans
	fieldScopeSpans    = 2 // ResourceSpans.scope_spans
	fieldSpans         = 2 // ScopeSpans.spans
	fieldTraceID       = 1 // Span.trace_id
	fieldEndTime       = 8 // Span.end_time_unix_nano
)

var errSplit = errors.New("malformed OTLP protobuf")

// splitter splits an OTLP/protobuf ExportTraceServiceRequest by re-key
// partition (the partition of each span's trace id, tracePartition)
// without decoding it into the generated types: it walks the request,
// its ResourceSpans and ScopeSpans, and each span's fields far enough to
// find its trace id and end time, and copies everything else (resources,
// scopes, whole spans, unknown fields) byte for byte. The re-key stage
// runs it on every message, and decoding every field into the generated
// types and encoding them again was most of its cost
// (BenchmarkSplitByTrace). fleet's split_test.go checks it against the
// generated types' split (splitPartsGenerated). A problem inside a copied
// part (a span's attributes, a resource) is not found here: the partition
// worker that decodes the re-keyed span reports it, as it would the span
// topic's.
//
// A splitter keeps its buffers between messages; it is not safe for
// concurrent use.
type splitter struct {
	parts []*partSpans // by re-key partition, kept between messages
	order []*partSpans // the partitions the message has spans for, in order of first span
	// Per ResourceSpans and ScopeSpans of the message, their fields other
	// than the children, as encoded (slices of the message, copied into
	// each output).
	rsHeads, ssHeads []head
	spans            int // in the message
}

// partSpans is one re-key partition's spans of the message, grouped by the
// ResourceSpans and ScopeSpans they came in.
type partSpans struct {
	part   int
	groups []spanGroup
}

type spanGroup struct {
	rs, ss int      // indexes into the message's resource and scope heads
	spans  [][]byte // each a whole encoded Span
}

// splitParts appends to dst[p], for each of parts re-key partitions p, an
// ExportTraceServiceRequest of msg's spans whose trace id hashes to p
// (tracePartition), with their resources and scopes; it returns how many
// spans msg holds and the latest span end (Unix ns). dst has parts
// entries; those without spans are left as they are.
func (s *splitter) splitParts(msg []byte, parts int, dst [][]byte) (spans int, newest int64, err error) {
	if newest, err = s.scan(msg, parts); err != nil {
		return 0, 0, err
	}
	for _, t := range s.order {
		dst[t.part] = t.appendTo(dst[t.part], s.rsHeads, s.ssHeads)
	}
	return s.spans, newest, nil
}

// scan walks msg and files its spans by re-key partition, of parts, in
// s.order; it returns the latest span end (Unix ns).
func (s *splitter) scan(msg []byte, parts int) (int64, error) {
	// The last message's groups and heads keep their memory, not its
	// bytes.
	for _, t := range s.order {
		for i := range t.groups {
			clear(t.groups[i].spans)
			t.groups[i].spans = t.groups[i].spans[:0]
		}
		t.groups = t.groups[:0]
	}
	for _, hs := range [][]head{s.rsHeads, s.ssHeads} {
		for i := range hs {
			clear(hs[i].parts)
			hs[i] = head{parts: hs[i].parts[:0]}
		}
	}
	s.order = s.order[:0]
	if len(s.parts) != parts {
		s.parts = make([]*partSpans, parts)
		for p := range s.parts {
			s.parts[p] = &partSpans{part: p}
		}
	}
	s.rsHeads, s.ssHeads, s.spans = s.rsHeads[:0], s.ssHeads[:0], 0

	var newest int64
	err := fields(msg, func(num protowire.Number, typ protowire.Type, v, raw []byte) error {
		if num != fieldResourceSpans || typ != protowire.BytesType {
			return nil // unknown at the top: dropped, as the generated split drops it
		}
		rs := len(s.rsHeads)
		rhead := nextHead(&s.rsHeads)
		err := fields(v, func(num protowire.Number, typ protowire.Type, v, raw []byte) error {
			if num != fieldScopeSpans || typ != protowire.BytesType {
				rhead.add(raw)
				return nil
			}
			ss := len(s.ssHeads)
			shead := nextHead(&s.ssHeads)
			err := fields(v, func(num protowire.Number, typ protowire.Type, v, raw []byte) error {
				if num != fieldSpans || typ != protowire.BytesType {
					shead.add(raw)
					return nil
				}
				id, end, err := spanKey(v)
				if err != nil {
					return err
				}
				newest = max(newest, end)
				s.add(id, rs, ss, v)
				s.spans++
				return nil
			})
			return err
		})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("otlp_proto: %w", err)
	}
	return newest, nil
}

// tracePartition is the re-key partition of a trace, of parts: that of a
// message keyed by its hex id under kafka-go's Hash balancer (FNV-1a,
// as Sarama's), without making the key. Members that wrote a message per
// trace keyed so put a trace where this does, so both can run at once
// during an upgrade (TestTracePartitionMatchesHash).
func tracePartition(id []byte, parts int) int {
	const digits = "0123456789abcdef"
	h := uint32(2166136261)
	for _, c := range id {
		h = (h ^ uint32(digits[c>>4])) * 16777619
		h = (h ^ uint32(digits[c&15])) * 16777619
	}
	p := int32(h) % int32(parts)
	if p < 0 {
		p = -p
	}
	return int(p)
}

// add files span (its encoded bytes) under the re-key partition of its
// trace id, in the group of ResourceSpans rs and ScopeSpans ss.
func (s *splitter) add(id []byte, rs, ss int, span []byte) {
	t := s.parts[tracePartition(id, len(s.parts))]
	n := len(t.groups)
	if n == 0 {
		s.order = append(s.order, t)
	}
	if n > 0 && t.groups[n-1].rs == rs && t.groups[n-1].ss == ss {
		t.groups[n-1].spans = append(t.groups[n-1].spans, span)
		return
	}
	if n < cap(t.groups) { // a group of an earlier message: its memory is kept
		t.groups = t.groups[:n+1]
		g := &t.groups[n]
		g.rs, g.ss, g.spans = rs, ss, append(g.spans, span)
		return
	}
	t.groups = append(t.groups, spanGroup{rs: rs, ss: ss, spans: [][]byte{span}})
}

// nextHead adds a head to hs, with the memory of the one an earlier
// message had there, and returns it. The caller does not add to hs while
// it fills the head.
func nextHead(hs *[]head) *head {
	n := len(*hs)
	if n < cap(*hs) {
		*hs = (*hs)[:n+1]
	} else {
		*hs = append(*hs, head{})
	}
	return &(*hs)[n]
}

// head is the fields of a ResourceSpans or ScopeSpans other than its
// children, as encoded.
type head struct {
	parts [][]byte
	size  int
}

func (h *head) add(raw []byte) {
	h.parts = append(h.parts, raw)
	h.size += len(raw)
}

func (h *head) appendTo(b []byte) []byte {
	for _, p := range h.parts {
		b = append(b, p...)
	}
	return b
}

// appendTo appends the partition's request to out: for each ResourceSpans
// its spans came in, that ResourceSpans' other fields and, for each of its
// ScopeSpans, that ScopeSpans' other fields and the partition's spans. It
// is sized first, so out grows at most once.
func (t *partSpans) appendTo(out []byte, rsHeads, ssHeads []head) []byte {
	total := 0
	t.walk(func(rs int, scopes []spanGroup) {
		total += sizeField(fieldResourceSpans, t.rsSize(rs, scopes, rsHeads, ssHeads))
	})
	out = slices.Grow(out, total)
	t.walk(func(rs int, scopes []spanGroup) {
		out = protowire.AppendTag(out, fieldResourceSpans, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(t.rsSize(rs, scopes, rsHeads, ssHeads)))
		out = rsHeads[rs].appendTo(out)
		for _, g := range scopes {
			out = protowire.AppendTag(out, fieldScopeSpans, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(g.size(ssHeads)))
			out = ssHeads[g.ss].appendTo(out)
			for _, sp := range g.spans {
				out = protowire.AppendTag(out, fieldSpans, protowire.BytesType)
				out = protowire.AppendBytes(out, sp)
			}
		}
	})
	return out
}

// walk calls f with each ResourceSpans the partition's spans came in and the
// groups of its spans in it, in order.
func (t *partSpans) walk(f func(rs int, scopes []spanGroup)) {
	for i := 0; i < len(t.groups); {
		j := i
		for j < len(t.groups) && t.groups[j].rs == t.groups[i].rs {
			j++
		}
		f(t.groups[i].rs, t.groups[i:j])
		i = j
	}
}

// rsSize is the encoded length of the partition's part of ResourceSpans rs.
func (t *partSpans) rsSize(rs int, scopes []spanGroup, rsHeads, ssHeads []head) int {
	n := rsHeads[rs].size
	for _, g := range scopes {
		n += sizeField(fieldScopeSpans, g.size(ssHeads))
	}
	return n
}

// size is the encoded length of the group's ScopeSpans.
func (g *spanGroup) size(ssHeads []head) int {
	n := ssHeads[g.ss].size
	for _, sp := range g.spans {
		n += sizeField(fieldSpans, len(sp))
	}
	return n
}

// sizeField is the encoded size of a length-delimited field of n bytes.
func sizeField(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

// spanKey reads a span's trace id (the last one, as protobuf merges) and
// its end time. It is fields without the callback: every span of a
// re-keyed message passes here, and the walk is most of the split's cost.
func spanKey(b []byte) (id []byte, end int64, err error) {
	for len(b) > 0 {
		num, typ, v, n := field(b)
		if n < 0 {
			return nil, 0, fmt.Errorf("%w: %v", errSplit, protowire.ParseError(n))
		}
		switch {
		case num == fieldTraceID && typ == protowire.BytesType:
			id = v
		case num == fieldEndTime && typ == protowire.Fixed64Type:
			end = int64(binary.LittleEndian.Uint64(v))
		}
		b = b[n:]
	}
	return id, end, nil
}

// fields calls f with every field of the message b: its number, wire
// type, value (the bytes of a length-delimited one, else the encoded
// value) and the whole field as encoded. Groups and malformed fields are
// errors, as proto.Unmarshal finds them.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v, raw []byte) error) error {
	for len(b) > 0 {
		num, typ, v, n := field(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errSplit, protowire.ParseError(n))
		}
		if err := f(num, typ, v, b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// field reads the field at the start of b: its number, wire type, value
// (the bytes of a length-delimited one, else the encoded value) and its
// whole length, or a protowire error code (n < 0). It is protowire's
// ConsumeTag and ConsumeFieldValue, with the common case read inline: a
// one-byte tag (every field number of an OTLP span up to 15) and a
// length, fixed value or varint that fits. Anything else, errors
// included, goes to protowire, so both agree on every input
// (TestFieldMatchesProtowire).
func field(b []byte) (num protowire.Number, typ protowire.Type, v []byte, n int) {
	if len(b) >= 2 && b[0] >= 1<<3 && b[0] < 0x80 {
		num, typ = protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
		switch typ {
		case protowire.BytesType:
			if l := int(b[1]); b[1] < 0x80 && l <= len(b)-2 {
				return num, typ, b[2 : 2+l], 2 + l
			}
		case protowire.Fixed64Type:
			if len(b) >= 9 {
				return num, typ, b[1:9], 9
			}
		case protowire.Fixed32Type:
			if len(b) >= 5 {
				return num, typ, b[1:5], 5
			}
		case protowire.VarintType:
			if b[1] < 0x80 {
				return num, typ, b[1:2], 2
			}
		}
	}
	return protowireField(b)
}

// protowireField is field as protowire reads it, with no inline case.
func protowireField(b []byte) (num protowire.Number, typ protowire.Type, v []byte, n int) {
	num, typ, t := protowire.ConsumeTag(b)
	if t < 0 {
		return 0, 0, nil, t
	}
	m := protowire.ConsumeFieldValue(num, typ, b[t:])
	if m < 0 {
		return 0, 0, nil, m
	}
	v = b[t : t+m]
	if typ == protowire.BytesType {
		v, _ = protowire.ConsumeBytes(v)
	}
	return num, typ, v, t + m
}
