// Package detect wires the stages every entry point shares — live
// consumption, replay and the accuracy harness: each window the graph closes
// is scored by the baselines, and their findings update the incidents.
package detect

import (
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/incident"
)

// Options configure a Pipeline. The zero value works: default windows, no
// metrics, incidents in memory.
type Options struct {
	Graph           graph.Config
	GraphMetrics    *graph.Metrics     // nil: not exported
	BaselineMetrics *baselines.Metrics // nil: not exported
	Incidents       incident.Options
	// OnWindow, when set, is called after each window has been scored and
	// the incidents updated, one window at a time in event-time order (on
	// the graph's goroutine, or its merge goroutine with several workers);
	// err is the incident store's, if saving failed.
	OnWindow func(w *graph.Window, findings []baselines.Finding, changes []incident.Change, err error)
}

// Pipeline is the graph, the baselines and the incidents, connected. Feed
// spans to Graph (Add, AdvanceTo, Flush) from one goroutine; Baselines and
// Incidents may be read from any. Close stops the graph's workers.
type Pipeline struct {
	Graph     *graph.Aggregator
	Baselines *baselines.Baselines
	Incidents *incident.Manager
	onWindow  func(w *graph.Window, findings []baselines.Finding, changes []incident.Change, err error)
}

// New builds a pipeline; it fails only when the incident store cannot be
// read.
func New(o Options) (*Pipeline, error) {
	incs, err := incident.NewManager(o.Incidents)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{Baselines: baselines.New(o.BaselineMetrics), Incidents: incs, onWindow: o.OnWindow}
	p.Graph = graph.New(o.Graph, p.Window, o.GraphMetrics)
	p.Baselines.SetWindow(p.Graph.Config().Window)
	return p, nil
}

// Close stops the graph's goroutines (see graph.Config.Workers) and
// waits for the incidents' last write.
func (p *Pipeline) Close() {
	p.Graph.Close()
	p.Incidents.Flush()
}

// Window scores a closed window and updates the incidents. Graph calls it
// for the windows it closes; a fleet member calls it for the windows it
// merges from every member's partitions (and then never feeds Graph).
func (p *Pipeline) Window(w *graph.Window) {
	findings := p.Baselines.Observe(w)
	changes, err := p.Incidents.Observe(w, findings)
	if p.onWindow != nil {
		p.onWindow(w, findings, changes, err)
	}
}
