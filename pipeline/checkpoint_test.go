package pipeline

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/incident"
)

// TestCheckpointSpacing: a checkpoint is skipped (counted busy) until
// captureSpacing times the last capture's cost has passed since it began,
// so capturing, which holds the stream, cannot take most of its time on a
// slow machine or with a large state, whatever the interval asked for.
func TestCheckpointSpacing(t *testing.T) {
	inc, err := incident.NewManager(incident.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := State{Graph: graph.New(graph.Config{}, nil, nil), Baselines: baselines.New(nil), Incidents: inc}
	c := NewCheckpointer(t.TempDir(), nil, st, consume.Config{}, nil, slog.New(slog.DiscardHandler))
	busy := func() float64 { return testutil.ToFloat64(c.m.results.WithLabelValues("busy")) }
	taken := func() bool {
		select {
		case <-c.work:
			return true
		default:
			return false
		}
	}

	c.take()
	if !taken() {
		t.Fatal("the first checkpoint was not taken")
	}
	// As if that capture had held the stream for a minute.
	c.captureCost = time.Minute
	c.lastCapture = time.Now().Add(-(captureSpacing - 1) * time.Minute)
	c.take()
	if taken() || busy() != 1 {
		t.Fatalf("a checkpoint taken %d minutes after a capture that held the stream for one (busy %v)", captureSpacing-1, busy())
	}
	c.lastCapture = time.Now().Add(-captureSpacing * time.Minute)
	c.take()
	if !taken() {
		t.Fatalf("no checkpoint %d minutes after a capture that held the stream for one", captureSpacing)
	}
}
