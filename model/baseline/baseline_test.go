package baseline

import (
	"bytes"
	"encoding/gob"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// features: log p50 and log p99 latency (ms), error ratio, log rate (/s).
func testConfig() *Config {
	return &Config{Features: []Feature{
		{Name: "p50", Unit: "ms", Scale: Log, MinSpread: 0.03, MinAbs: 2, MinRel: 0.2},
		{Name: "p99", Unit: "ms", Scale: Log, MinSpread: 0.05, MinAbs: 2, MinRel: 0.2},
		{Name: "error ratio", Unit: "%", Percent: true, MinSpread: 0.005, MinAbs: 2, MinEvents: 3},
		{Name: "rate", Unit: "/s", Scale: Log, Direction: Context, MinSpread: 0.05},
	}}
}

// traffic draws a window: rate in req/s, latency rising with load as a
// queue does, some noise.
type traffic struct{ r *rand.Rand }

func (t traffic) window(rate, p50 float64, errRatio float64) ([]float64, float64) {
	rate *= math.Exp(0.05 * t.r.NormFloat64())
	p50 *= math.Exp(0.04 * t.r.NormFloat64())
	n := rate * 10
	return []float64{math.Log(p50), math.Log(p50 * 4 * math.Exp(0.06*t.r.NormFloat64())), errRatio, math.Log(rate)}, n
}

// train feeds alternating off-peak (20/s, 10 ms) and peak (60/s, 15 ms)
// stretches of 60 windows.
func train(b *Baseline, tr traffic, windows int) (anomalies int) {
	for i := range windows {
		rate, p50 := 20.0, 10.0
		if (i/60)%2 == 1 {
			rate, p50 = 60, 15
		}
		x, n := tr.window(rate, p50, 0)
		if s := b.Observe(int64(i), x, n); s.Anomalous {
			anomalies++
		}
	}
	return anomalies
}

func TestRegimesAndLoadAwareScoring(t *testing.T) {
	b := New(testConfig(), 42)
	tr := traffic{rand.New(rand.NewPCG(1, 2))}
	if a := train(b, tr, 720); a > 2 {
		t.Errorf("%d anomalous windows while learning normal traffic", a)
	}
	if rs := b.Regimes(); len(rs) != 2 || rs[0].Name != "off-peak" || rs[1].Name != "peak" {
		t.Fatalf("regimes: %v", b)
	}
	for _, tc := range []struct {
		name       string
		rate, p50  float64
		errs       float64
		anomalous  bool
		feature    string
		regime     string
		explainHas string
	}{
		{"off-peak as usual", 20, 10, 0, false, "", "off-peak", ""},
		{"peak as usual", 60, 15, 0, false, "", "peak", ""},
		{"surge beyond peak, latency of peak", 120, 15, 0, false, "", "peak", ""},
		{"+60% p50 off-peak", 20, 16, 0, true, "p50", "", "p50"},
		{"+30% p50 off-peak, below peak latency", 20, 13, 0, true, "p50", "", "p50"},
		{"peak latency at off-peak load", 20, 15, 0, true, "p50", "", "p50"},
		{"quiet: a tenth of off-peak load", 2, 10, 0, false, "", "off-peak", ""},
		{"+50% p50 at peak", 60, 22.5, 0, true, "p50", "peak", "in regime 'peak'"},
		{"errors 10%", 20, 10, 0.10, true, "error ratio", "off-peak", "error ratio 10.0%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Score on a copy, so cases do not teach each other.
			st := b.State()
			c, err := Restore(testConfig(), st)
			if err != nil {
				t.Fatal(err)
			}
			x, n := traffic{rand.New(rand.NewPCG(9, 9))}.window(tc.rate, tc.p50, tc.errs)
			s := c.Observe(0, x, n)
			if s.Anomalous != tc.anomalous {
				t.Fatalf("anomalous = %v (score %.2f, %s), want %v; %v", s.Anomalous, s.Value, s.Explanation, tc.anomalous, c)
			}
			if tc.feature != "" && s.Feature != tc.feature {
				t.Errorf("worst feature %q, want %q", s.Feature, tc.feature)
			}
			if tc.regime != "" && s.Regime != tc.regime {
				t.Errorf("regime %q, want %q", s.Regime, tc.regime)
			}
			if !strings.Contains(s.Explanation, tc.explainHas) {
				t.Errorf("explanation %q lacks %q", s.Explanation, tc.explainHas)
			}
		})
	}
}

