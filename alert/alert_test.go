package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/rank"
	"github.com/causeway/causeway/incident"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// inc is an incident as the manager reports it.
func inc(id string, rev int, state incident.State, top string, at time.Time) incident.Incident {
	i := incident.Incident{ID: id, State: state, OpenedAt: t0, UpdatedAt: at, Services: []string{"checkoutservice", top},
		Severity: incident.Warning, Revision: rev,
		Suspects: []rank.Suspect{{Service: top, Operation: "Charge", Kind: rank.SuspectLatency, Score: 0.8,
			Summary: top + " got slower itself: Charge self time 210 ms vs 8 ms normally",
			Evidence: []rank.Evidence{{Series: "op " + top + "/Charge", Feature: "self time", Current: 210, Baseline: 8, Unit: "ms",
				Spreads: 31, Windows: 3, Exemplars: []string{"4bf92f3577b34da6a3ce929d0e0e4736"}},
				{Series: "edge checkoutservice->" + top + ":Charge", Feature: "p50", Current: 240, Baseline: 30, Unit: "ms",
					Spreads: 9, Windows: 1, Calls: 6, Hits: 5, Over: "p99", HorizonS: 120}}},
			{Service: "checkoutservice", Kind: rank.SuspectLatency, Score: 0.2, Summary: "checkoutservice is slow"}}}
	if state == incident.Resolved {
		r := at
		i.ResolvedAt = &r
	}
	return i
}

// incidents is a fixed incident source for held updates.
type incidents map[string]incident.Incident

func (m incidents) Get(id string) (incident.Incident, bool) { i, ok := m[id]; return i, ok }

// recorder is a receiver that records what it is sent and answers with
// the codes it is told to, in turn (then 200).
type recorder struct {
	mu    sync.Mutex
	reqs  []recorded
	codes []int
	got   chan struct{}
}

type recorded struct {
	path   string
	header http.Header
	body   []byte
}

func newRecorder(codes ...int) *recorder {
	return &recorder{codes: codes, got: make(chan struct{}, 1000)}
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	code := http.StatusOK
	if len(r.codes) > 0 {
		code, r.codes = r.codes[0], r.codes[1:]
	}
	if code < 300 {
		r.reqs = append(r.reqs, recorded{req.URL.Path, req.Header.Clone(), b})
	}
	r.mu.Unlock()
	w.WriteHeader(code)
	if code < 300 {
		r.got <- struct{}{}
	}
}

func (r *recorder) wait(t *testing.T, n int) []recorded {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		have := len(r.reqs)
		r.mu.Unlock()
		if have >= n {
			r.mu.Lock()
			defer r.mu.Unlock()
			return append([]recorded(nil), r.reqs...)
		}
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("receiver got %d requests, want %d", have, n)
		}
	}
}

