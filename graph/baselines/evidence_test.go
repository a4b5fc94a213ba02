package baselines

import (
	"bufio"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/sketch"
)

// seqCase is one line of testdata/sequential.txt.
type seqCase struct {
	name                string
	rate, calls, factor float64
	errors              float64
	over                time.Duration
	alarm               bool
	within              time.Duration
}

func readSeqCases(t *testing.T, path string) []seqCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []seqCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		if len(fs) != 7 {
			t.Fatalf("%s:%d: %d fields, want 7", path, n, len(fs))
		}
		num := func(s string) float64 {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
			return v
		}
		over, err := time.ParseDuration(fs[3])
		if err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		c := seqCase{name: fs[0], rate: num(fs[1]), calls: num(fs[2]), over: over, factor: num(fs[4]), errors: num(fs[5])}
		switch exp, within, _ := strings.Cut(fs[6], ":"); exp {
		case "quiet":
		case "alarm":
			c.alarm = true
			if c.within, err = time.ParseDuration(within); err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
		default:
			t.Fatalf("%s:%d: expect %q, want quiet or alarm:DURATION", path, n, fs[6])
		}
		out = append(out, c)
	}
	return out
}

// seqRun feeds one series windows of 10 s: normal calls at c.rate for
// 20 minutes, the fault's calls (and no others) spread evenly over
// c.over, then 5 normal minutes. It returns when the first reported episode began (from the
// fault's start), or -1.
func seqRun(c seqCase, seed uint64) time.Duration {
	const window = 10 * time.Second
	r := rand.New(rand.NewPCG(seed, 7))
	s := newSeqSeries()
	call := func(w *seqWindow, factor, errShare float64) {
		w.calls++
		v := 10 * math.Exp(0.3*r.NormFloat64()) * factor
		if r.Float64() < 0.01 { // a heavy tail: pauses, retries
			v *= 1 / (1 - r.Float64()*0.9)
		}
		w.lat.Add(v)
		if r.Float64() < errShare {
			w.errors++
		}
	}
	normalWindow := func() seqWindow {
		w := seqWindow{lat: sketch.NewLatency()}
		n := poisson(r, c.rate*window.Seconds())
		for range n {
			call(&w, 1, 0.001)
		}
		return w
	}
	history := int(20 * time.Minute / window)
	faultWindows := max(1, int((c.over+window-1)/window))
	total := history + faultWindows + int(5*time.Minute/window)
	perWindow := c.calls / float64(faultWindows)
	owed := 0.0
	for i := range total {
		w := seqWindow{lat: sketch.NewLatency()}
		if i < history || i >= history+faultWindows {
			w = normalWindow()
		} else {
			owed += perWindow
			for ; owed >= 1; owed-- {
				call(&w, c.factor, c.errors)
			}
		}
		start := int64(i) * int64(window)
		sc, ok := s.observe(w, start, start+int64(window), 0, graph.KindP50)
		ok = ok && sc.Active // supporting evidence is no alarm
		if ok && i >= history {
			return time.Duration(i-history+1) * window
		} else if ok {
			return -time.Duration(history-i) * window // before the fault: a false alarm
		}
	}
	return -1
}

