package baselines

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/sim"
	"github.com/causeway/causeway/span"
)

// simRun replays hours of simulated traffic through the decoder, the
// aggregator and the baselines, and returns every episode opened, as
// "kind key @ minute", in order.
func simRun(t *testing.T, cfg sim.Config, hours float64) (episodes []string, firstFaultWindow map[string]int, bs *Baselines) {
	t.Helper()
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bs = New(nil)
	firstFaultWindow = map[string]int{}
	start := cfg.Start
	agg := graph.New(graph.Config{}, func(w *graph.Window) {
		for _, f := range bs.Observe(w) {
			if !f.Score.Opened {
				continue
			}
			name := ""
			if f.Edge != nil {
				name = "edge " + f.Edge.String()
			} else {
				name = "op " + f.Op.Service + "/" + f.Op.Operation
			}
			minute := int(w.Start.Sub(start).Minutes())
			episodes = append(episodes, fmt.Sprintf("%s @ %dm (%s)", name, minute, f.Score.Explanation))
			if _, ok := firstFaultWindow[name]; !ok {
				firstFaultWindow[name] = int(w.Start.Sub(start) / (10 * time.Second))
			}
		}
	}, nil)
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	steps := int(hours * 3600)
	for range steps {
		for _, m := range s.Messages(time.Second) {
			res, err := dec.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			agg.Add(res.Spans)
		}
	}
	agg.Flush()
	return episodes, firstFaultWindow, bs
}

func sixHourConfig() sim.Config {
	cfg := sim.Default()
	cfg.Faults = nil
	cfg.Rate = 12
	cfg.Period = 2 * time.Hour // peak and off-peak three times over
	cfg.ByTrace = false
	return cfg
}

// TestBaselinesSixHoursNormal: six hours of normal traffic with peak and
// off-peak regimes and a batch job every 30 minutes that slows the catalog
// path by 40% raise at most one anomalous event: the batch job's first run
// may open episodes on the edges of its path at once (it is new), then it
// is learned and never alarms again, and nothing else ever does.
func TestBaselinesSixHoursNormal(t *testing.T) {
	if testing.Short() {
		t.Skip("replays six simulated hours")
	}
	cfg := sixHourConfig()
	cfg.Batch = &sim.BatchJob{Every: 30 * time.Minute, Duration: 3 * time.Minute, Offset: 10 * time.Minute, Rate: 10, Slowdown: 0.4}
	episodes, first, bs := simRun(t, cfg, 6)
	// Episodes opened within five minutes of one another are one event.
	var starts []int
	for _, w := range first {
		starts = append(starts, w)
	}
	sort.Ints(starts)
	events := 0
	for i, w := range starts {
		if i == 0 || w-starts[i-1] > 30 {
			events++
		}
	}
	if events > 1 || len(episodes) > len(first) {
		sort.Strings(episodes)
		t.Errorf("%d events (%d episodes on %d series), want at most one event and one episode per series:\n%v",
			events, len(episodes), len(first), episodes)
	}
	t.Logf("episodes: %v", episodes)
	edges, ops := bs.Len()
	if edges < 15 || ops < 20 {
		t.Errorf("only %d edge and %d operation baselines", edges, ops)
	}
	v := bs.EdgeBaselines("frontend", "productcatalogservice", "")
	if len(v) == 0 || len(v[0].Regimes) < 2 {
		t.Errorf("frontend->productcatalogservice regimes: %+v", v)
	}
}

// TestBaselinesDetectLeafLatency: +30% p50 on a leaf edge for five minutes
// is anomalous within three windows of its start, and nothing else is.
func TestBaselinesDetectLeafLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("replays hours of simulated traffic")
	}
	// Busier traffic, so the leaf edge has calls enough per window to
	// judge its median; the fault lands near the first peak.
	cfg := sixHourConfig()
	cfg.Rate = 200
	f, err := sim.ParseFault("network_delay:paymentservice>api.payments.example:+8ms@20m/5m")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Faults = []sim.Fault{f}
	episodes, first, _ := simRun(t, cfg, 26.0/60)
	faultWindow := 20 * 6
	const edge = "edge paymentservice->api.payments.example:POST"
	got, ok := first[edge]
	if !ok || got < faultWindow || got > faultWindow+2 {
		t.Errorf("%s opened at window %d (found %v), want within 3 windows of %d", edge, got, ok, faultWindow)
	}
	for _, e := range episodes {
		// The delay shows upstream too: in paymentservice's operation and
		// its caller checkoutservice. Those are victims, not unrelated.
		if !strings.Contains(e, "paymentservice") && !strings.Contains(e, "checkoutservice") {
			t.Errorf("unrelated episode: %s", e)
		}
	}
	t.Logf("episodes: %v", episodes)
}
