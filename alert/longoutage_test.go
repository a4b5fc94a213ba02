package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/internal/metrictest"
	"github.com/causeway/causeway/statefs"
)

// flakyReceiver is a webhook that refuses connections, then answers 503,
// until up, and then takes every event, recording when (the bubble's fake
// clock) and in which order.
type flakyReceiver struct {
	refuseUntil, downUntil time.Time

	mu       sync.Mutex
	attempts []time.Time
	got      []string // event ids, in delivery order
	firstOK  time.Time
}

func (f *flakyReceiver) Do(r *http.Request) (*http.Response, error) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, now)
	if now.Before(f.refuseUntil) {
		return nil, errors.New("dial tcp 127.0.0.1:9: connect: connection refused")
	}
	if now.Before(f.downUntil) {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: io.NopCloser(strings.NewReader("down for maintenance"))}, nil
	}
	var e Event
	if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
		return nil, err
	}
	if f.firstOK.IsZero() {
		f.firstOK = now
	}
	f.got = append(f.got, e.ID)
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(""))}, nil
}

// TestReceiverDownTenMinutes: the receiver refuses connections for 5
// minutes and answers 503 for 5 more while incidents open, change and
// resolve. With the default retry settings (backoff 1s doubling to 5m)
// the attempts back off and never wait longer than max_backoff, the queue
// metrics show the events waiting and how old the oldest is, and once the
// receiver is back every event arrives, in the order raised, within
// max_backoff. Nothing is dropped unless queue_size or max_age says so:
// with a queue of 4 the oldest are dropped, with max_age 3m the events
// older than that at a failed attempt are given up, each counted by reason. Fake clock
// (testing/synctest): ten minutes take no real time.
func TestReceiverDownTenMinutes(t *testing.T) {
	for _, tc := range []struct {
		name             string
		queue            int
		maxAge           time.Duration
		dropped, expired float64
	}{
		{name: "defaults: nothing lost"},
		{name: "queue_size 4", queue: 4, dropped: 5},
		{name: "max_age 3m", maxAge: 3 * time.Minute, expired: -1}, // some: which depends on the backoff's jitter
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				rcv := &flakyReceiver{refuseUntil: start.Add(5 * time.Minute), downUntil: start.Add(10 * time.Minute)}
				cfg := Config{QueueSize: tc.queue, MaxAge: tc.maxAge, Receivers: []Receiver{{Name: "r", Kind: KindWebhook, URL: "http://receiver.test/hook"}}}
				if err := cfg.Resolve(nil); err != nil {
					t.Fatal(err)
				}
				reg := prometheus.NewRegistry()
				n, err := New(cfg, Options{Dir: t.TempDir(), Client: rcv, Registerer: reg})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				done := make(chan struct{})
				go func() { n.Run(ctx); close(done) }()

				// Three incidents open, are updated and resolve during the
				// outage, a minute apart: nine events.
				var want []string
				for step := range 3 {
					for i, id := range []string{"inc-a", "inc-b", "inc-c"} {
						at := t0.Add(time.Duration(step*3+i) * time.Minute)
						var c incident.Change
						switch step {
						case 0:
							c = incident.Change{Kind: "opened", Incident: inc(id, 1, incident.Open, "paymentservice", at)}
							want = append(want, id+"/r1")
						case 1:
							c = incident.Change{Kind: "updated", Incident: inc(id, 2, incident.Open, "currencyservice", at.Add(time.Hour))}
							want = append(want, id+"/r2")
						case 2:
							c = incident.Change{Kind: "resolved", Incident: inc(id, 2, incident.Resolved, "currencyservice", at.Add(2*time.Hour))}
							want = append(want, id+"/resolved")
						}
						n.Observe(c.Incident.UpdatedAt, []incident.Change{c})
						time.Sleep(time.Minute) // fake time: the outage goes on
					}
				}
				// Nine minutes in, still down: the queue shows it.
				synctest.Wait()
				depth := metrictest.Value(t, reg, "causeway_alert_queue_depth")
				age := metrictest.Value(t, reg, "causeway_alert_oldest_undelivered_seconds")
				wantDepth := float64(len(want)) - tc.dropped
				if tc.maxAge == 0 && depth != wantDepth {
					t.Errorf("queue depth %v during the outage, want %v", depth, wantDepth)
				}
				if tc.queue == 0 && tc.maxAge == 0 && age != (9*time.Minute).Seconds() {
					t.Errorf("oldest undelivered %vs during the outage, want 540", age)
				}
				t.Logf("9 min into the outage: queue depth %v, oldest undelivered %vs", depth, age)

				if err := n.Drain(ctx); err != nil {
					t.Fatal(err)
				}
				cancel()
				<-done

				rcv.mu.Lock()
				defer rcv.mu.Unlock()
				expired := testutil.ToFloat64(n.m.failed.WithLabelValues("r", "expired"))
				expect := want[int(tc.dropped+expired):]
				if !slices.Equal(rcv.got, expect) {
					t.Errorf("delivered %v\nwant      %v", rcv.got, expect)
				}
				recovery := rcv.firstOK.Sub(rcv.downUntil)
				if recovery < 0 || recovery > n.cfg.MaxBackoff {
					t.Errorf("first delivery %v after the receiver came back, want within max_backoff %v", recovery, n.cfg.MaxBackoff)
				}
				var gaps []time.Duration
				for i := 1; i < len(rcv.attempts); i++ {
					if g := rcv.attempts[i].Sub(rcv.attempts[i-1]); g > 0 {
						gaps = append(gaps, g)
					}
				}
				failedAttempts := 0
				for _, a := range rcv.attempts {
					if a.Before(rcv.downUntil) {
						failedAttempts++
					}
				}
				if longest := slices.Max(gaps); longest > n.cfg.MaxBackoff {
					t.Errorf("waited %v between attempts, beyond max_backoff %v", longest, n.cfg.MaxBackoff)
				}
				if failedAttempts > 20 {
					t.Errorf("%d attempts in the 10-minute outage: no backoff", failedAttempts)
				}
				retried := testutil.ToFloat64(n.m.retried.WithLabelValues("r", "network")) + testutil.ToFloat64(n.m.retried.WithLabelValues("r", "http_5xx"))
				if retried+expired != float64(failedAttempts) || testutil.ToFloat64(n.m.retried.WithLabelValues("r", "network")) == 0 ||
					testutil.ToFloat64(n.m.retried.WithLabelValues("r", "http_5xx")) == 0 {
					t.Errorf("retried %v (network %v, 5xx %v), failed attempts %d", retried, testutil.ToFloat64(n.m.retried.WithLabelValues("r", "network")),
						testutil.ToFloat64(n.m.retried.WithLabelValues("r", "http_5xx")), failedAttempts)
				}
				if got := testutil.ToFloat64(n.m.failed.WithLabelValues("r", "dropped")); got != tc.dropped {
					t.Errorf("dropped %v, want %v", got, tc.dropped)
				}
				if tc.expired >= 0 && expired != tc.expired || tc.expired < 0 && expired == 0 {
					t.Errorf("expired %v, want %v (-1: some)", expired, tc.expired)
				}
				if got := testutil.ToFloat64(n.m.sent.WithLabelValues("r")); got != float64(len(expect)) {
					t.Errorf("sent %v, want %d", got, len(expect))
				}
				if depth := metrictest.Value(t, reg, "causeway_alert_queue_depth"); depth != 0 {
					t.Errorf("queue depth %v after the drain", depth)
				}
				t.Logf("%d failed attempts over 10 min (waits %v); first delivery %v after the receiver came back, all %d delivered %v after; dropped %v, expired %v",
					failedAttempts, gaps[:min(len(gaps), failedAttempts)], recovery, len(rcv.got), time.Since(rcv.downUntil), tc.dropped, expired)
			})
		})
	}
}

