package fleet

import (
	"encoding/hex"
	"fmt"

	"github.com/segmentio/kafka-go"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// splitPartsGenerated is the split by re-key partition through the
// generated OTLP types, decoding every field and encoding them again: the
// reference the splitter is checked against, and what the re-key stage
// did before it (by trace). It returns each of parts partitions' request,
// nil for one without spans. It takes OTLP/protobuf; otlp_json reaches
// either split the same way, converted first (jsonToProto).
func splitPartsGenerated(b []byte, parts int) ([][]byte, int64, error) {
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		return nil, 0, fmt.Errorf("otlp_proto: %w", err)
	}
	var newest int64
	type scopeKey struct{ rs, ss int }
	byPart := map[int]*coltracepb.ExportTraceServiceRequest{}
	scopes := map[int]map[scopeKey]*tracepb.ScopeSpans{}
	for ri, rs := range req.ResourceSpans {
		for si, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				newest = max(newest, int64(sp.EndTimeUnixNano))
				id := kafka.Message{Key: []byte(hex.EncodeToString(sp.TraceId))}
				p := (&kafka.Hash{}).Balance(id, allPartitions(parts)...)
				t := byPart[p]
				if t == nil {
					t = &coltracepb.ExportTraceServiceRequest{}
					byPart[p], scopes[p] = t, map[scopeKey]*tracepb.ScopeSpans{}
				}
				k := scopeKey{ri, si}
				dst := scopes[p][k]
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
					scopes[p][k] = dst
				}
				dst.Spans = append(dst.Spans, sp)
			}
		}
	}
	out := make([][]byte, parts)
	for p, t := range byPart {
		b, err := proto.Marshal(t)
		if err != nil {
			return nil, 0, err
		}
		out[p] = b
	}
	return out, newest, nil
}

// allPartitions lists partitions 0 to n-1, as a balancer is given them.
func allPartitions(n int) []int {
	out := make([]int, n)
	for p := range out {
		out[p] = p
	}
	return out
}
