package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/graph/rank"
	"github.com/causeway/causeway/incident"
)

type fixedGraph struct{ s *graph.Snapshot }

type fixedIncidents []incident.Incident

func (f fixedIncidents) List(state incident.State, since, until time.Time) []incident.Incident {
	var out []incident.Incident
	for _, inc := range f {
		if state == "" || inc.State == state {
			out = append(out, inc)
		}
	}
	return out
}

func (f fixedIncidents) Get(id string) (incident.Incident, bool) {
	for _, inc := range f {
		if inc.ID == id {
			return inc, true
		}
	}
	return incident.Incident{}, false
}

type fixedBaselines map[string][]baselines.SeriesView

func (f fixedBaselines) EdgeBaselines(source, target, operation string) []baselines.SeriesView {
	var out []baselines.SeriesView
	for _, v := range f[source+"->"+target] {
		if operation == "" || v.Operation == operation {
			out = append(out, v)
		}
	}
	return out
}

func (f fixedGraph) Snapshot() *graph.Snapshot { return f.s }

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_test_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(3)
	snap := &graph.Snapshot{Nodes: []graph.NodeView{{Node: graph.Node{Name: "frontend", Kind: graph.NodeService}}},
		Edges: []graph.EdgeView{{Source: "frontend", Target: "cartservice", TargetKind: graph.NodeService}}}
	var ready atomic.Bool
	bl := fixedBaselines{"frontend->cartservice": {
		{Source: "frontend", Target: "cartservice", Operation: "GetCart", Regimes: []baselines.RegimeView{{Name: "peak"}}},
		{Source: "frontend", Target: "cartservice", Operation: "AddItem"},
	}}
	incs := fixedIncidents{
		{ID: "inc-1", State: incident.Open, Suspects: []rank.Suspect{{Service: "paymentservice", Kind: rank.SuspectLatency, Score: 3}}},
		{ID: "inc-0", State: incident.Resolved},
	}
	srv := httptest.NewServer(Handler(Options{Graph: fixedGraph{snap}, Baselines: bl, Incidents: incs, Gatherer: reg, Ready: func() error {
		if !ready.Load() {
			return errors.New("joining group")
		}
		return nil
	}}))
	defer srv.Close()

	get := func(path string) (int, string, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}

	code, ctype, body := get("/api/v1/graph")
	var got graph.Snapshot
	if code != 200 || ctype != "application/json" || json.Unmarshal([]byte(body), &got) != nil ||
		len(got.Edges) != 1 || got.Edges[0].Target != "cartservice" {
		t.Errorf("graph: %d %s %s", code, ctype, body)
	}
	if code, _, body := get("/metrics"); code != 200 || !strings.Contains(body, "causeway_test_total 3") {
		t.Errorf("metrics: %d %s", code, body)
	}
	if code, _, body := get("/api/v1/alerts"); code != 200 || strings.Join(strings.Fields(body), "") != `{"receivers":[]}` {
		t.Errorf("alerts without receivers: %d %s", code, body)
	}
	if code, _, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz: %d", code)
	}
	if code, _, body := get("/readyz"); code != 503 || !strings.Contains(body, "joining group") {
		t.Errorf("readyz while not ready: %d %s", code, body)
	}
	ready.Store(true)
	if code, _, _ := get("/readyz"); code != 200 {
		t.Errorf("readyz when ready: %d", code)
	}
	if code, ctype, body := get("/api/v1/nope"); code != 404 || ctype != "application/json" || !strings.Contains(body, "no such endpoint") {
		t.Errorf("unknown endpoint: %d %s %s", code, ctype, body)
	}
	code, _, body = get("/api/v1/edges/frontend-%3Ecartservice/baseline")
	if code != 200 || !strings.Contains(body, `"GetCart"`) || !strings.Contains(body, `"AddItem"`) || !strings.Contains(body, `"peak"`) {
		t.Errorf("edge baseline: %d %s", code, body)
	}
	code, _, body = get("/api/v1/edges/frontend->cartservice/baseline?operation=AddItem")
	if code != 200 || strings.Contains(body, `"GetCart"`) || !strings.Contains(body, `"AddItem"`) {
		t.Errorf("edge baseline of one operation: %d %s", code, body)
	}
	if code, _, body := get("/api/v1/edges/frontend->adservice/baseline"); code != 404 || !strings.Contains(body, "no baseline") {
		t.Errorf("unknown edge: %d %s", code, body)
	}
	if code, _, body := get("/api/v1/edges/frontend/baseline"); code != 400 || !strings.Contains(body, "SOURCE->TARGET") {
		t.Errorf("malformed edge: %d %s", code, body)
	}
	if code, _, body := get("/api/v1/incidents?state=open"); code != 200 || !strings.Contains(body, "inc-1") || strings.Contains(body, "inc-0") {
		t.Errorf("open incidents: %d %s", code, body)
	}
	if code, _, body := get("/api/v1/incidents?state=sleeping"); code != 400 || !strings.Contains(body, "state") {
		t.Errorf("bad state filter: %d %s", code, body)
	}
	if code, _, body := get("/api/v1/incidents?since=yesterday"); code != 400 || !strings.Contains(body, "RFC 3339") {
		t.Errorf("bad since: %d %s", code, body)
	}
	if code, _, body := get("/api/v1/incidents/inc-1/suspects"); code != 200 || !strings.Contains(body, `"paymentservice"`) {
		t.Errorf("suspects: %d %s", code, body)
	}
	if code, _, _ := get("/api/v1/incidents/nope"); code != 404 {
		t.Errorf("unknown incident: %d", code)
	}
	if code, ctype, body := get("/api/v1/openapi.json"); code != 200 || ctype != "application/json" || !strings.Contains(body, "/api/v1/incidents/{id}/suspects") {
		t.Errorf("openapi: %d %s", code, ctype)
	}
	if code, _, _ := get("/debug/pprof/"); code != 404 {
		t.Errorf("pprof is served without being asked for: %d", code)
	}
}

