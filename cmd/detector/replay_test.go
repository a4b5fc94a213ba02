package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/pipeline"
)

// TestReplayNezhaNormal replays the real Online Boutique minute and checks
// the graph has the known call edges with plausible latencies.
func TestReplayNezhaNormal(t *testing.T) {
	out := filepath.Join(t.TempDir(), "g.json")
	state := t.TempDir()
	prof := t.TempDir()
	a := replayArgs{inputs: []string{"../../testdata/nezha-ob/normal-2022-08-23.jsonl.gz"}, out: out, stateDir: state,
		cpuProfile: filepath.Join(prof, "cpu.pprof"), memProfile: filepath.Join(prof, "mem.pprof")}
	if err := replay(a, quietLogger(t), io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{a.cpuProfile, a.memProfile} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", f, err)
		}
	}
	var res ReplayOutput
	readJSON(t, out, &res)
	if res.Stats.Spans < 20000 || len(res.Stats.BadMessages) != 0 {
		t.Fatalf("stats %+v", res.Stats)
	}
	// Quiet services' spans arrive in batches spread over many seconds;
	// the default trace idle time must still pair nearly all of them.
	if late := res.Stats.RejectedSpans["too_late"]; int64(late) > res.Stats.Spans/100 {
		t.Errorf("%d of %d spans too late", late, res.Stats.Spans)
	}
	edges := map[string]graph.EdgeView{}
	for _, e := range res.Graph.Edges {
		edges[e.Source+"->"+e.Target] = e
	}
	for _, want := range []string{
		"frontend->cartservice", "frontend->productcatalogservice", "frontend->currencyservice",
		"frontend->recommendationservice", "frontend->adservice", "frontend->checkoutservice",
		"frontend->shippingservice", "checkoutservice->paymentservice", "checkoutservice->emailservice",
		"checkoutservice->shippingservice", "checkoutservice->cartservice",
		"checkoutservice->productcatalogservice", "recommendationservice->productcatalogservice",
	} {
		e, ok := edges[want]
		if !ok {
			t.Errorf("edge %s missing", want)
			continue
		}
		if e.Total.Requests < 2 || e.Total.P50 < 0.05 || e.Total.P50 > 1000 || e.Total.P99 < e.Total.P50 {
			t.Errorf("edge %s implausible: %+v", want, e.Total)
		}
	}
	if len(res.Incidents) != 0 {
		t.Errorf("incidents %v on fault-free traffic", res.Incidents)
	}
	// The replay primed baselines a detector run can start from.
	bs := baselines.New(nil)
	if found, err := bs.LoadFile(filepath.Join(state, pipeline.BaselineFile)); !found || err != nil {
		t.Fatalf("primed snapshot: found %v, %v", found, err)
	}
	if edges, _ := bs.Len(); edges < 10 {
		t.Errorf("primed %d edge baselines, want the Online Boutique's", edges)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestReplayWorkersAgree replays the same file with one graph worker and
// with three: the output (graph, incidents, episodes, counts) is the same.
func TestReplayWorkersAgree(t *testing.T) {
	var outs [2]ReplayOutput
	for i, workers := range []int{1, 3} {
		a := replayArgs{inputs: []string{"../../testdata/nezha-ob/normal-2022-08-23.jsonl.gz"}, out: filepath.Join(t.TempDir(), "g.json")}
		a.graph.Workers = workers
		if err := replay(a, quietLogger(t), io.Discard); err != nil {
			t.Fatal(err)
		}
		readJSON(t, a.out, &outs[i])
		outs[i].Stats.ElapsedSeconds = 0
	}
	one, _ := json.MarshalIndent(outs[0], "", " ")
	three, _ := json.MarshalIndent(outs[1], "", " ")
	if outs[0].Stats.Windows < 5 || len(outs[0].Graph.Edges) < 10 {
		t.Fatalf("too little replayed to compare: %+v", outs[0].Stats)
	}
	if !bytes.Equal(one, three) {
		t.Errorf("replay with 3 workers differs from 1:\n%s\nwant\n%s", three, one)
	}
}

// TestReplayRejectsWhatIsNotSpans: a file none of whose messages decode, or
// an empty one, fails the replay with the reason; a zero or negative
// window or trace idle time given on the command line is refused.
func TestReplayRejectsWhatIsNotSpans(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.jsonl")
	if err := os.WriteFile(text, []byte("# Causeway\n\nnot spans\n{\"resourceSpans\": 3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{text: "none of its", empty: "holds no messages"} {
		err := replay(replayArgs{inputs: []string{path}}, quietLogger(t), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("replay of %s: %v, want an error naming it (%q)", filepath.Base(path), err, want)
		}
	}
	for _, args := range [][]string{{"--window", "0"}, {"--window", "-10s"}, {"--trace-idle", "0s"}} {
		if _, err := parseReplayFlags(append(args, "--input", text)); err == nil || !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("replay %v: %v, want it refused", args, err)
		}
	}
	if a, err := parseReplayFlags([]string{"--input", text, "--window", "5s"}); err != nil || a.graph.Window != 5*time.Second {
		t.Errorf("replay --window 5s: %v %v", a.graph.Window, err)
	}
}
