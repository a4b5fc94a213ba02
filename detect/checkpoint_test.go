package detect

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

// TestCheckpointRestoreIsExact: a pipeline whose state (baselines, open
// windows and pending traces, incidents) is saved and loaded into a fresh
// pipeline at random messages — as a detector restarted from a checkpoint
// is — closes the same windows with the same findings and ends with the
// same incidents as one that never stopped; also with several graph
// workers, and with another number of them after each restart.
func TestCheckpointRestoreIsExact(t *testing.T) {
	for _, workers := range [][]int{{1}, {3}, {2, 1, 4}} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) { checkpointRestore(t, workers) })
	}
}

// checkpointRestore restarts with workers[i % len] after the i-th cut.
// With one count, every window must be the same; with several, float sums
// differ in their last bits (as between any two worker counts), and only
// the incidents are compared.
func checkpointRestore(t *testing.T, workers []int) {
	cfg := sim.Default()
	cfg.Rate, cfg.ByTrace = 20, false
	s := simtest.New(t, cfg, "latency:cartservice:+40ms@12m/3m")
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	var msgs [][]span.Span
	for range int((17 * time.Minute) / time.Second) {
		for _, m := range s.Messages(time.Second) {
			res, err := dec.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, slices.Clone(res.Spans))
		}
	}

	type run struct {
		p       *Pipeline
		windows []string // one line per closed window: its end and findings
	}
	newRun := func(r *run, workers int) {
		p, err := New(Options{Graph: graph.Config{Workers: workers}, OnWindow: func(w *graph.Window, fs []baselines.Finding, ch []incident.Change, err error) {
			if err != nil {
				t.Error(err)
			}
			line := w.End.Format(time.TimeOnly)
			for _, f := range fs {
				line += fmt.Sprintf(" %v/%v:%.6g", f.Edge, f.Op, f.Score.Value)
			}
			var calls []string
			for k, e := range w.Edges {
				calls = append(calls, fmt.Sprintf(" %s=%d/%s", k, e.Requests, e.Latency))
			}
			slices.Sort(calls)
			line += strings.Join(calls, "")
			for _, c := range ch {
				line += " " + string(c.Kind) + ":" + c.Incident.ID
			}
			r.windows = append(r.windows, line)
		}})
		if err != nil {
			t.Fatal(err)
		}
		r.p = p
		t.Cleanup(p.Close)
	}
	var straight run
	newRun(&straight, workers[0])
	for _, m := range msgs {
		straight.p.Graph.AddFrom(0, m)
	}
	straight.p.Graph.Flush()

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	var cuts []int
	for range 5 {
		cuts = append(cuts, rng.IntN(len(msgs)))
	}
	slices.Sort(cuts)
	var restarted run
	newRun(&restarted, workers[0])
	for i, m := range msgs {
		if len(cuts) > 0 && cuts[0] == i {
			cuts = cuts[1:]
			// The graph first: with several workers it waits until
			// every window closed so far has been scored.
			var b, g, inc bytes.Buffer
			if err := restarted.p.Graph.SaveState(&g); err != nil {
				t.Fatal(err)
			}
			if err := restarted.p.Baselines.Save(&b); err != nil {
				t.Fatal(err)
			}
			if err := restarted.p.Incidents.SaveState(&inc); err != nil {
				t.Fatal(err)
			}
			windows := restarted.windows
			restarted.p.Close()
			newRun(&restarted, workers[(len(cuts)+1)%len(workers)])
			restarted.windows = windows
			if err := restarted.p.Baselines.Load(&b); err != nil {
				t.Fatal(err)
			}
			if err := restarted.p.Graph.LoadState(&g); err != nil {
				t.Fatal(err)
			}
			if err := restarted.p.Incidents.LoadState(&inc); err != nil {
				t.Fatal(err)
			}
		}
		restarted.p.Graph.AddFrom(0, m)
	}
	restarted.p.Graph.Flush()

	exact := len(workers) == 1
	if len(straight.windows) != len(restarted.windows) {
		t.Errorf("%d windows closed, restarted %d", len(straight.windows), len(restarted.windows))
	}
	for i := range min(len(straight.windows), len(restarted.windows)) {
		if exact && straight.windows[i] != restarted.windows[i] {
			t.Fatalf("window %d:\nstraight  %s\nrestarted %s", i, straight.windows[i], restarted.windows[i])
		}
	}
	summary := func(p *Pipeline) string {
		var out []string
		for _, inc := range p.Incidents.List("", time.Time{}, time.Time{}) {
			out = append(out, fmt.Sprintf("%s %s r%d %s %v", inc.ID, inc.State, inc.Revision, inc.Suspects[0].Service, inc.Services))
		}
		return strings.Join(out, "\n")
	}
	got, want := summary(restarted.p), summary(straight.p)
	if got != want || want == "" {
		t.Errorf("incidents after restarts:\n%s\nwant\n%s", got, want)
	}
	// (The baselines' bytes are not compared: NaN features and sketch
	// stores re-encode differently with the same content. What they
	// decide is compared above, window by window.)
	t.Logf("%d windows, incidents:\n%s", len(straight.windows), want)
}
