package alert

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/causeway/causeway/incident"
)

// TestOutageLosesNothing: the receiver is unreachable, then answers 503,
// then takes events but sometimes fails to acknowledge them. Every event
// arrives, in order per incident; the only duplicates carry the same
// idempotency key as the original.
func TestOutageLosesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // refused until the receiver comes up

	cfg := fast(Config{UpdateInterval: time.Nanosecond, Receivers: []Receiver{{Name: "r", Kind: KindWebhook, URL: "http://" + addr + "/hook"}}})
	n := start(t, cfg, Options{}, nil)
	var want []string // event ids, in the order they were raised
	for step := range 3 {
		for _, id := range []string{"inc-a", "inc-b", "inc-c"} {
			at := t0.Add(time.Duration(step) * time.Minute)
			var c incident.Change
			switch step {
			case 0:
				c = incident.Change{Kind: "opened", Incident: inc(id, 1, incident.Open, "paymentservice", at)}
			case 1:
				c = incident.Change{Kind: "updated", Incident: inc(id, 2, incident.Open, "currencyservice", at)}
			case 2:
				c = incident.Change{Kind: "resolved", Incident: inc(id, 2, incident.Resolved, "currencyservice", at)}
			}
			n.Observe(at, []incident.Change{c})
			want = append(want, map[int]string{0: id + "/r1", 1: id + "/r2", 2: id + "/resolved"}[step])
		}
	}
	waitFor(t, n, func() bool { return testutil.ToFloat64(n.m.retried.WithLabelValues("r", "network")) >= 3 })

	// Up: a few 503s, then every third event is taken but answered 500.
	var mu sync.Mutex
	var got []Event
	var keys []string
	calls := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 4 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var e Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Error(err)
		}
		got = append(got, e)
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		if calls%3 == 0 {
			w.WriteHeader(http.StatusInternalServerError) // processed, not acknowledged
		}
	}))
	srv.Listener, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken again before the receiver could bind it: %v", addr, err)
	}
	srv.Start()
	defer srv.Close()
	waitFor(t, n, func() bool { return n.Pending() == 0 })

	mu.Lock()
	defer mu.Unlock()
	var firsts []string
	for i, e := range got {
		if keys[i] != e.ID {
			t.Errorf("event %s sent with idempotency key %s", e.ID, keys[i])
		}
		if i > 0 && got[i-1].ID == e.ID {
			continue // a retry of an unacknowledged delivery
		}
		if slices.Contains(firsts, e.ID) {
			t.Errorf("event %s delivered again after others", e.ID)
		}
		firsts = append(firsts, e.ID)
	}
	if !slices.Equal(firsts, want) {
		t.Errorf("delivered %v\nwant      %v", firsts, want)
	}
	if testutil.ToFloat64(n.m.sent.WithLabelValues("r")) != float64(len(want)) || testutil.ToFloat64(n.m.retried.WithLabelValues("r", "http_5xx")) < 4 {
		t.Errorf("sent %v, retried on 5xx %v", testutil.ToFloat64(n.m.sent.WithLabelValues("r")), testutil.ToFloat64(n.m.retried.WithLabelValues("r", "http_5xx")))
	}
}

// TestRestartDelivers: events in the outbox when the process stops are
// sent by the next one, and incidents a crash kept from the outbox are
// reconciled from the incident store.
func TestRestartDelivers(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Receivers: []Receiver{{Name: "r", Kind: KindWebhook, URL: "http://127.0.0.1:1/down"}}}
	if err := cfg.Resolve(nil); err != nil {
		t.Fatal(err)
	}
	first, err := New(cfg, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	first.Observe(t0, []incident.Change{{Kind: "opened", Incident: inc("inc-a", 1, incident.Open, "paymentservice", t0)}})
	// The first process dies before sending: no Run, no Close. A second
	// incident was stored but never reached the outbox.
	if files, _ := filepath.Glob(filepath.Join(dir, "outbox", "r", "*.json")); len(files) != 1 {
		t.Fatalf("outbox holds %v, want one event", files)
	}

	rec := newRecorder()
	srv := httptest.NewServer(rec)
	defer srv.Close()
	cfg.Receivers[0].URL = srv.URL
	second := start(t, cfg, Options{Dir: dir}, nil)
	second.Reconcile([]incident.Incident{
		inc("inc-a", 1, incident.Open, "paymentservice", t0),
		inc("inc-b", 1, incident.Open, "adservice", t0.Add(time.Second)),
	})
	reqs := rec.wait(t, 2)
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.header.Get("Idempotency-Key"))
	}
	if !slices.Equal(ids, []string{"inc-a/r1", "inc-b/r1"}) {
		t.Errorf("after restart delivered %v, want [inc-a/r1 inc-b/r1]", ids)
	}
	waitFor(t, second, func() bool { return second.Pending() == 0 })
	if files, _ := filepath.Glob(filepath.Join(dir, "outbox", "r", "*.json")); len(files) != 0 {
		t.Errorf("outbox still holds %v", files)
	}
	if _, err := os.Stat(filepath.Join(dir, ledgerFile)); err != nil {
		t.Errorf("no ledger: %v", err)
	}
}

// waitFor waits until cond holds after a delivery attempt, for at most 15s.
func waitFor(t *testing.T, n *Notifier, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := n.waitUntil(ctx, cond); err != nil {
		t.Fatalf("condition not reached: %v", err)
	}
}

// TestStandbyHandOver: two members raise the same events; the active one
// sends and acknowledges; the standby drops what was acknowledged and,
// once active, sends only what the other never delivered.
func TestStandbyHandOver(t *testing.T) {
	rec := newRecorder()
	srv := httptest.NewServer(rec)
	defer srv.Close()
	cfg := fast(Config{Receivers: []Receiver{{Name: "r", Kind: KindWebhook, URL: srv.URL}}})
	var standby *Notifier
	leader := start(t, cfg, Options{OnDelivered: func(r, id string) { standby.Acknowledge(r, id) }}, nil)
	standby = start(t, cfg, Options{Standby: true}, nil)
	opened := []incident.Change{{Kind: "opened", Incident: inc("inc-a", 1, incident.Open, "paymentservice", t0)}}
	standby.Observe(t0, opened) // the standby is ahead: queued, not sent
	leader.Observe(t0, opened)
	rec.wait(t, 1)
	waitFor(t, standby, func() bool { return standby.Pending() == 0 })
	// The leader dies before the resolve; the standby takes over.
	resolved := []incident.Change{{Kind: "resolved", Incident: inc("inc-a", 1, incident.Resolved, "paymentservice", t0.Add(time.Minute))}}
	standby.Observe(t0.Add(time.Minute), resolved)
	standby.SetActive(true)
	rec.wait(t, 2)
	waitFor(t, standby, func() bool { return standby.Pending() == 0 })
	reqs := rec.wait(t, 2) // everything received so far
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.header.Get("Idempotency-Key"))
	}
	if !slices.Equal(ids, []string{"inc-a/r1", "inc-a/resolved"}) {
		t.Errorf("receiver got %v, want each event once", ids)
	}
}
