package graph

import (
	"github.com/causeway/causeway/model/sketch"
	"github.com/causeway/causeway/span"
)

// MaxExemplars is how many exemplar trace ids an edge keeps per window.
const MaxExemplars = 3

// EdgeStats are one edge's statistics over some span of event time.
// Latencies are in milliseconds, as the caller saw them: the client span's
// duration when the caller has one, else the callee's server span.
type EdgeStats struct {
	Requests int64
	Errors   int64
	Latency  *sketch.Latency
	// GapSum and GapCount give the mean client-minus-server gap (ms) over
	// the calls where both a client and a server span were seen; for a
	// queue hop, the time from publish to the start of consumption.
	GapSum   float64
	GapCount int64
	// Exemplars holds trace ids worth opening: the slowest calls, with a
	// failed one preferred to a slow success.
	Exemplars []Exemplar
}

// Exemplar is one trace worth opening, with the latency it showed.
type Exemplar struct {
	TraceID   span.TraceID
	LatencyMS float64
	Error     bool
}

// NewEdgeStats returns empty stats of one window's edge.
func NewEdgeStats() *EdgeStats { return &EdgeStats{Latency: sketch.NewLatency()} }

// totalAccuracy is the relative accuracy of the service graph's totals
// (every closed window merged): they are kept for as long as the edge is,
// so their sketches are compact ones (sketch.NewCompact).
const totalAccuracy = 0.02

// newTotalEdgeStats returns empty stats to merge an edge's windows into.
func newTotalEdgeStats() *EdgeStats { return &EdgeStats{Latency: sketch.NewCompact(totalAccuracy)} }

func (e *EdgeStats) observe(trace span.TraceID, latencyMS float64, failed bool) {
	e.Requests++
	if failed {
		e.Errors++
	}
	e.Latency.Add(latencyMS)
	e.offerExemplar(Exemplar{TraceID: trace, LatencyMS: latencyMS, Error: failed})
}

func (e *EdgeStats) observeGap(gapMS float64) {
	e.GapSum += gapMS
	e.GapCount++
}

// worse orders exemplars: errors first, then slower.
func worse(a, b Exemplar) bool {
	if a.Error != b.Error {
		return a.Error
	}
	return a.LatencyMS > b.LatencyMS
}

func (e *EdgeStats) offerExemplar(x Exemplar) {
	for i := range e.Exemplars { // one exemplar per trace: its worst call
		if e.Exemplars[i].TraceID == x.TraceID {
			if worse(x, e.Exemplars[i]) {
				e.Exemplars[i] = x
			}
			return
		}
	}
	if len(e.Exemplars) < MaxExemplars {
		if e.Exemplars == nil { // room for all of them, no more
			e.Exemplars = make([]Exemplar, 0, MaxExemplars)
		}
		e.Exemplars = append(e.Exemplars, x)
		return
	}
	least := 0
	for i := 1; i < len(e.Exemplars); i++ {
		if worse(e.Exemplars[least], e.Exemplars[i]) {
			least = i
		}
	}
	if worse(x, e.Exemplars[least]) {
		e.Exemplars[least] = x
	}
}

// Calls is how many calls the edge carried: its Requests.
func (e *EdgeStats) Calls() int64 { return e.Requests }

// Merge adds o into e.
func (e *EdgeStats) Merge(o *EdgeStats) {
	e.Requests += o.Requests
	e.Errors += o.Errors
	e.Latency.Merge(o.Latency)
	e.GapSum += o.GapSum
	e.GapCount += o.GapCount
	for _, x := range o.Exemplars {
		e.offerExemplar(x)
	}
}

// Clone returns an independent copy of e.
func (e *EdgeStats) Clone() *EdgeStats {
	c := NewEdgeStats()
	c.Merge(e)
	return c
}

// MeanGapMS returns the mean client-minus-server gap, or 0 when none was seen.
func (e *EdgeStats) MeanGapMS() float64 {
	if e.GapCount == 0 {
		return 0
	}
	return e.GapSum / float64(e.GapCount)
}

// OpStats are one service operation's statistics: how often it ran, how
// often it failed, how long it took, and its self time — duration minus the
// time covered by its children, the part the operation spent itself.
type OpStats struct {
	Requests int64
	Errors   int64
	Duration *sketch.Latency // ms
	SelfTime *sketch.Latency // ms
}

// NewOpStats returns empty stats of one window's operation.
func NewOpStats() *OpStats {
	return &OpStats{Duration: sketch.NewLatency(), SelfTime: sketch.NewLatency()}
}

// newTotalOpStats returns empty stats to merge an operation's windows into.
func newTotalOpStats() *OpStats {
	return &OpStats{Duration: sketch.NewCompact(totalAccuracy), SelfTime: sketch.NewCompact(totalAccuracy)}
}

func (o *OpStats) observe(durationMS, selfMS float64, failed bool) {
	o.Requests++
	if failed {
		o.Errors++
	}
	o.Duration.Add(durationMS)
	o.SelfTime.Add(selfMS)
}

// Calls is how many calls the operation ran: its Requests.
func (o *OpStats) Calls() int64 { return o.Requests }

// Merge adds p into o.
func (o *OpStats) Merge(p *OpStats) {
	o.Requests += p.Requests
	o.Errors += p.Errors
	o.Duration.Merge(p.Duration)
	o.SelfTime.Merge(p.SelfTime)
}

// Clone returns an independent copy of o.
func (o *OpStats) Clone() *OpStats {
	c := NewOpStats()
	c.Merge(o)
	return c
}