func TestMinimumEffectOnFastEdges(t *testing.T) {
	b := New(testConfig(), 1)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range 200 { // a 0.3 ms cache edge, very steady
		p := 0.3 * math.Exp(0.01*r.NormFloat64())
		b.Observe(int64(i), []float64{math.Log(p), math.Log(p * 2), 0, math.Log(100)}, 1000)
	}
	// +100%: many spreads away, but only +0.3 ms.
	s := b.Observe(0, []float64{math.Log(0.6), math.Log(1.2), 0, math.Log(100)}, 1000)
	if s.Anomalous {
		t.Fatalf("0.3 ms -> 0.6 ms alarmed: %s", s.Explanation)
	}
	// One error in 20 calls (5%) is below the 3-event minimum.
	if s := b.Observe(0, []float64{math.Log(0.3), math.Log(0.6), 0.05, math.Log(2)}, 20); s.Anomalous {
		t.Fatalf("a single error alarmed: %s", s.Explanation)
	}
}

func TestEpisodesNeedConsecutiveWindowsAndRecover(t *testing.T) {
	b := New(testConfig(), 5)
	tr := traffic{rand.New(rand.NewPCG(5, 5))}
	train(b, tr, 240)
	bad, _ := tr.window(20, 14, 0) // +40%: anomalous, not strong enough alone
	good, n := tr.window(20, 10, 0)
	var opened, closed []int
	for i, x := range [][]float64{bad, good, bad, bad, bad, good, good, bad, good, good, good} {
		s := b.Observe(int64(i), x, n)
		if s.Opened {
			opened = append(opened, i)
		}
		if s.Closed {
			closed = append(closed, i)
		}
	}
	if !reflect.DeepEqual(opened, []int{4}) || !reflect.DeepEqual(closed, []int{10}) {
		t.Fatalf("opened at %v, closed at %v; want [4] and [10]", opened, closed)
	}
}

func TestRestoreScoresLikeUninterrupted(t *testing.T) {
	run := func(snapAt int) []Score {
		cfg := testConfig()
		b := New(cfg, 77)
		tr := traffic{rand.New(rand.NewPCG(7, 7))}
		var out []Score
		for i := range 600 {
			if i == snapAt {
				var buf bytes.Buffer
				if err := gob.NewEncoder(&buf).Encode(b.State()); err != nil {
					t.Fatal(err)
				}
				var st State
				if err := gob.NewDecoder(&buf).Decode(&st); err != nil {
					t.Fatal(err)
				}
				var err error
				if b, err = Restore(testConfig(), st); err != nil {
					t.Fatal(err)
				}
			}
			rate, p50 := 20.0, 10.0
			if (i/60)%2 == 1 {
				rate, p50 = 60, 15
			}
			if i > 500 && i < 520 {
				p50 *= 2
			}
			x, n := tr.window(rate, p50, 0)
			x[1] = math.NaN() // missing values survive the snapshot too
			out = append(out, b.Observe(int64(i), x, n))
		}
		return out
	}
	want, got := run(-1), run(333)
	if !reflect.DeepEqual(want, got) {
		for i := range want {
			if !reflect.DeepEqual(want[i], got[i]) {
				t.Fatalf("window %d: restored %+v, uninterrupted %+v", i, got[i], want[i])
			}
		}
	}
	if !want[510].Active {
		t.Fatalf("the injected fault was not detected: %+v", want[510])
	}
}

func TestStrongWindowOpensAtOnce(t *testing.T) {
	b := New(testConfig(), 6)
	tr := traffic{rand.New(rand.NewPCG(6, 6))}
	train(b, tr, 240)
	x, n := tr.window(20, 100, 0) // tenfold
	if s := b.Observe(0, x, n); !s.Opened {
		t.Fatalf("a tenfold slowdown did not open an episode at once: %+v", s)
	}
}

func TestRestoreRejectsOtherShapes(t *testing.T) {
	b := New(testConfig(), 1)
	train(b, traffic{rand.New(rand.NewPCG(1, 1))}, 50)
	cfg := testConfig()
	cfg.Features = cfg.Features[:3]
	if _, err := Restore(cfg, b.State()); err == nil {
		t.Fatal("restored a 4-feature state into 3 features")
	}
}
