package sim

import (
	"math"
	"testing"
	"time"

	"github.com/causeway/causeway/span"
)

// TestBatchJob runs the same seed with and without a batch job (three
// 15-second runs, a minute apart, from 20 s) and checks that the job's
// edge appears only during runs, that runs recur at the period, that its
// path is Slowdown slower during runs and unchanged after, and that the
// rest of the shop is untouched.
func TestBatchJob(t *testing.T) {
	const (
		d        = 3 * time.Minute
		every    = time.Minute
		dur      = 15 * time.Second
		offset   = 20 * time.Second
		rate     = 10
		slowdown = 0.4
		runs     = 3 // starting at 20 s, 80 s, 140 s
	)
	cfg := Config{Seed: 21, Rate: 30, Steady: true}
	base := simulate(t, cfg, d, 5*time.Second)
	cfg.Batch = &BatchJob{Every: every, Duration: dur, Offset: offset, Rate: rate, Slowdown: slowdown}
	r := simulate(t, cfg, d, 5*time.Second)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := r.cfg.Start
	running := func(at int64) bool { return s.BatchRunning(time.Unix(0, at)) }

	// Spans of the base run by id: user requests draw the same random
	// numbers with and without the job, so their spans match one to one.
	before := map[span.ID]*sp{}
	for i := range base.spans {
		before[base.spans[i].SpanID] = &base.spans[i]
	}
	near := func(t *testing.T, what string, got, want, tol float64) {
		t.Helper()
		if math.IsNaN(got) || math.Abs(got-want) > tol {
			t.Errorf("%s = %.3f, want %.3f ± %.3f", what, got, want, tol)
		}
	}

	t.Run("edge only during runs", func(t *testing.T) {
		perRun := make([][]int64, runs)
		for _, tr := range r.traces {
			if tr.root.Service != "batchjob" {
				for _, p := range tr.spans {
					if p.Service == "batchjob" {
						t.Fatalf("batchjob span %s in a user trace", p.Name)
					}
				}
				continue
			}
			checkJobTrace(t, tr)
			at := tr.root.Start
			k := int((at - start.Add(offset).UnixNano()) / int64(every))
			if !running(at) || k < 0 || k >= runs {
				t.Fatalf("job request at %v, outside every run", time.Duration(at-start.UnixNano()))
			}
			perRun[k] = append(perRun[k], at)
		}
		for k, starts := range perRun {
			from := start.Add(offset + time.Duration(k)*every).UnixNano()
			to := from + int64(dur)
			if n := float64(len(starts)); math.Abs(n-rate*dur.Seconds()) > 4*math.Sqrt(rate*dur.Seconds()) {
				t.Errorf("run %d: %d job requests, want about %v", k, len(starts), rate*dur.Seconds())
				continue
			}
			if first, last := starts[0], starts[len(starts)-1]; first-from > int64(time.Second) || to-last > int64(time.Second) {
				t.Errorf("run %d: job requests from %v to %v, want the whole run %v to %v", k,
					time.Duration(first-start.UnixNano()), time.Duration(last-start.UnixNano()),
					time.Duration(from-start.UnixNano()), time.Duration(to-start.UnixNano()))
			}
		}
	})

	t.Run("user traffic unchanged", func(t *testing.T) {
		users := 0
		for _, tr := range r.traces {
			if tr.root.Service == "batchjob" {
				continue
			}
			users++
			if b := before[tr.root.SpanID]; b == nil || b.TraceID != tr.root.TraceID || b.Start != tr.root.Start {
				t.Fatalf("user request %s changed with the batch job", tr.root.TraceID)
			}
		}
		if users != len(base.traces) {
			t.Errorf("%d user requests with the batch job, %d without", users, len(base.traces))
		}
	})

	// Durations of the spans that match, in the job's runs or outside,
	// by when their trace started.
	rootStart, jobs := map[span.TraceID]int64{}, map[span.TraceID]bool{}
	for _, tr := range r.traces {
		rootStart[tr.root.TraceID] = tr.root.Start
		jobs[tr.root.TraceID] = tr.root.Service == "batchjob"
	}
	inRuns := func(match func(*sp) bool, in bool) func(*sp) bool {
		return func(p *sp) bool { return match(p) && running(rootStart[p.TraceID]) == in }
	}

	t.Run("catalog-db slower during runs only", func(t *testing.T) {
		query := client("productcatalogservice", "catalog-db")
		slowed, same := 0, 0
		for i := range r.spans {
			p := &r.spans[i]
			if !query(p) {
				continue
			}
			b := before[p.SpanID]
			if b == nil {
				if jobs[p.TraceID] {
					continue // the job's own query
				}
				t.Fatalf("user query %s missing from the run without the job", p.SpanID)
			}
			ratio := float64(p.Duration()) / float64(b.Duration())
			if running(rootStart[p.TraceID]) {
				slowed++
				if math.Abs(ratio-(1+slowdown)) > 1e-3 {
					t.Fatalf("query in a run %.4fx as long as without the job, want %v", ratio, 1+slowdown)
				}
			} else {
				same++
				if p.Duration() != b.Duration() {
					t.Fatalf("query outside runs took %v, %v without the job", time.Duration(p.Duration()), time.Duration(b.Duration()))
				}
			}
		}
		if slowed < 1000 || same < 1000 {
			t.Fatalf("%d queries in runs, %d outside", slowed, same)
		}
		// What a detector sees on the edge: medians during runs and after.
		users := func(p *sp) bool { return query(p) && before[p.SpanID] != nil }
		out := median(r.durations(inRuns(users, false)))
		near(t, "user query median, runs/outside", median(r.durations(inRuns(users, true)))/out, 1+slowdown, 0.1)
		last := start.Add(offset + (runs-1)*every + dur).UnixNano()
		after := median(r.durations(func(p *sp) bool { return users(p) && rootStart[p.TraceID] >= last }))
		near(t, "user query median, after the last run/outside", after/out, 1, 0.1)
		all := median(r.durations(inRuns(query, true))) / median(r.durations(inRuns(query, false)))
		if all < 1+slowdown-0.1 {
			t.Errorf("edge median rises %.2fx in runs, want at least %.2fx", all, 1+slowdown-0.1)
		}
	})

	t.Run("frontend to cartservice unchanged", func(t *testing.T) {
		calls := 0
		for i := range r.spans {
			p := &r.spans[i]
			if !client("frontend", "cartservice")(p) && !server("cartservice", "")(p) {
				continue
			}
			calls++
			if b := before[p.SpanID]; b == nil || b.Duration() != p.Duration() {
				t.Fatalf("%s %s span %s changed with the batch job", p.Service, p.Kind, p.SpanID)
			}
		}
		if calls < 1000 {
			t.Fatalf("%d cart spans", calls)
		}
	})
}