func start(t *testing.T, cfg Config, opt Options, getenv func(string) string) *Notifier {
	t.Helper()
	if err := cfg.Resolve(getenv); err != nil {
		t.Fatal(err)
	}
	if opt.Dir == "" {
		opt.Dir = t.TempDir()
	}
	n, err := New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

func fast(c Config) Config {
	c.Backoff, c.MaxBackoff = time.Millisecond, 5*time.Millisecond
	return c
}

func TestEveryReceiverKind(t *testing.T) {
	rec := newRecorder()
	srv := httptest.NewServer(rec)
	defer srv.Close()
	env := map[string]string{"HMAC": "hmac-key-1", "PD_KEY": "pd-routing-key", "SLACK_URL": srv.URL + "/slack/T000/B000/XXXX", "TOKEN": "Bearer tkn"}
	cfg := fast(Config{ExternalURL: "http://causeway:8080", GrafanaURL: "http://grafana:3000/d/causeway", Receivers: []Receiver{
		{Name: "hook", Kind: KindWebhook, URL: srv.URL + "/hook", Headers: map[string]string{"X-Team": "sre"},
			SecretHeaders: map[string]Secret{"Authorization": {Env: "TOKEN"}}, HMACKey: Secret{Env: "HMAC"}},
		{Name: "am", Kind: KindAlertmanager, URL: srv.URL + "/am"},
		{Name: "pd", Kind: KindPagerDuty, URL: srv.URL + "/pd", RoutingKey: Secret{Env: "PD_KEY"}},
		{Name: "slack", Kind: KindSlack, URLSecret: Secret{Env: "SLACK_URL"}},
	}})
	wall := t0.Add(time.Minute)
	n := start(t, cfg, Options{Now: func() time.Time { return wall }}, func(k string) string { return env[k] })
	opened := inc("inc-1", 1, incident.Open, "paymentservice", t0)
	n.Observe(t0, []incident.Change{{Kind: "opened", Incident: opened}})
	byPath := map[string]recorded{}
	for _, r := range rec.wait(t, 4) {
		byPath[r.path] = r
	}

	hook := byPath["/hook"]
	var ev Event
	if err := json.Unmarshal(hook.body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Version != "1" || ev.ID != "inc-1/r1" || ev.Kind != Opened || ev.IncidentID != "inc-1" || ev.TopSuspect() != "paymentservice" ||
		len(ev.Suspects[0].Evidence) != 2 || ev.Suspects[0].Evidence[0] != "op paymentservice/Charge: self time 210 ms vs 8 ms normally, 31.0 spreads over 3 windows" ||
		ev.Suspects[0].Evidence[1] != "edge checkoutservice->paymentservice:Charge: 5 of 6 calls over 2m0s above the usual p99 (p50 240 ms vs 30 ms normally), 9.0 spreads over 1 window" ||
		ev.Links.Suspects != "http://causeway:8080/api/v1/incidents/inc-1/suspects" || ev.Links.Grafana != "http://grafana:3000/d/causeway?var-incident=inc-1" {
		t.Errorf("webhook event %+v", ev)
	}
	if h := hook.header; h.Get("Idempotency-Key") != "inc-1/r1" || h.Get("X-Team") != "sre" || h.Get("Authorization") != "Bearer tkn" {
		t.Errorf("webhook headers %v", h)
	}
	ts := hook.header.Get("X-Causeway-Timestamp")
	if want := "t=" + ts + ",v1=" + Sign([]byte("hmac-key-1"), ts, hook.body); ts != "1772366460" || hook.header.Get("X-Causeway-Signature") != want {
		t.Errorf("signature %q at %q, want %q", hook.header.Get("X-Causeway-Signature"), ts, want)
	}
	if Sign([]byte("other key"), ts, hook.body) == Sign([]byte("hmac-key-1"), ts, hook.body) {
		t.Error("signature does not depend on the key")
	}

	var am []amAlert
	if err := json.Unmarshal(byPath["/am/api/v2/alerts"].body, &am); err != nil {
		t.Fatal(err)
	}
	if len(am) != 1 || am[0].Labels["alertname"] != AlertName || am[0].Labels["incident_id"] != "inc-1" || am[0].Labels["service"] != "paymentservice" ||
		am[0].Annotations["top_suspect"] != "paymentservice" || !am[0].StartsAt.Equal(t0) || !am[0].EndsAt.After(wall) ||
		am[0].GeneratorURL != "http://causeway:8080/api/v1/incidents/inc-1" {
		t.Errorf("alertmanager alerts %+v", am)
	}

	var pd pdEvent
	if err := json.Unmarshal(byPath["/pd"].body, &pd); err != nil {
		t.Fatal(err)
	}
	if pd.RoutingKey != "pd-routing-key" || pd.EventAction != "trigger" || pd.DedupKey != "inc-1" || pd.Payload == nil ||
		pd.Payload.Component != "paymentservice" || pd.Payload.Severity != "warning" || pd.Payload.Source != "causeway" {
		t.Errorf("pagerduty event %+v", pd)
	}

	slack := string(byPath["/slack/T000/B000/XXXX"].body)
	for _, want := range []string{`"blocks"`, `"header"`, "paymentservice is slow", "*paymentservice*", "Charge self time 210 ms"} {
		if !strings.Contains(slack, want) {
			t.Errorf("slack message lacks %q: %s", want, slack)
		}
	}

	// Resolve: Alertmanager's endsAt is the resolve time, PagerDuty resolves by dedup key.
	resolved := inc("inc-1", 1, incident.Resolved, "paymentservice", t0.Add(40*time.Second))
	n.Observe(t0.Add(40*time.Second), []incident.Change{{Kind: "resolved", Incident: resolved}})
	clear(byPath)
	for _, r := range rec.wait(t, 8)[4:] {
		byPath[r.path] = r
	}
	am = nil
	if err := json.Unmarshal(byPath["/am/api/v2/alerts"].body, &am); err != nil {
		t.Fatal(err)
	}
	if len(am) != 1 || !am[0].EndsAt.Equal(t0.Add(40*time.Second)) {
		t.Errorf("resolved alertmanager alerts %+v", am)
	}
	pd = pdEvent{}
	if err := json.Unmarshal(byPath["/pd"].body, &pd); err != nil {
		t.Fatal(err)
	}
	if pd.EventAction != "resolve" || pd.DedupKey != "inc-1" {
		t.Errorf("resolved pagerduty event %+v", pd)
	}
	if got := byPath["/hook"].header.Get("Idempotency-Key"); got != "inc-1/resolved" {
		t.Errorf("resolved idempotency key %q", got)
	}
}

// TestUpdatesAreHeldAndRouted: updates come at most once per interval, with
// the latest state; routes match labels, and an incident stays with the
// receivers it was sent to.
func TestUpdatesAreHeldAndRouted(t *testing.T) {
	all, crit := newRecorder(), newRecorder()
	sa, sc := httptest.NewServer(all), httptest.NewServer(crit)
	defer sa.Close()
	defer sc.Close()
	cur := incidents{}
	reg := prometheus.NewRegistry()
	n := start(t, fast(Config{UpdateInterval: time.Minute, Receivers: []Receiver{
		{Name: "all", Kind: KindWebhook, URL: sa.URL},
		{Name: "critical", Kind: KindWebhook, URL: sc.URL, Match: map[string][]string{"severity": {"critical"}}},
	}}), Options{Incidents: cur, Registerer: reg}, nil)

	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	i1 := inc("inc-1", 1, incident.Open, "paymentservice", at(0))
	n.Observe(at(0), []incident.Change{{Kind: "opened", Incident: i1}})
	// Two updates within the minute: held.
	i2 := inc("inc-1", 2, incident.Open, "currencyservice", at(10))
	n.Observe(at(10), []incident.Change{{Kind: "updated", Incident: i2}})
	i3 := inc("inc-1", 3, incident.Open, "currencyservice", at(20))
	i3.Severity = incident.Critical
	cur["inc-1"] = i3
	n.Observe(at(20), []incident.Change{{Kind: "updated", Incident: i3}})
	n.Observe(at(50), nil)
	if got := testutil.ToFloat64(n.m.events.WithLabelValues("updated")); got != 0 {
		t.Fatalf("%v updates sent within the interval", got)
	}
	// The interval has passed: one update with the latest state.
	n.Observe(at(60), nil)
	reqs := all.wait(t, 2)
	var up Event
	if err := json.Unmarshal(reqs[1].body, &up); err != nil {
		t.Fatal(err)
	}
	if up.Kind != Updated || up.Revision != 3 || up.Severity != incident.Critical || up.TopSuspect() != "currencyservice" ||
		up.Previous == nil || up.Previous.TopSuspect != "paymentservice" || up.Previous.Severity != incident.Warning {
		t.Errorf("held update %+v", up)
	}
	// The critical receiver joins at the update and hears the resolve too,
	// though the resolve alone would not match it.
	n.Observe(at(90), []incident.Change{{Kind: "resolved", Incident: inc("inc-1", 3, incident.Resolved, "currencyservice", at(90))}})
	all.wait(t, 3)
	got := crit.wait(t, 2)
	var kinds []Kind
	for _, r := range got {
		var e Event
		_ = json.Unmarshal(r.body, &e)
		kinds = append(kinds, e.Kind)
	}
	if len(kinds) != 2 || kinds[0] != Updated || kinds[1] != Resolved {
		t.Errorf("critical receiver got %v, want [updated resolved]", kinds)
	}
	if v := testutil.ToFloat64(n.m.held); v != 1 {
		t.Errorf("held updates counted %v, want 1", v)
	}
}

// TestRetryClasses: 5xx, 429 and network errors are retried with backoff
// (429 after its Retry-After); other 4xx are given up at once, counted.
func TestRetryClasses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		responses []any // int status, or error
		retryHdr  string
		sent      float64
		rejected  float64
		minWait   time.Duration
		retried   map[string]float64
	}{
		{name: "5xx then ok", responses: []any{500, 502, 200}, sent: 1, retried: map[string]float64{"http_5xx": 2}},
		{name: "429 honours Retry-After", responses: []any{429, 200}, retryHdr: "30", sent: 1, minWait: 30 * time.Second, retried: map[string]float64{"http_429": 1}},
		{name: "network error", responses: []any{errors.New("connection refused"), 200}, sent: 1, retried: map[string]float64{"network": 1}},
		{name: "4xx is final", responses: []any{400}, rejected: 1},
		{name: "404 is final", responses: []any{404}, rejected: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var times []time.Time
			calls := 0
			do := doFunc(func(r *http.Request) (*http.Response, error) {
				mu.Lock()
				defer mu.Unlock()
				times = append(times, time.Now())
				x := tc.responses[min(calls, len(tc.responses)-1)]
				calls++
				if err, ok := x.(error); ok {
					return nil, err
				}
				h := http.Header{}
				if tc.retryHdr != "" {
					h.Set("Retry-After", tc.retryHdr)
				}
				return &http.Response{StatusCode: x.(int), Header: h, Body: io.NopCloser(strings.NewReader("no"))}, nil
			})
			cfg := Config{Backoff: time.Second, MaxBackoff: 10 * time.Second, Receivers: []Receiver{{Name: "r", Kind: KindWebhook, URL: "http://receiver.invalid/hook"}}}
			if err := cfg.Resolve(nil); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var n *Notifier
			// In a bubble, the backoff waits take no real time.
			synctest.Test(t, func(t *testing.T) {
				var err error
				if n, err = New(cfg, Options{Dir: dir, Client: do}); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { n.Run(ctx); close(done) }()
				n.Observe(t0, []incident.Change{{Kind: "opened", Incident: inc("inc-1", 1, incident.Open, "paymentservice", t0)}})
				if err := n.Drain(ctx); err != nil {
					t.Fatal(err)
				}
				cancel()
				<-done
			})
			if got := testutil.ToFloat64(n.m.sent.WithLabelValues("r")); got != tc.sent {
				t.Errorf("sent %v, want %v", got, tc.sent)
			}
			if got := testutil.ToFloat64(n.m.failed.WithLabelValues("r", "rejected")); got != tc.rejected {
				t.Errorf("rejected %v, want %v", got, tc.rejected)
			}
			for reason, want := range tc.retried {
				if got := testutil.ToFloat64(n.m.retried.WithLabelValues("r", reason)); got != want {
					t.Errorf("retried %s %v, want %v", reason, got, want)
				}
			}
			if calls != len(tc.responses) {
				t.Errorf("%d attempts, want %d", calls, len(tc.responses))
			}
			if len(times) > 1 {
				if wait := times[1].Sub(times[0]); wait < max(tc.minWait, cfg.Backoff/2) {
					t.Errorf("retried after %v, want at least %v", wait, max(tc.minWait, cfg.Backoff/2))
				}
			}
		})
	}
}