// TestGraphBounded: a graph a cardinality attack grew (100,000 services)
// is served as its busiest DefaultGraphNodes nodes, under 1 MB, saying
// so; limit and service narrow it, and a bad limit is refused.
func TestGraphBounded(t *testing.T) {
	const n = 100_000
	snap := &graph.Snapshot{}
	for i := range n {
		id := fmt.Sprintf("svc-%06d", i)
		snap.Nodes = append(snap.Nodes, graph.NodeView{Node: graph.Node{Name: id, Kind: graph.NodeService}})
		if i > 0 {
			snap.Edges = append(snap.Edges, graph.EdgeView{Source: "svc-000000", Target: id, TargetKind: graph.NodeService,
				Total: graph.StatsView{Requests: int64(n - i)}})
		}
	}
	srv := httptest.NewServer(Handler(Options{Graph: fixedGraph{snap}}))
	defer srv.Close()
	get := func(q string) (int, []byte) {
		resp, err := http.Get(srv.URL + "/api/v1/graph" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, body := get("")
	var g graph.Snapshot
	if code != 200 || json.Unmarshal(body, &g) != nil {
		t.Fatalf("graph: %d %.200s", code, body)
	}
	if len(g.Nodes) != DefaultGraphNodes || !g.Truncated || g.TotalNodes != n || len(body) > 1<<20 {
		t.Errorf("default: %d nodes, truncated %v, total %d, %d bytes; want %d nodes of %d, under 1 MB", len(g.Nodes), g.Truncated, g.TotalNodes, len(body), DefaultGraphNodes, n)
	}
	if g.Nodes[0].Name != "svc-000000" || g.Nodes[1].Name != "svc-000001" {
		t.Errorf("not the busiest nodes first: %s, %s", g.Nodes[0].Name, g.Nodes[1].Name)
	}
	if code, body := get("?service=svc-000042&limit=10"); code != 200 || json.Unmarshal(body, &g) != nil || len(g.Nodes) != 2 || len(g.Edges) != 1 {
		t.Errorf("one service: %d %.300s", code, body)
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?limit=10001", "?service=" + strings.Repeat("s", 2000)} {
		if code, _ := get(q); code != 400 {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
}

// TestGraphBoundedInBytes: when the busiest DefaultGraphNodes nodes would
// not fit in 1 MB (services with many operations each), GET /api/v1/graph
// without a limit answers with fewer, the busiest, under 1 MB; a limit
// asked for is served as asked.
func TestGraphBoundedInBytes(t *testing.T) {
	const n, ops = 2000, 20
	snap := &graph.Snapshot{}
	for i := range n {
		id := fmt.Sprintf("svc-%06d", i)
		nv := graph.NodeView{Node: graph.Node{Name: id, Kind: graph.NodeService}}
		for j := range ops {
			nv.Operations = append(nv.Operations, graph.OpView{Name: fmt.Sprintf("GET /api/v1/items/%d", j), Total: graph.StatsView{Requests: 1}})
		}
		snap.Nodes = append(snap.Nodes, nv)
		if i > 0 {
			snap.Edges = append(snap.Edges, graph.EdgeView{Source: "svc-000000", Target: id, TargetKind: graph.NodeService,
				Total: graph.StatsView{Requests: int64(n - i)}})
		}
	}
	srv := httptest.NewServer(Handler(Options{Graph: fixedGraph{snap}}))
	defer srv.Close()
	get := func(q string) (graph.Snapshot, int) {
		resp, err := http.Get(srv.URL + "/api/v1/graph" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var g graph.Snapshot
		if resp.StatusCode != 200 || json.Unmarshal(b, &g) != nil {
			t.Fatalf("graph%s: %d %.200s", q, resp.StatusCode, b)
		}
		return g, len(b)
	}
	g, size := get("")
	t.Logf("default: %d of %d nodes in %d bytes", len(g.Nodes), n, size)
	if size > 1<<20 || len(g.Nodes) == 0 || len(g.Nodes) >= DefaultGraphNodes || !g.Truncated || g.Nodes[0].Name != "svc-000000" {
		t.Errorf("default: %d nodes (first %s), %d bytes, truncated %v; want fewer than %d, the busiest, under 1 MB",
			len(g.Nodes), g.Nodes[0].Name, size, g.Truncated, DefaultGraphNodes)
	}
	if g, size := get(fmt.Sprintf("?limit=%d", DefaultGraphNodes)); len(g.Nodes) != DefaultGraphNodes || size <= 1<<20 {
		t.Errorf("limit=%d: %d nodes in %d bytes; want as many as asked (the fixture is over 1 MB then)", DefaultGraphNodes, len(g.Nodes), size)
	}
}
