package fleet

import (
	"encoding/hex"
	"fmt"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// splitByTraceGenerated is the split through the generated OTLP types,
// decoding every field and encoding them again: the reference the
// splitter is checked against, and what the re-key stage did before it.
// It takes OTLP/protobuf; otlp_json reaches either split the same way,
// converted first (splitter.splitByTrace).
func splitByTraceGenerated(b []byte) (map[string][]byte, int64, error) {
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		return nil, 0, fmt.Errorf("otlp_proto: %w", err)
	}
	var newest int64
	type scopeKey struct{ rs, ss int }
	byTrace := map[string]*coltracepb.ExportTraceServiceRequest{}
	scopes := map[string]map[scopeKey]*tracepb.ScopeSpans{}
	for ri, rs := range req.ResourceSpans {
		for si, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				newest = max(newest, int64(sp.EndTimeUnixNano))
				id := hex.EncodeToString(sp.TraceId)
				t := byTrace[id]
				if t == nil {
					t = &coltracepb.ExportTraceServiceRequest{}
					byTrace[id], scopes[id] = t, map[scopeKey]*tracepb.ScopeSpans{}
				}
				k := scopeKey{ri, si}
				dst := scopes[id][k]
				if dst == nil {
					var rdst *tracepb.ResourceSpans
					for _, have := range t.ResourceSpans {
						if have.Resource == rs.Resource {
							rdst = have
						}
					}
					if rdst == nil {
						rdst = &tracepb.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl}
						t.ResourceSpans = append(t.ResourceSpans, rdst)
					}
					dst = &tracepb.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}
					rdst.ScopeSpans = append(rdst.ScopeSpans, dst)
					scopes[id][k] = dst
				}
				dst.Spans = append(dst.Spans, sp)
			}
		}
	}
	out := make(map[string][]byte, len(byTrace))
	for id, t := range byTrace {
		b, err := proto.Marshal(t)
		if err != nil {
			return nil, 0, err
		}
		out[id] = b
	}
	return out, newest, nil
}
