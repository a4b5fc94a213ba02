package main

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/causeway/causeway/api"
	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/detect"
	"github.com/causeway/causeway/fleet"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/pipeline"
)

// input is where spans come from and what is kept of them: a consumer
// group's share of the topic (with a checkpointer when state is kept), or
// a fleet member; and, in the embedded demo, the broker and simulator
// writing to it.
type input struct {
	cons  *consume.Consumer      // single mode
	ck    *pipeline.Checkpointer // single mode with a state dir
	kafka consume.Config         // the brokers and topic read
	idle  time.Duration          // idle advance
	graph api.GraphSource        // what the API shows
	ready func() error           // readiness beyond the detector's own
	close []func()
}

// Close stops the consumer and the demo.
func (in *input) Close() {
	for i := len(in.close) - 1; i >= 0; i-- {
		in.close[i]()
	}
}

// openInput starts the embedded demo (if configured), checks the brokers'
// settings, and builds the consumer or the fleet member; with a state dir
// it restores the last checkpoint, or the baselines alone.
func (m *Main) openInput(ctx context.Context, cfg Config, det *detect.Pipeline, parts *group) (*input, error) {
	in := &input{idle: cfg.Idle, graph: m.agg, ready: func() error { return nil }}
	kcfg := cfg.Kafka
	if cfg.Embedded() {
		demo, err := startDemo(ctx, cfg.Demo, m.Log, m.reg)
		if err != nil {
			return nil, err
		}
		in.close = append(in.close, func() { demo.Close() })
		kcfg = demo.kafkaConfig()
		// The simulator never goes quiet, and its history arrives all at
		// once: event time alone closes windows. Sped up, simulated time
		// runs ahead of the wall clock.
		in.idle = 0
		if cfg.Demo.Speed != 1 {
			kcfg.MaxClockSkew = 100 * 365 * 24 * time.Hour
		}
		parts.run("simulator", demo.Run)
	} else if err := m.checkKafka(ctx, kcfg); err != nil {
		in.Close()
		return nil, err
	}
	in.kafka = kcfg
	cm := consume.NewMetrics(m.reg)
	if cfg.Cluster.Enabled {
		view := graph.NewView()
		in.graph = view
		var err error
		m.node, err = fleet.New(cfg.Cluster, fleet.Options{Kafka: kcfg, Graph: cfg.Graph, Idle: in.idle, Log: m.Log,
			DecodeMetrics: cm, Registerer: m.reg,
			OnWindow: func(w *graph.Window) {
				view.Add(w)
				det.Window(w)
			},
			OnLeader: func(on bool) {
				if m.notifier != nil {
					m.notifier.SetActive(on)
				}
			},
			OnAcknowledged: func(receiver, id string) {
				if m.notifier != nil {
					m.notifier.Acknowledge(receiver, id)
				}
			}})
		if err != nil {
			in.Close()
			return nil, err
		}
		in.ready = m.node.Ready
		return in, nil
	}
	cons, err := consume.New(kcfg, m.Log, cm, nil)
	if err != nil {
		in.Close()
		return nil, err
	}
	in.cons = cons
	in.close = append(in.close, func() { cons.Close() })
	if keepsState(cfg) {
		in.ck = pipeline.NewCheckpointer(cfg.StateDir, m.FS, pipeline.State{Graph: m.agg, Baselines: m.bs, Incidents: m.incidents}, kcfg, m.reg, m.Log)
		// The demo's in-process broker starts empty each time: its
		// offsets and event time mean nothing to the next run.
		if !in.ck.Restore(!cfg.Embedded()) {
			pipeline.RestoreBaselines(m.bs, filepath.Join(cfg.StateDir, pipeline.BaselineFile), m.Log)
		}
	}
	return in, nil
}

// checkKafka checks the brokers' settings at start. Settings the brokers
// refuse (TLS, SASL) are fatal, named by their field; brokers that are
// down are not: the client retries.
func (m *Main) checkKafka(ctx context.Context, kcfg consume.Config) error {
	switch err := kcfg.Check(ctx); {
	case err == nil:
	case errors.As(err, new(*consume.RejectedError)):
		return err
	default:
		m.Log.Warn("kafka brokers not reachable yet; retrying in the background", "err", err)
	}
	switch warning, err := kcfg.CheckDeadLetter(ctx); {
	case err != nil:
		m.Log.Warn("cannot read the dead-letter topic's settings", "err", err)
	case warning != "":
		m.Log.Warn(warning)
	}
	return nil
}