type doFunc func(*http.Request) (*http.Response, error)

func (f doFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// TestSecretsNeverShown: tokens, routing keys, HMAC keys and secret URLs
// appear in no log line, error or status, whatever the receiver answers.
func TestSecretsNeverShown(t *testing.T) {
	secrets := map[string]string{"HMAC": "s3cr3t-hmac", "PD": "s3cr3t-routing", "TOKEN": "s3cr3t-token"}
	// A receiver that echoes the request (headers and body) in its errors.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusBadRequest)
		_ = r.Header.Write(w)
		_, _ = w.Write(b)
	}))
	defer echo.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	secrets["SLACK"] = closedURL + "/services/s3cr3t-slack-path"
	var logs bytes.Buffer
	cfg := fast(Config{Receivers: []Receiver{
		{Name: "hook", Kind: KindWebhook, URL: echo.URL, HMACKey: Secret{Env: "HMAC"}, SecretHeaders: map[string]Secret{"Authorization": {Env: "TOKEN"}}},
		{Name: "pd", Kind: KindPagerDuty, URL: echo.URL, RoutingKey: Secret{Env: "PD"}},
		{Name: "slack", Kind: KindSlack, URLSecret: Secret{Env: "SLACK"}},
	}})
	cfg.MaxAge = time.Nanosecond // give up at once on the unreachable one
	n := start(t, cfg, Options{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		func(k string) string { return secrets[k] })
	n.Observe(t0, []incident.Change{{Kind: "opened", Incident: inc("inc-1", 1, incident.Open, "paymentservice", t0)}})
	var shown []string
	for _, name := range []string{"hook", "pd", "slack"} {
		err := n.Test(context.Background(), name)
		if err == nil {
			t.Fatalf("test of %s succeeded against a failing receiver", name)
		}
		shown = append(shown, err.Error())
	}
	waitFor(t, n, func() bool { return n.Pending() == 0 })
	st, _ := json.Marshal(n.Status())
	cj, _ := json.Marshal(cfg)
	shown = append(shown, logs.String(), string(st), string(cj), cfg.Receivers[0].HMACKey.String())
	for _, s := range shown {
		for _, v := range []string{"s3cr3t"} {
			if strings.Contains(s, v) {
				t.Errorf("a secret is shown: %s", s)
			}
		}
	}
	if !strings.Contains(logs.String(), "HTTP 400") || !strings.Contains(logs.String(), "Authorization: <redacted>") {
		t.Errorf("the failures were not reported (logs %q, status %s)", logs.String(), st)
	}
	// Config errors name the source, not the value.
	bad := Config{Receivers: []Receiver{{Name: "slack", Kind: KindSlack, URLSecret: Secret{Env: "NOT_A_URL"}}}}
	err := bad.Resolve(func(string) string { return "s3cr3t-not-a-url" })
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "alerts.receivers[slack].url_secret") {
		t.Errorf("config error %v", err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		r    Receiver
		want string
	}{
		{Receiver{Kind: KindWebhook, URL: "http://x"}, "alerts.receivers[0].name: must be set"},
		{Receiver{Name: "a", URL: "http://x"}, "alerts.receivers[a].kind: must be set"},
		{Receiver{Name: "a", Kind: "email", URL: "http://x"}, `kind: "email" is not`},
		{Receiver{Name: "a", Kind: KindWebhook}, "alerts.receivers[a].url: must be set"},
		{Receiver{Name: "a", Kind: KindWebhook, URL: "ftp://x"}, "url: \"ftp://x\": scheme must be http or https"},
		{Receiver{Name: "a", Kind: KindPagerDuty}, "routing_key: pagerduty needs a routing key"},
		{Receiver{Name: "a", Kind: KindPagerDuty, RoutingKey: Secret{Env: "UNSET"}}, "routing_key: environment variable UNSET is empty or unset"},
		{Receiver{Name: "a", Kind: KindWebhook, URL: "http://x", HMACKey: Secret{File: "/nonexistent/key"}}, "hmac_key: read secret"},
		{Receiver{Name: "a", Kind: KindSlack, URL: "http://x", HMACKey: Secret{Env: "K"}}, "hmac_key: only webhook receivers sign"},
		{Receiver{Name: "a", Kind: KindWebhook, URL: "http://x", Match: map[string][]string{"team": {"x"}}}, `match: unknown key "team"`},
		{Receiver{Name: "a", Kind: KindWebhook, URL: "http://x", Headers: map[string]string{"Bad Header": "x"}}, `headers: "Bad Header" is not a valid header name`},
		{Receiver{Name: "a b", Kind: KindWebhook, URL: "http://x"}, "must not contain slashes or spaces"},
	} {
		c := Config{Receivers: []Receiver{tc.r}}
		err := c.Resolve(func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.r, err, tc.want)
		}
	}
	c := Config{Receivers: []Receiver{{Name: "a", Kind: KindWebhook, URL: "http://x"}, {Name: "a", Kind: KindWebhook, URL: "http://y"}}}
	if err := c.Resolve(nil); err == nil || !strings.Contains(err.Error(), "alerts.receivers[a].name: used twice") {
		t.Errorf("duplicate names: %v", err)
	}
}

