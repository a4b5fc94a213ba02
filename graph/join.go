package graph

import (
	"slices"

	"github.com/causeway/causeway/span"
)

// observation is one call seen in a finished trace.
type observation struct {
	edge      EdgeKey
	source    Node
	target    Node
	at        int64 // event time the call is filed under (Unix ns): end of the measured span
	latencyMS float64
	failed    bool
	hasGap    bool
	gapMS     float64
}

// opObservation is one run of a service operation.
type opObservation struct {
	op         OpKey
	at         int64
	durationMS float64
	selfMS     float64
	failed     bool
	client     bool   // a client or producer span: its time is mostly the callee's
	callee     string // the service whose span answered a client span, if any
}

// joiner pairs the spans of one trace. It keeps scratch space between
// traces, so a long-lived joiner allocates little; it is not safe for
// concurrent use.
type joiner struct {
	index    spanIndex
	children [][]int // children[i] lists the indexes of span i's children
	remote   []bool  // remote[i]: span i has a child in another service
	ivals    [][2]int64

	edges []observation
	ops   []opObservation
}

const nsPerMS = 1e6

// join pairs the spans of one trace and returns the calls and operation runs
// it shows. The returned slices are owned by the joiner and valid until the
// next call.
func (j *joiner) join(t *pendingTrace) ([]observation, []opObservation) {
	j.edges, j.ops = j.edges[:0], j.ops[:0]
	spans := t.spans
	n := len(spans)
	j.index.reset(n)
	for i := range spans {
		j.index.put(spans, i)
	}
	j.children = slices.Grow(j.children[:0], n)[:n]
	for i := range j.children {
		j.children[i] = j.children[i][:0]
	}
	j.remote = slices.Grow(j.remote[:0], n)[:n]
	clear(j.remote)

	// Parent-child pairs: a change of service is a call edge.
	for i := range spans {
		c := &spans[i]
		pi, ok := j.index.get(spans, c.ParentID)
		if !ok || c.ParentID.IsZero() || pi == i {
			continue
		}
		j.children[pi] = append(j.children[pi], i)
		p := &spans[pi]
		if p.Service == c.Service {
			continue
		}
		j.remote[pi] = true
		j.pair(t, p, c)
	}

	for i := range spans {
		s := &spans[i]
		client := s.Kind == span.KindClient || s.Kind == span.KindProducer
		var callee string
		if client && j.remote[i] {
			for _, k := range j.children[i] {
				if spans[k].Service != s.Service {
					callee = spans[k].Service
					break
				}
			}
		}
		j.ops = append(j.ops, opObservation{
			op:         OpKey{Service: s.Service, Operation: s.Name},
			at:         s.End,
			durationMS: float64(s.duration()) / nsPerMS,
			selfMS:     float64(j.selfTime(spans, i)) / nsPerMS,
			failed:     s.Failed,
			client:     client,
			callee:     callee,
		})
		// A client or producer span nobody answered in another service
		// calls an uninstrumented peer: a virtual node.
		if j.remote[i] || !callsOut(s.Kind) {
			continue
		}
		if s.Kind == span.KindUnspecified && len(j.children[i]) > 0 {
			continue // a span with local children is not a call out
		}
		if peer, ok := t.peer(s); ok {
			j.edges = append(j.edges, observation{
				edge:      EdgeKey{Source: s.Service, Target: peer.Name, Operation: s.Name},
				source:    Node{Name: s.Service, Kind: NodeService},
				target:    peer,
				at:        s.End,
				latencyMS: float64(s.duration()) / nsPerMS,
				failed:    s.Failed,
			})
		}
	}
	return j.edges, j.ops
}

// pair records the call from parent p to child c in another service.
func (j *joiner) pair(t *pendingTrace, p, c *pendingSpan) {
	caller := Node{Name: p.Service, Kind: NodeService}
	callee := Node{Name: c.Service, Kind: NodeService}
	if p.Kind == span.KindProducer || c.Kind == span.KindConsumer {
		// A hop through a queue. When the producer names its destination,
		// show the queue as a node between the two services.
		if q, ok := t.peer(p); ok && q.Kind == NodeQueue {
			j.edges = append(j.edges,
				observation{
					edge:      EdgeKey{Source: p.Service, Target: q.Name, Operation: p.Name},
					source:    caller,
					target:    q,
					at:        p.End,
					latencyMS: float64(p.duration()) / nsPerMS,
					failed:    p.Failed,
				},
				observation{
					edge:      EdgeKey{Source: q.Name, Target: c.Service, Operation: c.Name},
					source:    q,
					target:    callee,
					at:        c.End,
					latencyMS: float64(c.duration()) / nsPerMS,
					failed:    c.Failed,
					hasGap:    true,
					gapMS:     float64(c.Start-p.End) / nsPerMS,
				})
			return
		}
		j.edges = append(j.edges, observation{
			edge:      EdgeKey{Source: p.Service, Target: c.Service, Operation: c.Name},
			source:    caller,
			target:    callee,
			at:        c.End,
			latencyMS: float64(c.duration()) / nsPerMS,
			failed:    c.Failed,
			hasGap:    true,
			gapMS:     float64(c.Start-p.End) / nsPerMS,
		})
		return
	}
	o := observation{
		edge:   EdgeKey{Source: p.Service, Target: c.Service, Operation: c.Name},
		source: caller,
		target: callee,
		at:     c.End,
		failed: c.Failed,
	}
	if p.Kind == span.KindClient {
		// The caller's own view of the call, and what the network (or
		// queueing in front of the callee) added to it.
		o.at = p.End
		o.latencyMS = float64(p.duration()) / nsPerMS
		o.failed = o.failed || p.Failed
		o.hasGap = true
		o.gapMS = float64(p.duration()-c.duration()) / nsPerMS
	} else {
		o.latencyMS = float64(c.duration()) / nsPerMS
	}
	j.edges = append(j.edges, o)
}

// selfTime returns span i's duration minus the part of it covered by its
// children (their union, clipped to the span), in nanoseconds.
func (j *joiner) selfTime(spans []pendingSpan, i int) int64 {
	s := &spans[i]
	kids := j.children[i]
	if len(kids) == 0 {
		return s.duration()
	}
	iv := j.ivals[:0]
	for _, k := range kids {
		a, b := max(spans[k].Start, s.Start), min(spans[k].End, s.End)
		if b > a {
			iv = append(iv, [2]int64{a, b})
		}
	}
	slices.SortFunc(iv, func(x, y [2]int64) int {
		switch {
		case x[0] < y[0]:
			return -1
		case x[0] > y[0]:
			return 1
		}
		return 0
	})
	var covered, end int64
	end = s.Start
	for _, v := range iv {
		a := max(v[0], end)
		if v[1] > a {
			covered += v[1] - a
			end = v[1]
		}
	}
	j.ivals = iv
	return s.duration() - covered
}
