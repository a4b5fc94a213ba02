package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/incident"
)

// FuzzAPIParams sends arbitrary path segments and query strings to every
// endpoint: the handler must not panic, and bad input is the client's
// fault, never a 5xx.
func FuzzAPIParams(f *testing.F) {
	for _, s := range [][3]string{
		{"graph", "", ""},
		{"edges", "frontend->cartservice", "operation=GetCart"},
		{"edges", "frontend%3Ecartservice", "operation=%zz"},
		{"edges", "->", ""},
		{"incidents", "", "state=open&since=2024-01-01T00:00:00Z&until=2024-01-02T00:00:00Z&limit=5"},
		{"incidents", "", "limit=-1&limit=99999999999999999999"},
		{"incident", "inc-1", ""},
		{"suspects", "../../etc/passwd", ""},
		{"incident", "%00%ff", "state=%"},
		{"alerts", "", ";;&&=="},
	} {
		f.Add(s[0], s[1], s[2])
	}
	reg := prometheus.NewRegistry()
	h := Handler(Options{
		Graph:     fixedGraph{&graph.Snapshot{}},
		Baselines: fixedBaselines{"a->b": {{Source: "a", Target: "b", Operation: "op"}}},
		Incidents: fixedIncidents{{ID: "inc-1", State: incident.Open}},
		Gatherer:  reg, Token: testToken, Metrics: NewMetrics(reg),
	})
	f.Fuzz(func(t *testing.T, endpoint, segment, query string) {
		var path string
		switch endpoint {
		case "edges":
			path = "/api/v1/edges/" + segment + "/baseline"
		case "incident":
			path = "/api/v1/incidents/" + segment
		case "suspects":
			path = "/api/v1/incidents/" + segment + "/suspects"
		default:
			path = "/api/v1/" + endpoint
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		// Set the raw parts, as a server would after parsing any request
		// line: the path may hold anything, escaped or not.
		u, err := url.Parse(path)
		if err != nil {
			u = &url.URL{Path: path}
		}
		u.RawQuery = query
		req.URL = u
		req.RequestURI = u.RequestURI()
		req.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("GET %s?%s: %d %s", path, query, w.Code, w.Body)
		}
		if w.Code >= 400 && w.Code != http.StatusMethodNotAllowed && !strings.Contains(w.Header().Get("Content-Type"), "json") {
			t.Fatalf("GET %s?%s: %d error is not JSON: %s", path, query, w.Code, w.Body)
		}
	})
}