// TestOutboxDiskFull: while the outbox's disk is full, events are still
// queued (in memory) and sent, each failed write is counted, one error is
// logged, and Sync — what the detector's checkpoint waits for — fails.
// Once the disk works, Sync writes what it refused, logs the recovery, and
// a crash from then on would lose nothing: the events are on disk until
// the receiver takes them.
func TestOutboxDiskFull(t *testing.T) {
	var up sync.Mutex // held while the receiver is down
	rec := newRecorder()
	do := doFunc(func(r *http.Request) (*http.Response, error) {
		if !up.TryLock() {
			return nil, errors.New("connect: connection refused")
		}
		defer up.Unlock()
		w := &responseRecorder{header: http.Header{}}
		rec.ServeHTTP(w, r)
		return &http.Response{StatusCode: w.code, Body: io.NopCloser(bytes.NewReader(nil))}, nil
	})
	up.Lock()
	var logs bytes.Buffer
	var logMu sync.Mutex
	disk := &statefs.Faulty{}
	dir := t.TempDir()
	n := start(t, fast(Config{Receivers: []Receiver{{Name: "r", Kind: KindWebhook, URL: "http://receiver.test/hook"}}}),
		Options{Dir: dir, FS: disk, Client: do, Log: slog.New(slog.NewTextHandler(&lockedWriter{mu: &logMu, w: &logs}, nil))}, nil)

	disk.Fail(statefs.ErrNoSpace)
	for i, id := range []string{"inc-a", "inc-b", "inc-c"} {
		at := t0.Add(time.Duration(i) * time.Minute)
		n.Observe(at, []incident.Change{{Kind: "opened", Incident: inc(id, 1, incident.Open, "paymentservice", at)}})
	}
	if got := testutil.ToFloat64(n.m.outboxErr); got != 6 { // three events, three ledger writes
		t.Errorf("outbox errors %v, want 6", got)
	}
	if err := n.Sync(); !statefs.IsDiskFull(err) {
		t.Errorf("Sync on a full disk: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "outbox", "r", "*.json")); len(files) != 0 {
		t.Errorf("outbox files on a full disk: %v", files)
	}
	if n.Pending() != 3 {
		t.Errorf("%d events queued, want 3 (in memory)", n.Pending())
	}

	disk.Fail(nil)
	if err := n.Sync(); err != nil {
		t.Fatalf("Sync after the disk healed: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "outbox", "r", "*.json"))
	if len(files) != 3 {
		t.Errorf("outbox after the disk healed: %v, want the 3 waiting events", files)
	}
	if _, err := os.Stat(filepath.Join(dir, ledgerFile)); err != nil {
		t.Errorf("ledger after the disk healed: %v", err)
	}
	// A restart now would find all three.
	q, _, err := openQueue(filepath.Join(dir, "outbox", "r"), nil, 0)
	if err != nil || len(q.list) != 3 {
		t.Errorf("a restart would find %d events (%v), want 3", len(q.list), err)
	}

	up.Unlock()
	waitFor(t, n, func() bool { return n.Pending() == 0 })
	var ids []string
	for _, r := range rec.wait(t, 3) {
		ids = append(ids, r.header.Get("Idempotency-Key"))
	}
	if !slices.Equal(ids, []string{"inc-a/r1", "inc-b/r1", "inc-c/r1"}) {
		t.Errorf("delivered %v", ids)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if c := strings.Count(logs.String(), `msg="write alert outbox failed"`); c != 1 {
		t.Errorf("%d failure lines logged for one outage of the disk, want 1:\n%s", c, logs.String())
	}
	if c := strings.Count(logs.String(), `msg="write alert outbox works again"`); c != 1 {
		t.Errorf("%d recovery lines logged, want 1:\n%s", c, logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// responseRecorder is the least http.ResponseWriter the recorder needs.
type responseRecorder struct {
	header http.Header
	code   int
}

func (r *responseRecorder) Header() http.Header { return r.header }
func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return len(b), nil
}
func (r *responseRecorder) WriteHeader(code int) { r.code = code }
