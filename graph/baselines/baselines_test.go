package baselines

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/baseline"
	"github.com/causeway/causeway/model/sketch"
	"github.com/causeway/causeway/sim"
	"github.com/causeway/causeway/span"
)

// simWindows returns the closed windows of simulated traffic.
func simWindows(t testing.TB, cfg sim.Config, d time.Duration) []*graph.Window {
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ws []*graph.Window
	agg := graph.New(graph.Config{}, func(w *graph.Window) { ws = append(ws, w) }, nil)
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	for range int(d / time.Second) {
		for _, m := range s.Messages(time.Second) {
			res, err := dec.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			agg.Add(res.Spans)
		}
	}
	agg.Flush()
	return ws
}

type verdict struct {
	Key   string
	Score baseline.Score
}

func observeAll(bs *Baselines, ws []*graph.Window) []verdict {
	var out []verdict
	for _, w := range ws {
		for _, f := range bs.Observe(w) {
			key := ""
			if f.Edge != nil {
				key = f.Edge.String()
			} else {
				key = f.Op.Service + "/" + f.Op.Operation
			}
			out = append(out, verdict{fmt.Sprintf("%s@%d", key, w.Start.Unix()), f.Score})
		}
	}
	return out
}

// TestBaselinesRestartGivesSameScores: snapshot, restore into fresh
// baselines, go on: the verdicts are those of an uninterrupted run.
func TestBaselinesRestartGivesSameScores(t *testing.T) {
	cfg := sim.Default()
	cfg.Rate = 40
	cfg.Faults = []sim.Fault{mustFault(t, "latency:cartservice:+15ms@25m/3m")}
	ws := simWindows(t, cfg, 30*time.Minute)

	want := observeAll(New(nil), ws)
	if len(want) == 0 {
		t.Fatal("the fault raised nothing: the comparison would prove little")
	}

	cut := len(ws) / 2
	first := New(nil)
	got := observeAll(first, ws[:cut])
	var buf bytes.Buffer
	if err := first.Save(&buf); err != nil {
		t.Fatal(err)
	}
	restored := New(nil)
	if err := restored.Load(&buf); err != nil {
		t.Fatal(err)
	}
	got = append(got, observeAll(restored, ws[cut:])...)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("restored run differs: %d verdicts vs %d uninterrupted", len(got), len(want))
	}

	// And the file form: atomic save, then load.
	path := t.TempDir() + "/baselines.snap"
	if err := first.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	again := New(nil)
	if found, err := again.LoadFile(path); !found || err != nil {
		t.Fatalf("LoadFile = %v, %v", found, err)
	}
	if e1, o1 := first.Len(); true {
		if e2, o2 := again.Len(); e1 != e2 || o1 != o2 {
			t.Fatalf("loaded %d/%d baselines, saved %d/%d", e2, o2, e1, o1)
		}
	}
}

