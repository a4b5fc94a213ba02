package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/incident"
)

const testToken = "t0ken-5ecret-8c1d"

// guarded serves the API with testToken required, logging at debug into
// logs, and returns the server and its registry.
func guarded(t *testing.T, logs *bytes.Buffer) (*httptest.Server, *Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var incs fixedIncidents
	for i := range 1500 {
		incs = append(incs, incident.Incident{ID: fmt.Sprintf("inc-%d", i), State: incident.Open})
	}
	m := NewMetrics(reg)
	h := Handler(Options{Graph: fixedGraph{&graph.Snapshot{}}, Incidents: incs, Gatherer: reg, Pprof: true,
		Token: testToken, MaxBodyBytes: 64, Metrics: m,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, m
}

// TestGuard: with a token, every path but the probes needs it; refusals are
// 401 with a challenge and a JSON error, counted by reason; bodies and
// parameters are bounded with 4xx errors; no CORS header is ever sent.
func TestGuard(t *testing.T) {
	var logs bytes.Buffer
	srv, m := guarded(t, &logs)
	for _, tc := range []struct {
		name, method, path, auth, body string
		origin                         bool
		want                           int
		wantBody, notBody              string
	}{
		{name: "no token", method: "GET", path: "/api/v1/graph", want: 401, wantBody: "missing bearer token"},
		{name: "wrong token", method: "GET", path: "/api/v1/graph", auth: "Bearer nope", want: 401, wantBody: "invalid bearer token"},
		{name: "token as prefix", method: "GET", path: "/api/v1/graph", auth: "Bearer " + testToken + "x", want: 401},
		{name: "token prefix", method: "GET", path: "/api/v1/graph", auth: "Bearer " + testToken[:5], want: 401},
		{name: "basic scheme", method: "GET", path: "/api/v1/graph", auth: "Basic " + testToken, want: 401, wantBody: "malformed"},
		{name: "bare token", method: "GET", path: "/api/v1/graph", auth: testToken, want: 401, wantBody: "malformed"},
		{name: "empty bearer", method: "GET", path: "/api/v1/graph", auth: "Bearer ", want: 401, wantBody: "malformed"},
		{name: "right token", method: "GET", path: "/api/v1/graph", auth: "Bearer " + testToken, want: 200},
		{name: "scheme any case", method: "GET", path: "/api/v1/graph", auth: "bearer " + testToken, want: 200},
		{name: "metrics need it", method: "GET", path: "/metrics", want: 401},
		{name: "metrics with it", method: "GET", path: "/metrics", auth: "Bearer " + testToken, want: 200, wantBody: "causeway_api_auth_failures_total"},
		{name: "pprof needs it", method: "GET", path: "/debug/pprof/", want: 401},
		{name: "openapi needs it", method: "GET", path: "/api/v1/openapi.json", want: 401},
		{name: "unknown path needs it", method: "GET", path: "/api/v1/nope", want: 401},
		{name: "healthz is open", method: "GET", path: "/healthz", want: 200},
		{name: "readyz is open", method: "GET", path: "/readyz", want: 200},
		{name: "CORS preflight", method: "OPTIONS", path: "/api/v1/graph", origin: true, want: 401},
		{name: "CORS preflight with token", method: "OPTIONS", path: "/api/v1/graph", auth: "Bearer " + testToken, origin: true, want: 404},
		{name: "cross-origin GET", method: "GET", path: "/api/v1/graph", auth: "Bearer " + testToken, origin: true, want: 200},
		{name: "body too large", method: "GET", path: "/api/v1/graph", auth: "Bearer " + testToken, body: strings.Repeat("x", 65), want: 413, wantBody: "exceeds the limit of 64"},
		{name: "POST", method: "POST", path: "/api/v1/graph", auth: "Bearer " + testToken, body: "{}", want: 404},
		{name: "limit default caps", method: "GET", path: "/api/v1/incidents", auth: "Bearer " + testToken, want: 200, wantBody: `"inc-999"`, notBody: `"inc-1000"`},
		{name: "limit", method: "GET", path: "/api/v1/incidents?limit=2", auth: "Bearer " + testToken, want: 200, wantBody: `"inc-1"`, notBody: `"inc-2"`},
		{name: "limit zero", method: "GET", path: "/api/v1/incidents?limit=0", auth: "Bearer " + testToken, want: 400, wantBody: "limit"},
		{name: "limit too large", method: "GET", path: "/api/v1/incidents?limit=1001", auth: "Bearer " + testToken, want: 400, wantBody: "from 1 to 1000"},
		{name: "limit not a number", method: "GET", path: "/api/v1/incidents?limit=ten", auth: "Bearer " + testToken, want: 400, wantBody: "limit"},
		{name: "long id", method: "GET", path: "/api/v1/incidents/" + strings.Repeat("i", 2000), auth: "Bearer " + testToken, want: 400, wantBody: "at most 1024 bytes"},
		{name: "long operation", method: "GET", path: "/api/v1/edges/a->b/baseline?operation=" + strings.Repeat("o", 2000), auth: "Bearer " + testToken, want: 400, wantBody: "at most 1024 bytes"},
		{name: "long since", method: "GET", path: "/api/v1/incidents?since=" + strings.Repeat("9", 2000), auth: "Bearer " + testToken, want: 400, wantBody: "RFC 3339"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.origin {
				req.Header.Set("Origin", "https://evil.example")
				req.Header.Set("Access-Control-Request-Method", "GET")
				req.Header.Set("Access-Control-Request-Headers", "authorization")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want || !strings.Contains(string(b), tc.wantBody) || (tc.notBody != "" && strings.Contains(string(b), tc.notBody)) {
				t.Errorf("%s %s: %d %.300s, want %d with %q", tc.method, tc.path, resp.StatusCode, b, tc.want, tc.wantBody)
			}
			for k := range resp.Header {
				if strings.HasPrefix(strings.ToLower(k), "access-control-") {
					t.Errorf("CORS header %s: %s", k, resp.Header.Get(k))
				}
			}
			if resp.StatusCode == 401 {
				var e struct{ Error string }
				if err := json.Unmarshal(b, &e); err != nil || e.Error == "" || resp.Header.Get("Content-Type") != "application/json" {
					t.Errorf("401 body %q is not a JSON error (%v)", b, err)
				}
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
				}
			}
			if strings.Contains(string(b), testToken) {
				t.Errorf("the answer shows the token: %s", b)
			}
		})
	}
	for reason, want := range map[string]float64{"missing": 6, "malformed": 3, "invalid": 3} {
		if got := testutil.ToFloat64(m.authFailures.WithLabelValues(reason)); got != want {
			t.Errorf("causeway_api_auth_failures_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if strings.Contains(logs.String(), testToken) || strings.Contains(logs.String(), testToken[:5]) {
		t.Errorf("the log shows the token:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "api request refused") {
		t.Errorf("refusals are not logged at debug, so a leak would go unseen:\n%s", logs.String())
	}
}

// TestNoTokenNoAuth: without a token every endpoint is open.
func TestNoTokenNoAuth(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{Graph: fixedGraph{&graph.Snapshot{}}, Gatherer: prometheus.NewRegistry()}))
	defer srv.Close()
	for _, p := range []string{"/api/v1/graph", "/metrics", "/api/v1/incidents"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s without a token configured: %d", p, resp.StatusCode)
		}
	}
}
