package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/detect"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/statefs"
)

// incidentFile, in the state directory, holds the incidents alone.
const incidentFile = "incidents.json"

// keepsState reports whether the detector keeps its state in the state
// directory: in cluster mode, baselines and incidents are re-derived from
// the fleet's window summaries at start instead.
func keepsState(cfg Config) bool { return cfg.StateDir != "" && !cfg.Cluster.Enabled }

// newDetection builds the graph, baselines and incidents, and what each
// closed window does next: its findings and incident changes are logged,
// the changes go to the alert notifier over its bounded queue, and tests
// see the window.
func (m *Main) newDetection(cfg Config) (*detect.Pipeline, error) {
	storeErrs := prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_incident_store_errors_total",
		Help: "Writes of incidents.json that failed (the checkpoint still holds the incidents when it can be written)."})
	m.reg.MustRegister(storeErrs)
	storeLog := &statefs.FaultLog{Log: m.Log, What: "write " + incidentFile}
	stored := func(err error) {
		if err != nil {
			storeErrs.Inc()
			storeLog.Failed(err)
			return
		}
		storeLog.Succeeded()
	}
	var store *incident.Store
	if keepsState(cfg) {
		// Written in the background: a slow disk holds up no window.
		store = &incident.Store{Path: filepath.Join(cfg.StateDir, incidentFile), FS: m.FS, Written: stored}
	}
	gcfg := withWorkers(cfg.Graph)
	var gm *graph.Metrics
	if cfg.Cluster.Enabled {
		// The fleet node's partition workers join the spans, and count
		// their graphs' losses by partition; this graph is fed windows.
		gcfg.Workers = 1
	} else {
		gm = graph.NewMetrics(m.reg)
	}
	p, err := detect.New(detect.Options{
		Graph: gcfg, GraphMetrics: gm, BaselineMetrics: baselines.NewMetrics(m.reg),
		Incidents: incident.Options{Store: store},
		OnWindow: func(w *graph.Window, fs []baselines.Finding, changes []incident.Change, err error) {
			logFindings(m.Log, fs)
			if err != nil { // the incidents could not be encoded
				stored(err)
			}
			logChanges(m.Log, changes)
			if m.notifier != nil {
				m.notifier.Offer(w.End, changes) // events are made and written on the notifier's goroutine
			}
			if m.OnWindow != nil {
				m.OnWindow(w)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	m.agg, m.bs, m.incidents = p.Graph, p.Baselines, p.Incidents
	return p, nil
}

// withWorkers gives g one graph worker per CPU unless it names a number.
func withWorkers(g graph.Config) graph.Config {
	if g.Workers == 0 {
		g.Workers = runtime.GOMAXPROCS(0)
	}
	return g
}

// logChanges logs incidents as they open, change their top suspect, and
// resolve.
func logChanges(log *slog.Logger, changes []incident.Change) {
	for _, c := range changes {
		attrs := []any{"id", c.Incident.ID, "services", c.Incident.Services}
		if len(c.Incident.Suspects) > 0 {
			top := c.Incident.Suspects[0]
			attrs = append(attrs, "top_suspect", top.Service, "kind", top.Kind, "why", top.Summary)
		}
		log.Info("incident "+string(c.Kind), attrs...)
	}
}

// logFindings logs the episodes that opened or closed in a window.
func logFindings(log *slog.Logger, fs []baselines.Finding) {
	for _, f := range fs {
		if !f.Score.Opened && !f.Score.Closed {
			continue
		}
		what := "edge"
		name := ""
		if f.Edge != nil {
			name = f.Edge.String()
		} else {
			what, name = "operation", f.Op.Service+"/"+f.Op.Operation
		}
		// Debug: an incident's line names what matters; its series are in
		// the API.
		if f.Score.Opened {
			log.Debug("anomaly opened", what, name, "score", fmt.Sprintf("%.1f", f.Score.Value), "why", f.Score.Explanation)
		} else {
			log.Debug("anomaly closed", what, name)
		}
	}
}