func mustFault(t testing.TB, s string) sim.Fault {
	f, err := sim.ParseFault(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBaselinesLoadRefusesOtherSnapshots(t *testing.T) {
	bs := New(nil)
	if err := bs.Load(bytes.NewReader([]byte("not gzip"))); err == nil {
		t.Fatal("loaded garbage")
	}
	if found, err := bs.LoadFile(t.TempDir() + "/none"); found || err != nil {
		t.Fatalf("missing file: %v, %v; want not found, no error", found, err)
	}

	// A snapshot learned from 10 s windows is refused by baselines that
	// observe 20 s windows, naming both; read as it is by baselines of
	// 10 s windows, or that do not know theirs (as before windows were
	// recorded).
	ten := New(nil)
	ten.SetWindow(10 * time.Second)
	var snap bytes.Buffer
	if err := ten.Save(&snap); err != nil {
		t.Fatal(err)
	}
	twenty := New(nil)
	twenty.SetWindow(20 * time.Second)
	var other *OtherWindowError
	if err := twenty.Load(bytes.NewReader(snap.Bytes())); !errors.As(err, &other) || other.Snapshot != 10*time.Second || other.Running != 20*time.Second {
		t.Errorf("20 s baselines loading a 10 s snapshot: %v", err)
	}
	for _, w := range []time.Duration{10 * time.Second, 0} {
		b := New(nil)
		b.SetWindow(w)
		if err := b.Load(bytes.NewReader(snap.Bytes())); err != nil {
			t.Errorf("window %v loading a 10 s snapshot: %v", w, err)
		}
	}
}

// steadyEdge feeds one edge baseline n windows of plausible traffic.
func steadyEdge(b *baseline.Baseline, r *rand.Rand, n int) {
	for i := range n {
		rate := 20.0 * (1 + 0.5*math.Sin(float64(i)/60))
		x := []float64{math.Log(10 * math.Exp(0.05*r.NormFloat64())), math.Log(25), math.NaN(), 0, math.Log(rate), 0.4}
		b.Observe(int64(i), x, rate*10)
	}
}

// bytesPerEdge measures the heap held per edge in steady state: its
// baseline and its sequential check's state.
func bytesPerEdge(n int) float64 {
	cfg := &baseline.Config{Features: EdgeFeatures()}
	r := rand.New(rand.NewPCG(1, 2))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	keep := make([]*baseline.Baseline, n)
	refs := map[int]*seqSeries{}
	for i := range keep {
		keep[i] = baseline.New(cfg, uint64(i))
		steadyEdge(keep[i], r, 400)
		w := sketch.NewLatency()
		for range 200 {
			w.Add(10 * math.Exp(0.8*r.NormFloat64()))
		}
		s := newSeqSeries()
		refs[i] = s
		for j := range 20 {
			s.observe(seqWindow{calls: 200, lat: w}, int64(j)*10e9, int64(j+1)*10e9, 0, graph.KindP50)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	runtime.KeepAlive(refs)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// TestBaselineMemoryPerEdge: a series' baseline and reference stay under
// 4 KiB (2.9 KiB measured), so an edge with its share of operations (half
// a series more) and its totals fits the 8 KiB target BenchmarkScaleSteady
// checks.
func TestBaselineMemoryPerEdge(t *testing.T) {
	got := bytesPerEdge(500)
	t.Logf("%.0f bytes per series baseline and sequential check", got)
	if got > 4<<10 {
		t.Fatalf("%.0f bytes per series baseline and reference, want under 4 KiB", got)
	}
}

// BenchmarkBaselineObserve is the cost of scoring and learning one window
// of one edge, in steady state; it also reports the memory per edge.
func BenchmarkBaselineObserve(b *testing.B) {
	cfg := &baseline.Config{Features: EdgeFeatures()}
	r := rand.New(rand.NewPCG(3, 4))
	bl := baseline.New(cfg, 1)
	steadyEdge(bl, r, 400)
	x := []float64{math.Log(10), math.Log(25), math.NaN(), 0, math.Log(20), 0.4}
	b.ReportAllocs()
	i := int64(400)
	for b.Loop() {
		x[0] = math.Log(10 * math.Exp(0.05*r.NormFloat64()))
		bl.Observe(i, x, 200)
		i++
	}
	b.ReportMetric(bytesPerEdge(500), "bytes/edge")
}

// TestHorizonsInEventTime: the baselines' horizons are event time, so a
// detector with longer windows remembers as long and fills as long in
// fewer windows; without SetWindow they are those of 10 s windows.
func TestHorizonsInEventTime(t *testing.T) {
	for _, tc := range []struct {
		window                   time.Duration
		fill, horizon, recluster int
	}{
		{0, 0, 0, 0}, // the model's defaults, which are 10 s windows'
		{10 * time.Second, 48, 2160, 30},
		{time.Minute, 8, 360, 5},
	} {
		bs := New(nil)
		bs.SetWindow(tc.window)
		for _, cfg := range []*baseline.Config{bs.edgeCfg, bs.opCfg} {
			if cfg.Fill != tc.fill || cfg.Horizon != tc.horizon || cfg.Recluster != tc.recluster {
				t.Errorf("window %v: fill %d, horizon %d, recluster %d windows; want %d, %d, %d",
					tc.window, cfg.Fill, cfg.Horizon, cfg.Recluster, tc.fill, tc.horizon, tc.recluster)
			}
		}
	}
	// The sequential check's reference keeps the same share of its counts
	// over six hours whatever the window.
	keep := func(window time.Duration) float64 {
		return math.Pow(seqDecay(int64(window)), float64(seqMemory/window))
	}
	if a, b := keep(10*time.Second), keep(time.Minute); math.Abs(a-b) > 0.01 {
		t.Errorf("over %v, counts keep %.3f with 10 s windows and %.3f with 1 min ones", seqMemory, a, b)
	}
}