func poisson(r *rand.Rand, mean float64) int {
	l, k, p := math.Exp(-mean), 0, 1.0
	if mean > 30 { // normal approximation for busy series
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// TestSequentialScenarios runs testdata/sequential.txt: the check is
// quiet on one slow call, a blip, a deploy's few percent and background
// errors, and alarms on sustained slowdowns and error rates at any rate,
// within the time each line allows. Every case runs on several seeds.
func TestSequentialScenarios(t *testing.T) {
	for _, c := range readSeqCases(t, "testdata/sequential.txt") {
		t.Run(c.name, func(t *testing.T) {
			for seed := range uint64(5) {
				got := seqRun(c, seed)
				switch {
				case got < -1:
					t.Errorf("seed %d: alarm %v before the fault", seed, -got)
				case !c.alarm && got > 0:
					t.Errorf("seed %d: alarm %v after the fault's start, want none", seed, got)
				case c.alarm && got < 0:
					t.Errorf("seed %d: no alarm, want one within %v", seed, c.within)
				case c.alarm && got > c.within:
					t.Errorf("seed %d: alarm after %v, want within %v", seed, got, c.within)
				}
			}
		})
	}
}

// seqAfter is how many windows an episode may outlast its cause: the
// statistic falls back from its cap at the drift of normal calls.
const seqAfter = 6

// TestSequentialRecurringJob: a job that slows a series for a minute
// every ten is learned on its first run (in the warm-up) and stays quiet
// on every later one; a fault of another shape on the same series still
// alarms.
func TestSequentialRecurringJob(t *testing.T) {
	const window = int64(10 * time.Second)
	r := rand.New(rand.NewPCG(3, 4))
	s := newSeqSeries()
	for i := range int64(360) { // an hour
		w := seqWindow{lat: sketch.NewLatency()}
		job := i%60 >= 30 && i%60 < 36 // minutes 5, 15, 25, ...
		fault := i >= 290 && i < 320
		for range 20 {
			v := 10 * math.Exp(0.3*r.NormFloat64())
			switch {
			case fault:
				v *= 8
			case job:
				v *= 2.5
			}
			w.calls++
			w.lat.Add(v)
		}
		sc, ok := s.observe(w, i*window, (i+1)*window, 0, graph.KindP50)
		alarm := ok && sc.Active
		switch {
		case alarm && !fault && i < 320:
			t.Fatalf("window %d (job %v): alarm %s", i, job, sc.Explanation)
		case alarm && i >= 320+seqAfter:
			t.Fatalf("window %d: alarm a minute after the fault: %s", i, sc.Explanation)
		case fault && i >= 293 && !alarm:
			t.Fatalf("window %d: the fault raised no alarm", i)
		}
	}
}

// TestSequentialIdle: an alarmed quiet series is reported in the windows
// between its calls, and no longer once it has had none for seqIdle.
func TestSequentialIdle(t *testing.T) {
	const window = int64(10 * time.Second)
	s := newSeqSeries()
	r := rand.New(rand.NewPCG(5, 6))
	i := int64(0)
	step := func(factor float64) bool {
		w := seqWindow{lat: sketch.NewLatency(), calls: 1}
		w.lat.Add(10 * math.Exp(0.3*r.NormFloat64()) * factor)
		sc, ok := s.observe(w, i*window, (i+1)*window, 0, graph.KindP50)
		i++
		return ok && sc.Active
	}
	for range 120 {
		step(1)
	}
	alarmed := false
	for range 12 {
		alarmed = step(10) || alarmed
	}
	if !alarmed {
		t.Fatal("twelve calls ten times slower raised no alarm")
	}
	for n := int64(1); ; n++ {
		_, ok := s.idle((i+n)*window, graph.KindP50)
		if !ok {
			if got := time.Duration(n * window); got < seqIdle || got > seqIdle+time.Duration(window) {
				t.Fatalf("reported for %v without calls, want %v", got, seqIdle)
			}
			break
		}
	}
}

// TestEpisodeProfiles: episodes whose medians are within the recurrence
// tolerance look alike, further apart or without calls they do not.
func TestEpisodeProfiles(t *testing.T) {
	p := func(ms float64, failed uint8) seqProfile { return seqProfile{Level: logLevel(ms), Failed: failed} }
	for _, tc := range []struct {
		a, b seqProfile
		near bool
	}{
		{p(100, 0), p(100, 0), true},
		{p(100, 0), p(100*(1+seqRecurTolerance)*0.98, 0), true},
		{p(100, 0), p(100*(1+seqRecurTolerance)*1.03, 0), false},
		{p(0.002, 0), p(0.002, 0), true},
		{p(5e6, 0), p(5e6*1.01, 0), true},
		{p(100, 0), p(100, 100*seqRecurTolerance+2), false},
		{p(0, 0), p(0, 0), false},
	} {
		if got := tc.a.near(tc.b); got != tc.near {
			t.Errorf("%+v near %+v: %v, want %v", tc.a, tc.b, got, tc.near)
		}
	}
	if logLevel(1e-9) < 1 || logLevel(1e30) <= logLevel(1e29) || logLevel(math.Inf(1)) != math.MaxUint16 {
		t.Errorf("levels at the extremes: %d, %d, %d", logLevel(1e-9), logLevel(1e30), logLevel(math.Inf(1)))
	}
}

// TestSequentialErrorsBelowRegimeView: windows of nine calls with one or
// two failures are normal to the regime baselines, which never judge an
// error ratio on fewer than MinErrorEvents failures; their verdict must
// not hide those failures from the sequential check, which adds them up
// and alarms on a 15% error rate within two minutes. The same windows
// vetted with MinErrorEvents failures each (a known mode with errors) may
// only lower the error statistic.
func TestSequentialErrorsBelowRegimeView(t *testing.T) {
	const window = int64(10 * time.Second)
	run := func(errorsPerWindow func(i int) float64) (alarmAt int) {
		r := rand.New(rand.NewPCG(11, 12))
		s := newSeqSeries()
		for i := range 120 + 30 {
			w := seqWindow{lat: sketch.NewLatency(), calls: 9}
			for range 9 {
				w.lat.Add(10 * math.Exp(0.3*r.NormFloat64()))
			}
			if i >= 120 {
				w.errors = errorsPerWindow(i)
				w.vetted = true
			}
			sc, ok := s.observe(w, int64(i)*window, int64(i+1)*window, 0, graph.KindP50)
			if ok && sc.Active {
				return i - 120
			}
		}
		return -1
	}
	few := run(func(i int) float64 { return float64(1 + i%2) }) // 1.5 of 9 calls
	if few < 0 || few >= 12 {
		t.Errorf("one or two failures of nine calls a window, vetted by the regime view: alarm after %d windows, want within 12", few)
	}
	if got := run(func(int) float64 { return MinErrorEvents }); got >= 0 {
		t.Errorf("windows with %d failures each, vetted by the regime view: alarm after %d windows, want none", MinErrorEvents, got)
	}
}

// TestSequentialWarmUpLearnsTail: a series whose first calls happen to
// miss its slow mode (about one call in eight takes several times the usual) must
// learn that mode during the warm-up, never alarm on it, and still see a
// fault after. Holding a warm-up run's calls back left the reference with
// the calm first calls for good: every later slow call weighed as a
// fault, the series stayed in an unreported alarm, and it alarmed
// whenever its statistic dipped and rose again.
func TestSequentialWarmUpLearnsTail(t *testing.T) {
	const window = int64(10 * time.Second)
	r := rand.New(rand.NewPCG(7, 8))
	s := newSeqSeries()
	step := func(i int64, fault bool) bool {
		w := seqWindow{lat: sketch.NewLatency()}
		for range 2 {
			v := 0.4 * math.Exp(0.15*r.NormFloat64())
			if i >= 10 && r.Float64() < 0.12 { // the first 20 calls are all fast
				v = 2 + 2*r.Float64()
			}
			if fault {
				v *= 20
			}
			w.calls++
			w.lat.Add(v)
		}
		sc, ok := s.observe(w, i*window, (i+1)*window, 0, graph.KindSelfTime)
		return ok && sc.Active
	}
	i := int64(0)
	for ; i < 360; i++ { // an hour, two calls a window
		if step(i, false) {
			t.Fatalf("window %d: alarm on the series' usual slow mode (reference %v)", i, s.Ref)
		}
	}
	if s.Alarm {
		t.Fatalf("after an hour of its usual calls the series is still in an alarm (reference %v)", s.Ref)
	}
	for end := i + 6; i < end; i++ {
		if step(i, true) {
			return
		}
	}
	t.Fatal("a fault (every call 20 times slower) raised no alarm within a minute")
}