// checkJobTrace checks the shape of one job request: reindex in batchjob,
// calling ListProducts, which queries catalog-db.
func checkJobTrace(t *testing.T, tr *trace) {
	t.Helper()
	root := tr.root
	if root.Name != "reindex" || root.Kind != span.KindInternal {
		t.Fatalf("job root %s %s, want internal reindex", root.Kind, root.Name)
	}
	want := []struct {
		service string
		kind    span.Kind
		name    string
	}{
		{"batchjob", span.KindClient, "hipstershop.ProductCatalogService/ListProducts"},
		{"productcatalogservice", span.KindServer, "hipstershop.ProductCatalogService/ListProducts"},
		{"productcatalogservice", span.KindClient, "SELECT products"},
	}
	p := root
	for _, w := range want {
		kids := tr.kids[p.SpanID]
		if len(kids) != 1 || kids[0].Service != w.service || kids[0].Kind != w.kind || kids[0].Name != w.name {
			t.Fatalf("under %s %s: %d spans, want one %s %s %s", p.Service, p.Name, len(kids), w.service, w.kind, w.name)
		}
		p = kids[0]
	}
	if len(tr.spans) != len(want)+1 {
		t.Fatalf("job request with %d spans, want %d", len(tr.spans), len(want)+1)
	}
}

// TestBatchSchedule checks when runs happen and that job requests fall in
// them, for the zero BatchJob and a few others.
func TestBatchSchedule(t *testing.T) {
	tests := []struct {
		name    string
		batch   BatchJob
		running []time.Duration
		idle    []time.Duration
	}{
		{
			name:    "defaults",
			batch:   BatchJob{},
			running: []time.Duration{0, 2*time.Minute + 59*time.Second, 30 * time.Minute, 5*time.Hour + 31*time.Minute},
			idle:    []time.Duration{3 * time.Minute, 29 * time.Minute, 33 * time.Minute},
		},
		{
			name:    "offset",
			batch:   BatchJob{Every: 30 * time.Minute, Duration: 3 * time.Minute, Offset: 10 * time.Minute},
			running: []time.Duration{10 * time.Minute, 12 * time.Minute, 40 * time.Minute, 5*time.Hour + 40*time.Minute},
			idle:    []time.Duration{0, 9 * time.Minute, 13 * time.Minute, 30 * time.Minute},
		},
		{
			name:    "rare requests skip idle time",
			batch:   BatchJob{Every: time.Second, Duration: time.Millisecond, Rate: 0.01},
			running: []time.Duration{0, time.Hour},
			idle:    []time.Duration{time.Millisecond, 999 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.batch
			s, err := New(Config{Seed: 1, Batch: &b})
			if err != nil {
				t.Fatal(err)
			}
			if b != tt.batch {
				t.Errorf("New changed the caller's BatchJob to %+v", b)
			}
			for _, at := range tt.running {
				if !s.BatchRunning(s.Now().Add(at)) {
					t.Errorf("not running at %v", at)
				}
			}
			for _, at := range tt.idle {
				if s.BatchRunning(s.Now().Add(at)) {
					t.Errorf("running at %v", at)
				}
			}
			j := s.job
			prev := j.next
			for range 1000 {
				if !j.runs.active(j.next) || j.next < prev {
					t.Fatalf("job request at %v, after one at %v", time.Duration(j.next-s.start), time.Duration(prev-s.start))
				}
				prev = j.next
				j.next = j.after(j.next)
			}
		})
	}
	idle, _ := New(Config{})
	if idle.BatchRunning(idle.Now()) {
		t.Error("running without a batch job")
	}
}
