package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/pipeline"
)

func quietLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func consumeEncoding(s string) consume.Encoding { return consume.Encoding(s) }

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
	var logs lockedBuffer
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
	var bl struct{ Operations []graph.SeriesView }
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

// TestReplayNezhaNormal replays the real Online Boutique minute and checks
// the graph has the known call edges with plausible latencies.
func TestReplayNezhaNormal(t *testing.T) {
	out := filepath.Join(t.TempDir(), "g.json")
	state := t.TempDir()
	prof := t.TempDir()
	a := replayArgs{inputs: []string{"../../testdata/nezha-ob/normal-2022-08-23.jsonl.gz"}, out: out, stateDir: state,
		cpuProfile: filepath.Join(prof, "cpu.pprof"), memProfile: filepath.Join(prof, "mem.pprof")}
	if err := replay(a, quietLogger(t), io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{a.cpuProfile, a.memProfile} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", f, err)
		}
	}
	var res ReplayOutput
	readJSON(t, out, &res)
	if res.Stats.Spans < 20000 || len(res.Stats.BadMessages) != 0 {
		t.Fatalf("stats %+v", res.Stats)
	}
	// Quiet services' spans arrive in batches spread over many seconds;
	// the default trace idle time must still pair nearly all of them.
	if late := res.Stats.RejectedSpans["too_late"]; int64(late) > res.Stats.Spans/100 {
		t.Errorf("%d of %d spans too late", late, res.Stats.Spans)
	}
	edges := map[string]graph.EdgeView{}
	for _, e := range res.Graph.Edges {
		edges[e.Source+"->"+e.Target] = e
	}
	for _, want := range []string{
		"frontend->cartservice", "frontend->productcatalogservice", "frontend->currencyservice",
		"frontend->recommendationservice", "frontend->adservice", "frontend->checkoutservice",
		"frontend->shippingservice", "checkoutservice->paymentservice", "checkoutservice->emailservice",
		"checkoutservice->shippingservice", "checkoutservice->cartservice",
		"checkoutservice->productcatalogservice", "recommendationservice->productcatalogservice",
	} {
		e, ok := edges[want]
		if !ok {
			t.Errorf("edge %s missing", want)
			continue
		}
		if e.Total.Requests < 2 || e.Total.P50 < 0.05 || e.Total.P50 > 1000 || e.Total.P99 < e.Total.P50 {
			t.Errorf("edge %s implausible: %+v", want, e.Total)
		}
	}
	if len(res.Incidents) != 0 {
		t.Errorf("incidents %v on fault-free traffic", res.Incidents)
	}
	// The replay primed baselines a detector run can start from.
	bs := graph.NewBaselines(nil)
	if found, err := bs.LoadFile(filepath.Join(state, pipeline.BaselineFile)); !found || err != nil {
		t.Fatalf("primed snapshot: found %v, %v", found, err)
	}
	if edges, _ := bs.Len(); edges < 10 {
		t.Errorf("primed %d edge baselines, want the Online Boutique's", edges)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestRunFlagsAndConfigErrors(t *testing.T) {
	env := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "nonsense"}, "listen"},
		{[]string{"--brokers", "localhost"}, "kafka.brokers"},
		{[]string{"--brokers", "h:1", "--encoding", "xml"}, "kafka.encoding"},
		{[]string{"--config", "testdata/typo.yaml"}, `line 2: unknown key "windw" (did you mean "window"?)`},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--config", "testdata/inline-secret.yaml"}, "line 5: a secret is read from {env: NAME} or {file: PATH}, never written inline"},
	} {
		_, err := parseRunFlags(tc.args, env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseRunFlags(%q) = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	cfg, err := parseRunFlags([]string{"--config", "testdata/good.yaml", "--topic", "from_flag"},
		func(k string) string { return map[string]string{"CAUSEWAY_KAFKA_GROUP": "from_env"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.Topic != "from_flag" || cfg.Kafka.GroupID != "from_env" || cfg.Graph.Window != 30*time.Second || len(cfg.Kafka.Brokers) != 2 {
		t.Errorf("config %+v: want flag over env over file", cfg)
	}
}

// TestAlertConfig: receivers from the file, secrets from the environment
// and files, the webhook from CAUSEWAY_WEBHOOK_URL; errors name the field.
func TestAlertConfig(t *testing.T) {
	env := map[string]string{"TEST_HMAC": "k", "TEST_SLACK_URL": "https://hooks.slack.example/services/T/B/X", "CAUSEWAY_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
	getenv := func(k string) string { return env[k] }
	cfg, err := parseRunFlags([]string{"--config", "testdata/alerts.yaml"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Alerts.Resolve(getenv); err != nil {
		t.Fatal(err)
	}
	rs := cfg.Alerts.Receivers
	if len(rs) != 4 || rs[3].Name != "webhook" || rs[3].URL != env["CAUSEWAY_WEBHOOK_URL"] || rs[1].RoutingKey.Value() != "pd-key-from-file" ||
		rs[1].URL != alert.PagerDutyURL || rs[2].PublicURL() != "https://hooks.slack.example/…" || cfg.Alerts.UpdateInterval != 2*time.Minute {
		t.Errorf("receivers %+v", rs)
	}
	delete(env, "TEST_HMAC")
	cfg, _ = parseRunFlags([]string{"--config", "testdata/alerts.yaml"}, getenv)
	if err := cfg.Alerts.Resolve(getenv); err == nil || err.Error() != "alerts.receivers[oncall].hmac_key: environment variable TEST_HMAC is empty or unset" {
		t.Errorf("missing secret: %v", err)
	}
}

// TestAlertTestCommand: `detector alert test` sends one test event and
// reports a receiver that refuses.
func TestAlertTestCommand(t *testing.T) {
	got := make(chan alert.Event, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e alert.Event
		_ = json.NewDecoder(r.Body).Decode(&e)
		got <- e
	}))
	defer hook.Close()
	var out strings.Builder
	err := run(context.Background(), []string{"alert", "test", "--webhook-url", hook.URL}, func(string) string { return "" }, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if e := <-got; e.Kind != alert.Test || !strings.Contains(out.String(), "test event delivered to webhook") {
		t.Errorf("event %+v, output %q", e, out.String())
	}
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusForbidden) }))
	defer refusing.Close()
	err = run(context.Background(), []string{"alert", "test", "--webhook-url", refusing.URL}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HTTP 403: nope") {
		t.Errorf("refusing receiver: %v", err)
	}
}

// TestReplayWorkersAgree replays the same file with one graph worker and
// with three: the output (graph, incidents, episodes, counts) is the same.
func TestReplayWorkersAgree(t *testing.T) {
	var outs [2]ReplayOutput
	for i, workers := range []int{1, 3} {
		a := replayArgs{inputs: []string{"../../testdata/nezha-ob/normal-2022-08-23.jsonl.gz"}, out: filepath.Join(t.TempDir(), "g.json")}
		a.graph.Workers = workers
		if err := replay(a, quietLogger(t), io.Discard); err != nil {
			t.Fatal(err)
		}
		readJSON(t, a.out, &outs[i])
		outs[i].Stats.ElapsedSeconds = 0
	}
	one, _ := json.MarshalIndent(outs[0], "", " ")
	three, _ := json.MarshalIndent(outs[1], "", " ")
	if outs[0].Stats.Windows < 5 || len(outs[0].Graph.Edges) < 10 {
		t.Fatalf("too little replayed to compare: %+v", outs[0].Stats)
	}
	if !bytes.Equal(one, three) {
		t.Errorf("replay with 3 workers differs from 1:\n%s\nwant\n%s", three, one)
	}
}

// TestReplayRejectsWhatIsNotSpans: a file none of whose messages decode, or
// an empty one, fails the replay with the reason; a zero or negative
// window or trace idle time given on the command line is refused.
func TestReplayRejectsWhatIsNotSpans(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.jsonl")
	if err := os.WriteFile(text, []byte("# Causeway\n\nnot spans\n{\"resourceSpans\": 3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{text: "none of its", empty: "holds no messages"} {
		err := replay(replayArgs{inputs: []string{path}}, quietLogger(t), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("replay of %s: %v, want an error naming it (%q)", filepath.Base(path), err, want)
		}
	}
	for _, args := range [][]string{{"--window", "0"}, {"--window", "-10s"}, {"--trace-idle", "0s"}} {
		if _, err := parseReplayFlags(append(args, "--input", text)); err == nil || !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("replay %v: %v, want it refused", args, err)
		}
	}
	if a, err := parseReplayFlags([]string{"--input", text, "--window", "5s"}); err != nil || a.graph.Window != 5*time.Second {
		t.Errorf("replay --window 5s: %v %v", a.graph.Window, err)
	}
}

// TestVersionCommand: `detector version` names the build and its Go.
func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.HasPrefix(s, "causeway detector ") || !strings.Contains(s, " commit ") || !strings.Contains(s, runtime.Version()) {
		t.Errorf("version printed %q", s)
	}
}

// TestConfigUnknownKeys: a mistyped key is named with its line, the
// closest valid key and the keys valid at that place, at any depth.
func TestConfigUnknownKeys(t *testing.T) {
	var c Config
	err := c.decode([]byte("listne: 127.0.0.1:9\nkafka:\n  topik: spans\n  zzzzzzzz: 1\n"), "causeway.yaml")
	if err == nil {
		t.Fatal("typos accepted")
	}
	for _, want := range []string{
		`config causeway.yaml: line 1: unknown key "listne" (did you mean "listen"?); valid here: `,
		`line 3: unknown key "topik" (did you mean "topic"?); valid here: brokers,`,
		`line 4: unknown key "zzzzzzzz"; valid here: brokers,`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nlacks %q", err, want)
		}
	}
	if d := editDistance("listne", "listen"); d != 2 {
		t.Errorf("edit distance listne/listen %d, want 2", d)
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
