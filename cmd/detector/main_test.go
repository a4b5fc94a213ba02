package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/internal/syncbuf"
)

// TestEmbeddedDemo starts the whole detector as `make run` does, on port 0
// and with simulated time running fast, and waits until the API shows the
// simulated topology with its databases and queue.
func TestEmbeddedDemo(t *testing.T) {
	cfg := defaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Demo.Speed = 20
	// On-call's webhook, as CAUSEWAY_WEBHOOK_URL adds it.
	events := make(chan alert.Event, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e alert.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil || r.Header.Get("Idempotency-Key") != e.ID {
			t.Errorf("webhook got %+v (%v), idempotency key %q", e, err, r.Header.Get("Idempotency-Key"))
		}
		events <- e
	}))
	defer hook.Close()
	cfg.WebhookURL = hook.URL + "/hook"
	cfg.addWebhook()
	windows := make(chan *graph.Window, 64)
	var logs syncbuf.Buffer
	m := &Main{Config: cfg, Log: slog.New(slog.NewTextHandler(&logs, nil)), OnWindow: func(w *graph.Window) {
		select {
		case windows <- w:
		default:
		}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	started := time.Now()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	addr := m.Addr(ctx)
	if addr == "" {
		t.Fatalf("detector did not start: %v", <-done)
	}

	// The default fault (paymentservice +200 ms) starts 40 s of simulated
	// time after start; wait for windows a minute past it.
	for i := 0; ; i++ {
		select {
		case w := <-windows:
			if w.Start.After(started.Add(100 * time.Second)) {
				goto ready
			}
		case err := <-done:
			t.Fatalf("detector stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("only %d windows closed before the deadline", i)
		}
	}
ready:
	resp, err := http.Get("http://" + addr + "/api/v1/graph")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var snap graph.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	kinds := map[graph.NodeKind]int{}
	for _, n := range snap.Nodes {
		kinds[n.Kind]++
	}
	if kinds[graph.NodeService] < 8 || kinds[graph.NodeDatabase] < 1 || kinds[graph.NodeCache] < 1 || kinds[graph.NodeQueue] < 1 || kinds[graph.NodeExternal] < 1 {
		t.Errorf("node kinds %v: want ≥8 services and a database, cache, queue and external host", kinds)
	}
	edges := map[string]bool{}
	for _, e := range snap.Edges {
		edges[e.Source+"->"+e.Target] = true
	}
	for _, want := range []string{"frontend->cartservice", "checkoutservice->paymentservice"} {
		if !edges[want] {
			t.Errorf("edge %s missing from %v", want, edges)
		}
	}

	// Baselines were learned from the replayed history, and the fault on
	// paymentservice shows on the edge to it.
	resp, err = http.Get("http://" + addr + "/api/v1/edges/checkoutservice-%3Epaymentservice/baseline")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var bl struct{ Operations []baselines.SeriesView }
	if err := json.NewDecoder(resp.Body).Decode(&bl); err != nil || len(bl.Operations) == 0 {
		t.Fatalf("baseline of checkoutservice->paymentservice: %v %+v", err, bl)
	}
	op := bl.Operations[0]
	if len(op.Regimes) == 0 || op.Latest == nil || !op.Latest.Active {
		t.Errorf("checkoutservice->paymentservice during the fault: regimes %d, latest %+v", len(op.Regimes), op.Latest)
	}

	// And one incident names it first.
	iresp, err := http.Get("http://" + addr + "/api/v1/incidents")
	if err != nil {
		t.Fatal(err)
	}
	defer iresp.Body.Close()
	var incs struct{ Incidents []incident.Incident }
	if err := json.NewDecoder(iresp.Body).Decode(&incs); err != nil {
		t.Fatal(err)
	}
	var open []incident.Incident
	for _, inc := range incs.Incidents {
		switch {
		case inc.State == incident.Open:
			open = append(open, inc)
		case inc.MergedInto == "":
			t.Errorf("incident %s resolved during the fault", inc.ID)
		}
	}
	if len(open) != 1 || len(open[0].Suspects) == 0 || open[0].Suspects[0].Service != "paymentservice" {
		t.Fatalf("open incidents during the paymentservice fault: %+v", open)
	}
	// On-call heard about it.
	for {
		select {
		case e := <-events:
			if e.Kind != alert.Opened || e.IncidentID != open[0].ID {
				continue
			}
			if e.TopSuspect() != "paymentservice" || !strings.HasPrefix(e.Links.Incident, "http://"+addr+"/api/v1/incidents/") {
				t.Errorf("opened event %+v", e)
			}
		case <-ctx.Done():
			t.Fatal("no opened event reached the webhook")
		}
		break
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("detector stopped with %v", err)
	}
	// What on-call reads in the log: the incident, its delivery, the stop;
	// not every anomalous series before it.
	l := logs.String()
	for _, want := range []string{`msg="incident opened"`, `msg="alert delivered"`, `msg="detector stopping"`} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if strings.Contains(l, `msg="anomaly opened"`) {
		t.Error(`"anomaly opened" logged at info`)
	}
	if t.Failed() {
		t.Logf("log:\n%s", l)
	}
}

// TestDemoLogsFaultAsTyped: the schedule shows a fault's start as the user
// wrote it (from now), not counted from the replayed history's start.
func TestDemoLogsFaultAsTyped(t *testing.T) {
	var logs bytes.Buffer
	d, err := startDemo(context.Background(), DemoConfig{Speed: 1, Seed: 1, History: 20 * time.Minute,
		Faults: []string{"latency:paymentservice:+200ms@40s/1m"}}, slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !strings.Contains(logs.String(), "fault=latency:paymentservice:+200ms@40s/1m0s") {
		t.Errorf("schedule logged as:\n%s", logs.String())
	}
}

// TestBusyPortFailsFirst: with the API's port taken, the detector stops at
// once with the address and how to pick another, before the demo starts.
func TestBusyPortFailsFirst(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var logs bytes.Buffer
	cfg := defaultConfig()
	cfg.Listen = busy.Addr().String()
	m := &Main{Config: cfg, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = m.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "listen on "+cfg.Listen) || !strings.Contains(err.Error(), "--listen") {
		t.Fatalf("Run on a busy port: %v", err)
	}
	if strings.Contains(logs.String(), "demo fault scheduled") {
		t.Errorf("the demo started before the port was checked:\n%s", logs.String())
	}
}
