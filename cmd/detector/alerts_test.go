package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/alert"
)

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