// TestTitles: a pager's line reads as English for every kind of suspect.
func TestTitles(t *testing.T) {
	for _, tc := range []struct {
		s    Suspect
		want string
	}{
		{Suspect{Service: "paymentservice", Kind: rank.SuspectLatency}, "paymentservice is slow (3 services affected)"},
		{Suspect{Service: "cartservice", Kind: rank.SuspectErrors}, "cartservice is failing (3 services affected)"},
		{Suspect{Service: "catalog-db", Kind: rank.SuspectDependency, NodeKind: graph.NodeDatabase}, "database catalog-db is slow or failing (3 services affected)"},
		{Suspect{Service: "paymentservice", Kind: rank.SuspectNetwork, Caller: "checkoutservice"}, "the network between checkoutservice and paymentservice is slow (3 services affected)"},
		{Suspect{Service: "cartservice", Kind: rank.SuspectNetwork}, "the network in front of cartservice is slow (3 services affected)"},
		{Suspect{Service: "inventory-service", Kind: rank.SuspectDown}, "inventory-service does not answer (3 services affected)"},
	} {
		e := Event{Kind: Opened, Services: []string{"a", "b", "c"}, Suspects: []Suspect{tc.s}}
		if got := title(&e); got != tc.want {
			t.Errorf("title %q, want %q", got, tc.want)
		}
	}
}
