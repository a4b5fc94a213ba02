package sim

import (
	"encoding/binary"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// Span flags as SDKs set them: sampled, and whether the parent is remote is
// known (and, for server and consumer spans, true).
const (
	flagsLocal  = 0x101
	flagsRemote = 0x301
)

func flags(r *rec) uint32 {
	if r.t.remote && r.parent != ([8]byte{}) {
		return flagsRemote
	}
	return flagsLocal
}

// scopeBits bounds the instrumentation scopes of one service (8), so a
// group key is small and dense.
const scopeBits = 3

// groupKey orders records the way an SDK groups them: by resource
// (instance), then by instrumentation scope. It is below model.groups().
func groupKey(r *rec) int { return r.inst.idx<<scopeBits | r.t.scope }

// sortGroups orders idx (indexes into recs) by group with a stable counting
// sort, so spans of one resource and scope become adjacent and keep their
// order (end time). groups bounds groupKey.
func sortGroups(recs []rec, idx []int32, groups int) {
	countSort(idx, groups, func(i int32) int { return groupKey(&recs[i]) })
}

// countSort stably sorts xs by key, which is in [0, n).
func countSort(xs []int32, n int, key func(int32) int) {
	start := make([]int32, n+1)
	for _, x := range xs {
		start[key(x)+1]++
	}
	for k := 1; k < len(start); k++ {
		start[k] += start[k-1]
	}
	tmp := make([]int32, len(xs))
	for _, x := range xs {
		k := key(x)
		tmp[start[k]] = x
		start[k]++
	}
	copy(xs, tmp)
}

// spanSize is the encoded size of a Span message.
func spanSize(r *rec) int {
	n := 18 + 10 + len(r.t.head) + 9 + 9 + len(r.t.tail) + 6
	if r.parent != ([8]byte{}) {
		n += 10
	}
	return n
}

// appendSpan appends the Span message of r, fields in number order as
// proto.Marshal writes them.
func appendSpan(b []byte, r *rec) []byte {
	b = append(b, 0x0a, 16) // trace_id
	b = append(b, r.trace[:]...)
	b = append(b, 0x12, 8) // span_id
	b = append(b, r.id[:]...)
	if r.parent != ([8]byte{}) {
		b = append(b, 0x22, 8) // parent_span_id
		b = append(b, r.parent[:]...)
	}
	b = append(b, r.t.head...) // name, kind
	b = append(b, 0x39)        // start_time_unix_nano
	b = binary.LittleEndian.AppendUint64(b, uint64(r.start))
	b = append(b, 0x41) // end_time_unix_nano
	b = binary.LittleEndian.AppendUint64(b, uint64(r.end))
	b = append(b, r.t.tail...) // attributes, status
	b = append(b, 0x85, 0x01)  // flags
	return binary.LittleEndian.AppendUint32(b, flags(r))
}

// run returns the end of the run of idx starting at i whose records share
// what same says they share.
func run(recs []rec, idx []int32, i int, same func(a, b *rec) bool) int {
	j := i + 1
	for j < len(idx) && same(&recs[idx[i]], &recs[idx[j]]) {
		j++
	}
	return j
}

func sameInst(a, b *rec) bool  { return a.inst == b.inst }
func sameScope(a, b *rec) bool { return a.inst == b.inst && a.t.scope == b.t.scope }

// scopeSpansSize is the encoded size of the ScopeSpans of idx[i:j].
func scopeSpansSize(recs []rec, idx []int32, i, j int) int {
	r := &recs[idx[i]]
	n := len(r.inst.svc.scopeEnc[r.t.scope])
	for _, k := range idx[i:j] {
		n += 1 + protowire.SizeBytes(spanSize(&recs[k]))
	}
	return n
}

// resourceSpansSize is the encoded size of the ResourceSpans of idx[i:j],
// which share an instance.
func resourceSpansSize(recs []rec, idx []int32, i, j int) int {
	size := len(recs[idx[i]].inst.resEnc)
	for k := i; k < j; {
		l := run(recs, idx, k, sameScope)
		size += 1 + protowire.SizeBytes(scopeSpansSize(recs, idx, k, l))
		k = l
	}
	return size
}

// requestSize is the encoded size of the request appendRequest appends.
func requestSize(recs []rec, idx []int32) int {
	size := 0
	for i := 0; i < len(idx); {
		j := run(recs, idx, i, sameInst)
		size += 1 + protowire.SizeBytes(resourceSpansSize(recs, idx, i, j))
		i = j
	}
	return size
}

// appendRequest appends an ExportTraceServiceRequest (wire-identical to
// TracesData) holding recs[idx...]; idx must be sorted by sortGroups.
func appendRequest(b []byte, recs []rec, idx []int32) []byte {
	for i := 0; i < len(idx); {
		inst := recs[idx[i]].inst
		j := run(recs, idx, i, sameInst)
		b = append(b, 0x0a) // resource_spans
		b = protowire.AppendVarint(b, uint64(resourceSpansSize(recs, idx, i, j)))
		b = append(b, inst.resEnc...)
		for k := i; k < j; {
			l := run(recs, idx, k, sameScope)
			r := &recs[idx[k]]
			b = append(b, 0x12) // scope_spans
			b = protowire.AppendVarint(b, uint64(scopeSpansSize(recs, idx, k, l)))
			b = append(b, inst.svc.scopeEnc[r.t.scope]...)
			for _, x := range idx[k:l] {
				b = append(b, 0x12) // spans
				b = protowire.AppendVarint(b, uint64(spanSize(&recs[x])))
				b = appendSpan(b, &recs[x])
			}
			k = l
		}
		i = j
	}
	return b
}

// buildTraces builds the OTLP structs for recs[idx...]; idx must be sorted by
// sortGroups. Resources, scopes, attributes and statuses are shared with the
// templates and must not be modified.
func buildTraces(recs []rec, idx []int32) *tracepb.TracesData {
	td := &tracepb.TracesData{}
	spans := make([]tracepb.Span, len(idx))
	ids := make([]byte, 32*len(idx))
	n := 0
	for i := 0; i < len(idx); {
		inst := recs[idx[i]].inst
		j := run(recs, idx, i, sameInst)
		rs := &tracepb.ResourceSpans{Resource: inst.res}
		for k := i; k < j; {
			l := run(recs, idx, k, sameScope)
			ss := &tracepb.ScopeSpans{Scope: inst.svc.scopes[recs[idx[k]].t.scope],
				Spans: make([]*tracepb.Span, 0, l-k)}
			for _, x := range idx[k:l] {
				r := &recs[x]
				sp := &spans[n]
				id := ids[32*n : 32*n+32 : 32*n+32]
				n++
				copy(id, r.trace[:])
				copy(id[16:], r.id[:])
				copy(id[24:], r.parent[:])
				sp.TraceId = id[:16:16]
				sp.SpanId = id[16:24:24]
				if r.parent != ([8]byte{}) {
					sp.ParentSpanId = id[24:32:32]
				}
				sp.Flags = flags(r)
				sp.Name = r.t.name
				sp.Kind = r.t.kind
				sp.StartTimeUnixNano = uint64(r.start)
				sp.EndTimeUnixNano = uint64(r.end)
				sp.Attributes = r.t.attrs
				sp.Status = r.t.status
				ss.Spans = append(ss.Spans, sp)
			}
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
			k = l
		}
		td.ResourceSpans = append(td.ResourceSpans, rs)
		i = j
	}
	return td
}
