package baselines

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/graph"
)

// serviceRun feeds Baselines two hours of windows of one quiet service
// with ops operations, each called about once in two minutes (latency
// log-normal around 10 ms of its own time), and from minute 100 on slows
// the operations in slow by factor for ten minutes. It returns the first
// window, counted from the slowdown, in which any operation of the
// service was active, and the finding then (-1 and none when none was).
func serviceRun(t *testing.T, ops int, slow map[int]bool, factor float64, seed uint64) (int, Finding) {
	t.Helper()
	const window = int64(10 * time.Second)
	r := rand.New(rand.NewPCG(seed, 7))
	bs := New(nil)
	for i := range int64(720) {
		w := graph.NewWindow(time.Unix(0, i*window), time.Unix(0, (i+1)*window))
		fault := i >= 600 && i < 660
		for op := range ops {
			if r.Float64() >= 1.0/12 { // once in two minutes on average
				continue
			}
			k := graph.OpKey{Service: "quiet", Operation: "op" + string(rune('a'+op))}
			st := graph.NewOpStats()
			v := 10 * math.Exp(0.3*r.NormFloat64())
			if fault && slow[op] {
				v *= factor
			}
			st.Requests++
			st.Duration.Add(v)
			st.SelfTime.Add(v)
			w.Ops[k] = st
		}
		for _, f := range bs.Observe(w) {
			if f.Op != nil && f.Score.Active {
				if i < 600 {
					t.Fatalf("seed %d: window %d, before the slowdown: %s %s", seed, i, f.Op.Operation, f.Score.Explanation)
				}
				return int(i - 600), f
			}
		}
	}
	return -1, Finding{}
}

// TestServicePooling: a quiet service whose eight operations all slow
// down is found on their evidence together, though each has too few
// calls to be sure alone; the same slowdown on one operation alone does
// not raise the service's test (the others' normal calls weigh against
// it); and a service whose operations are as usual stays quiet.
func TestServicePooling(t *testing.T) {
	all := map[int]bool{}
	for op := range 8 {
		all[op] = true
	}
	pooled := 0
	for seed := range uint64(5) {
		at, f := serviceRun(t, 8, all, 2, seed)
		if at < 0 {
			t.Errorf("seed %d: eight slower operations, no alarm", seed)
			continue
		}
		if strings.Contains(f.Score.Explanation, "as a whole") {
			pooled++
		}
		if at >= 60 {
			t.Errorf("seed %d: alarm %d windows after the slowdown, after it ended", seed, at)
		}
		if at, f := serviceRun(t, 8, map[int]bool{0: true}, 2, seed); at >= 0 && strings.Contains(f.Score.Explanation, "as a whole") {
			t.Errorf("seed %d: one slower operation of eight raised its service's test: %s", seed, f.Score.Explanation)
		}
		if at, f := serviceRun(t, 8, nil, 1, seed); at >= 0 {
			t.Errorf("seed %d: no slowdown, alarm: %s", seed, f.Score.Explanation)
		}
	}
	if pooled == 0 {
		t.Error("no alarm came from the service's pooled test")
	}
}

// TestLatP0ShortReference: a short reference vouches for less: a call
// beyond its p99 weighs less than beyond a long reference's, whose
// probabilities are the quantiles'.
func TestLatP0ShortReference(t *testing.T) {
	long, short := latP0(10000, 300, 30, 0), latP0(20, 1, 0, 0)
	if long[1] != 0.09 || math.Abs(long[2]-(0.01-extremeFloor)) > 1e-12 {
		t.Errorf("long reference: %v, want the quantiles' 0.09 and 0.01", long)
	}
	if want := 1.0 / 21; math.Abs(short[2]-want) > 1e-12 {
		t.Errorf("20 calls, none beyond: p(beyond p99) = %g, want %g", short[2], want)
	}
}
