package main

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/fleet"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/internal/metrictest"
)

// detector is one Main under test, with the windows it analysed.
type detector struct {
	name   string
	m      *Main
	cancel context.CancelFunc
	done   chan error

	mu       sync.Mutex
	requests map[time.Time]int64 // calls per window start
}

func (d *detector) calls() map[time.Time]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[time.Time]int64, len(d.requests))
	for k, v := range d.requests {
		out[k] = v
	}
	return out
}

// TestFleetMatchesOneDetector runs two fleet members and one detector
// alone on the same simulated traffic (in-process broker, trace-keyed
// messages over 3 partitions) with a fault. The member sending alerts is
// stopped after the incident opens. The other takes over its partitions
// and the alerts: every window the lone detector saw is in the fleet's
// with the same calls (no window lost, none counted twice), the incidents
// name the same suspect, and each alert event is sent once.
func TestFleetMatchesOneDetector(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three detectors for about a minute")
	}
	log := quietLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	demo, err := startDemo(ctx, DemoConfig{Speed: 4, Seed: 3, ByTrace: true, History: 12 * time.Minute,
		Faults: []string{"latency:paymentservice:+200ms@30s/60s"}}, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer demo.Close()
	go func() { _ = demo.Run(ctx) }()

	hook := newEventHook(t)
	defer hook.Close()
	opened, resolved := hook.opened, hook.resolved

	windows := make(chan string, 1024)
	start := func(name, group string, cluster bool) *detector {
		cfg := defaultConfig()
		cfg.Listen = "127.0.0.1:0"
		cfg.Kafka = demo.kafkaConfig()
		cfg.Kafka.GroupID = group
		cfg.Kafka.MaxClockSkew = 100 * 365 * 24 * time.Hour // simulated time runs ahead
		cfg.Graph.TraceIdle, cfg.Graph.Lateness = 5*time.Second, 2*time.Second
		cfg.Idle = 0
		if cluster {
			cfg.Cluster = fleet.Config{Enabled: true, Member: name, SessionTimeout: 6 * time.Second}
			cfg.WebhookURL = hook.URL
			cfg.addWebhook()
		}
		d := &detector{name: name, done: make(chan error, 1), requests: map[time.Time]int64{}}
		d.m = &Main{Config: cfg, Log: log.With("detector", name), OnWindow: func(w *graph.Window) {
			var n int64
			for _, e := range w.Edges {
				n += e.Requests
			}
			d.mu.Lock()
			d.requests[w.Start] += n
			d.mu.Unlock()
			select {
			case windows <- name:
			default:
			}
		}}
		var dctx context.Context
		dctx, d.cancel = context.WithCancel(ctx)
		go func() { d.done <- d.m.Run(dctx) }()
		if d.m.Addr(ctx) == "" {
			t.Fatalf("%s did not start", name)
		}
		return d
	}
	solo := start("solo", "solo", false)
	a := start("a", "fleet", true)
	b := start("b", "fleet", true)
	defer func() {
		for _, d := range []*detector{solo, a, b} {
			d.cancel()
			if err := <-d.done; err != nil {
				t.Errorf("%s: %v", d.name, err)
			}
			d.done <- nil // for a second drain
		}
	}()

	// The incident opens; stop the member sending alerts.
	var first alert.Event
	select {
	case first = <-opened:
	case <-ctx.Done():
		t.Fatal("no opened event from the fleet")
	}
	leader, survivor := a, b
	if b.m.node.Leader() {
		leader, survivor = b, a
	}
	// Once the survivor has heard of the delivery (read the leader's
	// record of it, and nothing left to send), stop the leader. (Stopped
	// before, the survivor would send the event again, with the same
	// idempotency key. An empty queue alone may only mean the survivor has
	// not raised the event yet.)
	for metrictest.Value(t, survivor.m.reg, "causeway_fleet_deliveries_heard_total") < 1 || survivor.m.notifier.Pending() > 0 {
		select {
		case <-windows:
		case <-ctx.Done():
			t.Fatal("the delivery was never acknowledged to the other member")
		}
	}
	t.Logf("incident %s opened (top suspect %s); stopping the leader %s", first.IncidentID, first.TopSuspect(), leader.name)
	leader.cancel()
	if err := <-leader.done; err != nil {
		t.Fatalf("%s: %v", leader.name, err)
	}
	leader.done <- nil

	// The survivor resolves it once the fault is over; wait until both
	// have resolved everything and seen the same windows.
	select {
	case <-resolved:
	case <-ctx.Done():
		t.Fatal("no resolved event after the leader stopped")
	}
	deadline := time.After(time.Minute)
	for {
		if len(solo.m.incidents.List(incident.Open, time.Time{}, time.Time{})) == 0 &&
			len(survivor.m.incidents.List(incident.Open, time.Time{}, time.Time{})) == 0 &&
			!latest(survivor.calls()).Before(latest(solo.calls())) {
			break
		}
		select {
		case <-windows:
		case <-deadline:
			t.Fatal("incidents still open a minute after the fault")
		}
	}
	soloIncs := brief(solo.m.incidents.List("", time.Time{}, time.Time{}))
	fleetIncs := brief(survivor.m.incidents.List("", time.Time{}, time.Time{}))
	if len(soloIncs) == 0 || strings.Join(soloIncs, "\n") != strings.Join(fleetIncs, "\n") {
		t.Errorf("incidents alone:\n%s\nin the fleet:\n%s", strings.Join(soloIncs, "\n"), strings.Join(fleetIncs, "\n"))
	}

	// Every live window of the lone detector, with the same calls. (While
	// catching up on the history, the lone detector, whose watermark is the
	// newest span of any partition, drops spans of partitions read later.)
	want, got := solo.calls(), survivor.calls()
	from := first.OpenedAt.Add(-30 * time.Second)
	compared := 0
	for start, n := range want {
		if start.Before(from) {
			continue
		}
		if _, ok := got[start]; !ok {
			if start.After(latest(got)) {
				continue // not merged yet
			}
			t.Errorf("window %v (%d calls alone) missing from the fleet", start.Format(time.TimeOnly), n)
			continue
		}
		compared++
		if diff := math.Abs(float64(got[start]-n)) / float64(n); diff > 0.02 {
			t.Errorf("window %v: %d calls in the fleet, %d alone", start.Format(time.TimeOnly), got[start], n)
		}
	}
	if compared < 10 {
		t.Errorf("only %d windows compared", compared)
	}
	if late := metrictest.Value(t, survivor.m.reg, "causeway_fleet_late_summaries_total"); late != 0 {
		t.Errorf("%v window summaries arrived after the fleet stopped waiting for them", late)
	}
	// The partition workers' graphs are counted, by partition: the member
	// that read them all has joined traces on each.
	for p := range 3 {
		if n := metrictest.Value(t, survivor.m.reg, "causeway_graph_traces_joined_total", "partition", strconv.Itoa(p)); n == 0 {
			t.Errorf("partition %d: no traces joined counted on the member reading it", p)
		}
	}
	hook.checkOnce(t)
}

func latest(m map[time.Time]int64) time.Time {
	var t time.Time
	for k := range m {
		if k.After(t) {
			t = k
		}
	}
	return t
}

// brief describes incidents for comparison, leaving out those merged into
// another (two anomalies may meet in the first window alone and only in the
// second in the fleet).
func brief(incs []incident.Incident) []string {
	var out []string
	for _, i := range incs {
		if i.MergedInto != "" {
			continue
		}
		top := ""
		if len(i.Suspects) > 0 {
			top = i.Suspects[0].Service
		}
		// Ids hash the series of the opening window, which may differ by
		// one marginal series between the fleet and a lone detector.
		out = append(out, i.OpenedAt.Format(time.TimeOnly)+" "+string(i.State)+" "+top+" "+string(i.Severity))
	}
	return out
}
