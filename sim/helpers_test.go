package sim

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/causeway/causeway/span"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// sp is a decoded span plus what the tests need beyond span.Span.
type sp struct {
	span.Span
	Instance string // service.instance.id
	Attrs    map[string]any
}

// decode flattens OTLP traces into decoded spans, as consume/ would.
func decode(t testing.TB, td *tracepb.TracesData) []sp {
	t.Helper()
	var out []sp
	for _, rs := range td.ResourceSpans {
		res := attrs(rs.GetResource().GetAttributes())
		svc, _ := res["service.name"].(string)
		inst, _ := res["service.instance.id"].(string)
		for _, ss := range rs.ScopeSpans {
			for _, p := range ss.Spans {
				a := attrs(p.Attributes)
				s := sp{Instance: inst, Attrs: a}
				copy(s.TraceID[:], p.TraceId)
				copy(s.SpanID[:], p.SpanId)
				copy(s.ParentID[:], p.ParentSpanId)
				if len(p.TraceId) != 16 || len(p.SpanId) != 8 || (len(p.ParentSpanId) != 0 && len(p.ParentSpanId) != 8) {
					t.Fatalf("bad id lengths in span %v", p)
				}
				s.Service = svc
				s.Name = p.Name
				s.Kind = span.Kind(p.Kind)
				s.Start = int64(p.StartTimeUnixNano)
				s.End = int64(p.EndTimeUnixNano)
				s.Status = span.StatusCode(p.GetStatus().GetCode())
				s.GRPCStatus = -1
				if v, ok := a["rpc.grpc.status_code"].(int64); ok {
					s.GRPCStatus = int32(v)
				}
				if v, ok := a["http.response.status_code"].(int64); ok {
					s.HTTPStatus = int32(v)
				}
				s.ServerAddress, _ = a["server.address"].(string)
				s.DBSystem, _ = a["db.system"].(string)
				s.DBNamespace, _ = a["db.namespace"].(string)
				s.MessagingSystem, _ = a["messaging.system"].(string)
				s.MessagingDest, _ = a["messaging.destination.name"].(string)
				out = append(out, s)
			}
		}
	}
	return out
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = v.IntValue
		}
	}
	return m
}

// trace is one decoded trace.
type trace struct {
	root  *sp
	spans []*sp
	byID  map[span.ID]*sp
	kids  map[span.ID][]*sp
}

// run is the outcome of simulating a config for a while.
type simRun struct {
	cfg    Config
	spans  []sp     // every span of the complete traces, in output order
	traces []*trace // complete traces: root started in the first d
}

// simulate runs cfg for d in steps of 200ms, then for tail more so requests
// that started near the end finish, and keeps the traces whose root started
// in the first d.
func simulate(t testing.TB, cfg Config, d, tail time.Duration) *simRun {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg = s.cfg
	var all []sp
	for s.now < s.start+int64(d+tail) {
		all = append(all, decode(t, s.Step(200*time.Millisecond))...)
	}
	byTrace := map[span.TraceID]*trace{}
	var order []*trace
	for i := range all {
		p := &all[i]
		tr := byTrace[p.TraceID]
		if tr == nil {
			tr = &trace{byID: map[span.ID]*sp{}, kids: map[span.ID][]*sp{}}
			byTrace[p.TraceID] = tr
			order = append(order, tr)
		}
		tr.spans = append(tr.spans, p)
		if _, dup := tr.byID[p.SpanID]; dup {
			t.Fatalf("duplicate span id %s in trace %s", p.SpanID, p.TraceID)
		}
		tr.byID[p.SpanID] = p
		if p.ParentID.IsZero() {
			if tr.root != nil {
				t.Fatalf("trace %s has two roots", p.TraceID)
			}
			tr.root = p
		} else {
			tr.kids[p.ParentID] = append(tr.kids[p.ParentID], p)
		}
	}
	r := &simRun{cfg: cfg}
	end := cfg.Start.Add(d).UnixNano()
	for _, tr := range order {
		if tr.root == nil {
			continue // root ended after the tail or started before: incomplete
		}
		if tr.root.Start >= end {
			continue
		}
		r.traces = append(r.traces, tr)
		for _, p := range tr.spans {
			r.spans = append(r.spans, *p)
		}
	}
	return r
}

// durations returns the durations in milliseconds of the spans that match.
func (r *simRun) durations(match func(p *sp) bool) []float64 {
	var d []float64
	for i := range r.spans {
		if match(&r.spans[i]) {
			d = append(d, float64(r.spans[i].Duration())/1e6)
		}
	}
	return d
}

// gaps returns client-minus-server durations in milliseconds on the edge
// from caller to callee.
func (r *simRun) gaps(caller, callee string) []float64 {
	var d []float64
	for _, tr := range r.traces {
		for _, p := range tr.spans {
			if p.Kind != span.KindServer || p.Service != callee {
				continue
			}
			c := tr.byID[p.ParentID]
			if c != nil && c.Service == caller && c.Kind == span.KindClient {
				d = append(d, float64(c.Duration()-p.Duration())/1e6)
			}
		}
	}
	return d
}

// failedRatio returns the share of matching spans that failed.
func (r *simRun) failedRatio(match func(p *sp) bool) (float64, int) {
	n, f := 0, 0
	for i := range r.spans {
		if match(&r.spans[i]) {
			n++
			if r.spans[i].Failed() {
				f++
			}
		}
	}
	if n == 0 {
		return math.NaN(), 0
	}
	return float64(f) / float64(n), n
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

func median(xs []float64) float64 { return quantile(xs, 0.5) }

// server matches the server (or consumer) spans of a service, optionally
// of one operation.
func server(service, name string) func(p *sp) bool {
	return func(p *sp) bool {
		return (p.Kind == span.KindServer || p.Kind == span.KindConsumer) && p.Service == service &&
			(name == "" || p.Name == name)
	}
}

// client matches client spans from service to server.address.
func client(service, address string) func(p *sp) bool {
	return func(p *sp) bool {
		return p.Kind == span.KindClient && p.Service == service && p.ServerAddress == address
	}
}
