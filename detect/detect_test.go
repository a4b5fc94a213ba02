package detect

import (
	"testing"
	"time"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/internal/simtest"
	"github.com/causeway/causeway/sim"
	"github.com/causeway/causeway/span"
)

// TestPipelineOpensAnIncidentNamingTheFault: simulated traffic with a
// latency fault after 15 minutes of normal goes through the whole pipeline
// and comes out as one open incident naming the faulty service first.
func TestPipelineOpensAnIncidentNamingTheFault(t *testing.T) {
	cfg := sim.Default()
	cfg.Rate, cfg.ByTrace = 30, false
	s := simtest.New(t, cfg, "latency:cartservice:+40ms@15m/5m")
	var opened []incident.Change
	p, err := New(Options{OnWindow: func(_ *graph.Window, _ []baselines.Finding, ch []incident.Change, err error) {
		if err != nil {
			t.Error(err)
		}
		for _, c := range ch {
			if c.Kind == "opened" {
				opened = append(opened, c)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	for range int((17 * time.Minute) / time.Second) {
		for _, m := range s.Messages(time.Second) {
			res, err := dec.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			p.Graph.Add(res.Spans)
		}
	}
	if len(opened) != 1 {
		t.Fatalf("%d incidents opened, want 1: %+v", len(opened), opened)
	}
	if at := opened[0].Incident.OpenedAt.Sub(cfg.Start); at < 15*time.Minute {
		t.Errorf("incident opened %v in, before the fault", at)
	}
	open := p.Incidents.List(incident.Open, time.Time{}, time.Time{})
	if len(open) != 1 || open[0].Suspects[0].Service != "cartservice" {
		t.Fatalf("open incidents %+v: want one naming cartservice first", open)
	}
}
