package graph

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/causeway/causeway/model/sketch"
)

// Snapshot is a read-only view of the service graph: every node and
// service-level edge seen so far, each with its statistics in the last
// closed window ("current") and over all closed windows ("total"). It is
// the body of GET /api/v1/graph and the "graph" of a replay's output.
type Snapshot struct {
	// WindowStart and WindowEnd bound the last closed window; zero before
	// the first window closes.
	WindowStart time.Time  `json:"window_start"`
	WindowEnd   time.Time  `json:"window_end"`
	Nodes       []NodeView `json:"nodes"`
	Edges       []EdgeView `json:"edges"`
	// Truncated: nodes were left out (see Bounded); TotalNodes and
	// TotalEdges then count the whole graph.
	Truncated  bool `json:"truncated,omitempty"`
	TotalNodes int  `json:"total_nodes,omitempty"`
	TotalEdges int  `json:"total_edges,omitempty"`
}

// Bounded returns the part of s to serve: with service set, that service
// and the nodes it calls or is called by; then at most limit nodes (0: no
// limit), the busiest by the calls they served or received since start,
// and the edges between those kept. s is not changed; it is returned as
// it is when nothing is left out.
func (s *Snapshot) Bounded(service string, limit int) *Snapshot {
	keep := map[string]bool{}
	for _, n := range s.Nodes {
		keep[n.Name] = service == "" || n.Name == service
	}
	if service != "" {
		for _, e := range s.Edges {
			if e.Source == service || e.Target == service {
				keep[e.Source], keep[e.Target] = true, true
			}
		}
	}
	kept := 0
	for _, k := range keep {
		if k {
			kept++
		}
	}
	if limit > 0 && kept > limit {
		calls := map[string]int64{}
		for _, e := range s.Edges {
			calls[e.Source] += e.Total.Requests
			calls[e.Target] += e.Total.Requests
		}
		var ids []string
		for id, k := range keep {
			if k {
				ids = append(ids, id)
			}
		}
		slices.SortFunc(ids, func(a, b string) int {
			if c := cmp.Compare(calls[b], calls[a]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		for _, id := range ids[limit:] {
			keep[id] = false
		}
		kept = limit
	}
	if kept == len(s.Nodes) {
		return s
	}
	out := &Snapshot{WindowStart: s.WindowStart, WindowEnd: s.WindowEnd, Truncated: true, TotalNodes: len(s.Nodes), TotalEdges: len(s.Edges),
		Nodes: []NodeView{}, Edges: []EdgeView{}}
	for _, n := range s.Nodes {
		if keep[n.Name] {
			out.Nodes = append(out.Nodes, n)
		}
	}
	for _, e := range s.Edges {
		if keep[e.Source] && keep[e.Target] {
			out.Edges = append(out.Edges, e)
		}
	}
	return out
}

// NodeView is one node with what ran in it.
type NodeView struct {
	Node
	// Current and Total summarise the node's operations (services only).
	Current *StatsView `json:"current,omitempty"`
	Total   *StatsView `json:"total,omitempty"`
	// Operations of a service, with their self time.
	Operations []OpView `json:"operations,omitempty"`
}

// OpView is one operation of a service.
type OpView struct {
	Name    string     `json:"name"`
	Current *StatsView `json:"current,omitempty"`
	Total   StatsView  `json:"total"`
}

// EdgeView is the calls from one node to another, all operations merged,
// with the per-operation breakdown.
type EdgeView struct {
	Source     string          `json:"source"`
	Target     string          `json:"target"`
	TargetKind NodeKind        `json:"target_kind"`
	Current    *StatsView      `json:"current,omitempty"`
	Total      StatsView       `json:"total"`
	Operations []EdgeOperation `json:"operations"`
}

// EdgeOperation is one callee operation of an edge.
type EdgeOperation struct {
	Name    string     `json:"name"`
	Current *StatsView `json:"current,omitempty"`
	Total   StatsView  `json:"total"`
}

// StatsView is a JSON summary of call or operation statistics. Latencies
// are milliseconds; rates are per second of event time.
type StatsView struct {
	Requests  int64    `json:"requests"`
	Errors    int64    `json:"errors"`
	ErrorRate float64  `json:"error_rate"`
	Rate      float64  `json:"rate_per_s"`
	P50       float64  `json:"p50_ms"`
	P90       float64  `json:"p90_ms"`
	P99       float64  `json:"p99_ms"`
	Mean      float64  `json:"mean_ms"`
	GapMS     *float64 `json:"client_server_gap_ms,omitempty"`
	SelfP50   *float64 `json:"self_p50_ms,omitempty"`
	SelfMean  *float64 `json:"self_mean_ms,omitempty"`
	Exemplars []string `json:"exemplar_trace_ids,omitempty"`
}

// callsView summarises requests, errors and a latency sketch over seconds
// of event time: the part edge and operation views share.
func callsView(requests, errors int64, lat *sketch.Latency, seconds float64) StatsView {
	v := StatsView{
		Requests: requests,
		Errors:   errors,
		P50:      Round(lat.Quantile(0.5)),
		P90:      Round(lat.Quantile(0.9)),
		P99:      Round(lat.Quantile(0.99)),
		Mean:     Round(lat.Mean()),
	}
	if requests > 0 {
		v.ErrorRate = Round(float64(errors) / float64(requests))
	}
	if seconds > 0 {
		v.Rate = Round(float64(requests) / seconds)
	}
	return v
}

func edgeView(e *EdgeStats, seconds float64) StatsView {
	v := callsView(e.Requests, e.Errors, e.Latency, seconds)
	if e.GapCount > 0 {
		g := Round(e.MeanGapMS())
		v.GapMS = &g
	}
	ex := slices.Clone(e.Exemplars)
	slices.SortFunc(ex, func(a, b Exemplar) int {
		if worse(a, b) {
			return -1
		}
		if worse(b, a) {
			return 1
		}
		return 0
	})
	for _, x := range ex {
		v.Exemplars = append(v.Exemplars, x.TraceID.String())
	}
	return v
}

func opView(o *OpStats, seconds float64) StatsView {
	v := callsView(o.Requests, o.Errors, o.Duration, seconds)
	sp, sm := Round(o.SelfTime.Quantile(0.5)), Round(o.SelfTime.Mean())
	v.SelfP50, v.SelfMean = &sp, &sm
	return v
}

// Round keeps three decimals, so JSON stays readable and stable; NaN (an
// empty sketch) becomes 0.
func Round(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return math.Round(x*1000) / 1000
}

// newSnapshot builds the view of the graph after window cur closed, with
// total holding every closed window merged. total's span of event time is
// taken from firstStart to cur's end.
func newSnapshot(cur, total *Window, firstStart time.Time) *Snapshot {
	curSec := cur.End.Sub(cur.Start).Seconds()
	totSec := cur.End.Sub(firstStart).Seconds()
	s := &Snapshot{WindowStart: cur.Start, WindowEnd: cur.End}

	// A peer named from a client span's attributes may be a service that is
	// instrumented after all (a dead instance's callers still name it).
	services := make(map[string]bool)
	for k := range total.Ops {
		services[k.Service] = true
	}
	nodes := make(map[string]*NodeView)
	for name, n := range total.Nodes {
		if n.Kind != NodeService && services[name] {
			n = Node{Name: name, Kind: NodeService}
		}
		nodes[name] = &NodeView{Node: n}
	}
	type pair struct{ src, dst string }
	edges := make(map[pair]*EdgeView)
	totalEdge := make(map[pair]*EdgeStats)
	curEdge := make(map[pair]*EdgeStats)
	for k, st := range total.Edges {
		p := pair{k.Source, k.Target}
		ev, ok := edges[p]
		if !ok {
			ev = &EdgeView{Source: k.Source, Target: k.Target, TargetKind: total.Nodes[k.Target].Kind}
			edges[p] = ev
			totalEdge[p] = NewEdgeStats()
		}
		totalEdge[p].Merge(st)
		op := EdgeOperation{Name: k.Operation, Total: edgeView(st, totSec)}
		if c, ok := cur.Edges[k]; ok {
			cv := edgeView(c, curSec)
			op.Current = &cv
			if curEdge[p] == nil {
				curEdge[p] = NewEdgeStats()
			}
			curEdge[p].Merge(c)
		}
		ev.Operations = append(ev.Operations, op)
	}
	for p, ev := range edges {
		ev.Total = edgeView(totalEdge[p], totSec)
		if n, ok := nodes[p.dst]; ok {
			ev.TargetKind = n.Kind
		}
		if c := curEdge[p]; c != nil {
			cv := edgeView(c, curSec)
			ev.Current = &cv
		}
		slices.SortFunc(ev.Operations, func(a, b EdgeOperation) int { return cmp.Compare(a.Name, b.Name) })
		s.Edges = append(s.Edges, *ev)
	}
	slices.SortFunc(s.Edges, func(a, b EdgeView) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Target, b.Target))
	})

	svcTotal := make(map[string]*OpStats)
	svcCur := make(map[string]*OpStats)
	for k, st := range total.Ops {
		nv, ok := nodes[k.Service]
		if !ok {
			nv = &NodeView{Node: Node{Name: k.Service, Kind: NodeService}}
			nodes[k.Service] = nv
		}
		if svcTotal[k.Service] == nil {
			svcTotal[k.Service] = NewOpStats()
		}
		svcTotal[k.Service].Merge(st)
		op := OpView{Name: k.Operation, Total: opView(st, totSec)}
		if c, ok := cur.Ops[k]; ok {
			cv := opView(c, curSec)
			op.Current = &cv
			if svcCur[k.Service] == nil {
				svcCur[k.Service] = NewOpStats()
			}
			svcCur[k.Service].Merge(c)
		}
		nv.Operations = append(nv.Operations, op)
	}
	for name, nv := range nodes {
		if t := svcTotal[name]; t != nil {
			tv := opView(t, totSec)
			nv.Total = &tv
		}
		if c := svcCur[name]; c != nil {
			cv := opView(c, curSec)
			nv.Current = &cv
		}
		slices.SortFunc(nv.Operations, func(a, b OpView) int { return cmp.Compare(a.Name, b.Name) })
		s.Nodes = append(s.Nodes, *nv)
	}
	slices.SortFunc(s.Nodes, func(a, b NodeView) int { return cmp.Compare(a.Name, b.Name) })
	return s
}
