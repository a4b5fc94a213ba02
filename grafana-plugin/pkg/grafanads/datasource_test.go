package grafanads

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// newTestDatasource is a data source of the detector at url with the given
// token, logging into a recorder.
func newTestDatasource(t *testing.T, url, token string) (*Datasource, *logRecorder) {
	t.Helper()
	rec := &logRecorder{}
	ds, err := New(backend.DataSourceInstanceSettings{
		URL:                     url,
		JSONData:                json.RawMessage(`{"timeoutSeconds": 5}`),
		DecryptedSecureJSONData: map[string]string{"apiToken": token},
	}, rec)
	if err != nil {
		t.Fatal(err)
	}
	return ds, rec
}

func query(refID, jsonQuery string) backend.DataQuery {
	var q struct {
		QueryType string `json:"queryType"`
	}
	json.Unmarshal([]byte(jsonQuery), &q)
	return backend.DataQuery{
		RefID:     refID,
		QueryType: q.QueryType,
		JSON:      json.RawMessage(jsonQuery),
		TimeRange: backend.TimeRange{
			From: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC),
			To:   time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC),
		},
	}
}

// TestGolden runs each query type against the recorded detector answers and
// compares the whole response (frames, field configs, notices, errors) with
// testdata/golden/NAME.json. `go test -run TestGolden -update` rewrites them.
func TestGolden(t *testing.T) {
	cases := []struct {
		name      string
		incidents string // the incidents fixture the detector serves
		query     string
	}{
		{"incidents", "incidents.json", `{"queryType":"incidents"}`},
		{"incidents-resolved", "incidents-resolved.json", `{"queryType":"incidents","state":"resolved"}`},
		{"incidents-other-service", "incidents.json", `{"queryType":"incidents","service":"adservice"}`},
		{"suspects-latest", "incidents.json", `{"queryType":"suspects"}`},
		{"suspects-resolved-by-id", "incidents-resolved.json", `{"queryType":"suspects","incidentId":"inc-20261125T084930Z-74b6"}`},
		{"suspects-none", "incidents-none.json", `{"queryType":"suspects"}`},
		{"graph", "incidents.json", `{"queryType":"graph"}`},
		{"graph-no-open-incident", "incidents-resolved.json", `{"queryType":"graph"}`},
		{"graph-service", "incidents.json", `{"queryType":"graph","service":"checkoutservice"}`},
		{"baseline-edge", "incidents.json", `{"queryType":"baseline","edge":"checkoutservice->paymentservice"}`},
		{"baseline-suspects", "incidents.json", `{"queryType":"baseline"}`},
		{"baseline-no-open-incident", "incidents-resolved.json", `{"queryType":"baseline"}`},
		{"annotations", "incidents-resolved.json", `{"queryType":"annotations"}`},
		{"error-unknown-type", "incidents.json", `{"queryType":"traces"}`},
		{"error-bad-edge", "incidents.json", `{"queryType":"baseline","edge":"frontend"}`},
		{"error-no-baseline", "incidents.json", `{"queryType":"baseline","edge":"frontend->nowhere"}`},
		{"error-bad-feature", "incidents.json", `{"queryType":"baseline","edge":"checkoutservice->paymentservice","feature":"p42"}`},
		{"error-unknown-incident", "incidents.json", `{"queryType":"suspects","incidentId":"inc-missing"}`},
		{"error-bad-state", "incidents.json", `{"queryType":"incidents","state":"closed"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := fixtureDetector(t, c.incidents)
			ds, _ := newTestDatasource(t, srv.URL, testToken)
			resp, err := ds.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{query("A", c.query)}})
			if err != nil {
				t.Fatal(err)
			}
			dr, ok := resp.Responses["A"]
			if !ok || len(resp.Responses) != 1 {
				t.Fatalf("responses %v, want exactly A", resp.Responses)
			}
			if strings.HasPrefix(c.name, "error-") != (dr.Error != nil) {
				t.Fatalf("error = %v", dr.Error)
			}
			checkGolden(t, c.name, &dr)
		})
	}
}

// nodeGraphFields are the field names Grafana's Node Graph panel reads.
var (
	nodeFields = []string{"id", "title", "subtitle", "mainstat", "secondarystat", "color"}
	edgeFields = []string{"id", "source", "target", "mainstat", "secondarystat"}
)

func fieldNames(f *data.Frame) []string {
	var out []string
	for _, fl := range f.Fields {
		out = append(out, fl.Name)
	}
	return out
}

func column(t *testing.T, f *data.Frame, name string) *data.Field {
	t.Helper()
	fl, _ := f.FieldByName(name)
	if fl == nil {
		t.Fatalf("frame %s has no field %s (has %v)", f.Name, name, fieldNames(f))
	}
	return fl
}

// TestGraphFrames checks what the Node Graph panel depends on: frame names,
// field names and types, arcs that sum to one, the culprit in its own
// colour, and edges that join existing nodes.
func TestGraphFrames(t *testing.T) {
	srv := fixtureDetector(t, "incidents.json")
	ds, _ := newTestDatasource(t, srv.URL, testToken)
	resp, _ := ds.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{query("G", `{"queryType":"graph"}`)}})
	dr := resp.Responses["G"]
	if dr.Error != nil || len(dr.Frames) != 2 {
		t.Fatalf("error %v, %d frames", dr.Error, len(dr.Frames))
	}
	nodes, edges := dr.Frames[0], dr.Frames[1]
	if nodes.Name != "nodes" || edges.Name != "edges" {
		t.Fatalf("frames %q, %q; want nodes, edges", nodes.Name, edges.Name)
	}
	for _, f := range dr.Frames {
		if f.Meta == nil || f.Meta.PreferredVisualization != data.VisTypeNodeGraph {
			t.Errorf("frame %s: preferred visualisation %v, want nodeGraph", f.Name, f.Meta)
		}
	}
	for _, n := range nodeFields {
		column(t, nodes, n)
	}
	for _, n := range edgeFields {
		column(t, edges, n)
	}
	for _, fl := range append(slices.Clone(nodes.Fields), edges.Fields...) {
		known := slices.Contains(nodeFields, fl.Name) || slices.Contains(edgeFields, fl.Name) ||
			strings.HasPrefix(fl.Name, "arc__") || strings.HasPrefix(fl.Name, "detail__")
		if !known {
			t.Errorf("field %s is not one the Node Graph reads", fl.Name)
		}
	}

	ids := column(t, nodes, "id")
	var arcs []*data.Field
	for _, fl := range nodes.Fields {
		if strings.HasPrefix(fl.Name, "arc__") {
			arcs = append(arcs, fl)
		}
	}
	culprits := 0
	known := map[string]bool{}
	for i := 0; i < nodes.Rows(); i++ {
		id := ids.At(i).(string)
		known[id] = true
		sum := 0.0
		for _, a := range arcs {
			sum += a.At(i).(float64)
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("node %s: arcs sum to %v", id, sum)
		}
		if column(t, nodes, "arc__culprit").At(i).(float64) == 1 {
			culprits++
			if id != "paymentservice" {
				t.Errorf("culprit %s, want paymentservice (the incident's top suspect)", id)
			}
			if c := column(t, nodes, "color").At(i); c != culpritHex {
				t.Errorf("culprit colour %v", c)
			}
		}
	}
	if culprits != 1 {
		t.Errorf("%d culprits, want 1", culprits)
	}
	for i := 0; i < edges.Rows(); i++ {
		src, dst := column(t, edges, "source").At(i).(string), column(t, edges, "target").At(i).(string)
		if !known[src] || !known[dst] {
			t.Errorf("edge %s->%s joins a node not in the nodes frame", src, dst)
		}
		if id := column(t, edges, "id").At(i); id != src+"->"+dst {
			t.Errorf("edge id %v", id)
		}
	}
}

// TestQueryDataOneResponsePerRefID: each query answers under its own RefID,
// and a failing query leaves the others intact with its error's source.
func TestQueryDataOneResponsePerRefID(t *testing.T) {
	srv := fixtureDetector(t, "incidents.json")
	ds, _ := newTestDatasource(t, srv.URL, testToken)
	resp, err := ds.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{
		query("A", `{"queryType":"incidents"}`),
		query("B", `{"queryType":"nope"}`),
		query("C", `{"queryType":"suspects","incidentId":"inc-missing"}`),
		query("D", `{"queryType":"graph"}`),
		{RefID: "E", JSON: json.RawMessage(`{not json`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Responses) != 5 {
		t.Fatalf("%d responses, want 5", len(resp.Responses))
	}
	for ref, want := range map[string]struct {
		fail   bool
		status backend.Status
	}{"A": {false, 0}, "B": {true, backend.StatusBadRequest}, "C": {true, backend.StatusNotFound}, "D": {false, 0}, "E": {true, backend.StatusBadRequest}} {
		dr := resp.Responses[ref]
		if (dr.Error != nil) != want.fail {
			t.Errorf("%s: error %v", ref, dr.Error)
			continue
		}
		if want.fail && (dr.Status != want.status || dr.ErrorSource != backend.ErrorSourceDownstream) {
			t.Errorf("%s: status %v source %q, want %v downstream", ref, dr.Status, dr.ErrorSource, want.status)
		}
	}
}

// TestDetectorDown: an unreachable detector is a downstream error on each
// query and an error status from CheckHealth, naming the URL.
func TestDetectorDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	ds, _ := newTestDatasource(t, url, testToken)
	resp, _ := ds.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{query("A", `{"queryType":"graph"}`)}})
	dr := resp.Responses["A"]
	if dr.Error == nil || dr.ErrorSource != backend.ErrorSourceDownstream || dr.Status != backend.StatusBadGateway {
		t.Fatalf("got %v (%v, %v)", dr.Error, dr.Status, dr.ErrorSource)
	}
	h, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if err != nil || h.Status != backend.HealthStatusError || !strings.Contains(h.Message, url) {
		t.Fatalf("health %+v, %v", h, err)
	}
}

func TestCheckHealth(t *testing.T) {
	srv := fixtureDetector(t, "incidents.json")
	ds, _ := newTestDatasource(t, srv.URL, testToken)
	h, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := "Causeway detector at " + srv.URL + " is up: 15 nodes, 19 edges, 1 open incidents"
	if h.Status != backend.HealthStatusOk || h.Message != want {
		t.Fatalf("health %v %q, want OK %q", h.Status, h.Message, want)
	}
}

// TestTokenNeverLeaks: with a token the detector rejects (and echoes back),
// neither query errors, health messages, resource answers nor logs hold it.
func TestTokenNeverLeaks(t *testing.T) {
	srv := fixtureDetector(t, "incidents.json")
	const wrong = "wrong-token-9f8e7d"
	ds, rec := newTestDatasource(t, srv.URL, wrong)
	var seen []string
	resp, _ := ds.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{
		query("A", `{"queryType":"incidents"}`), query("B", `{"queryType":"graph"}`), query("C", `{"queryType":"baseline","edge":"a->b"}`),
	}})
	for ref, dr := range resp.Responses {
		if dr.Error == nil || dr.Status != backend.StatusUnauthorized {
			t.Errorf("%s: want 401 error, got %v %v", ref, dr.Status, dr.Error)
			continue
		}
		seen = append(seen, dr.Error.Error())
	}
	h, _ := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if h.Status != backend.HealthStatusError || !strings.Contains(h.Message, "authentication failed (HTTP 401)") {
		t.Errorf("health with a refused token: %v %q, want an authentication error", h.Status, h.Message)
	}
	seen = append(seen, h.Message)
	var sent []byte
	ds.CallResource(context.Background(), &backend.CallResourceRequest{Path: "incidents"},
		backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error { sent = r.Body; return nil }))
	seen = append(seen, string(sent))
	seen = append(seen, rec.lines()...)
	if len(rec.lines()) == 0 {
		t.Error("no log lines recorded: the test would not see a leak")
	}
	for _, s := range seen {
		if strings.Contains(s, wrong) {
			t.Errorf("token leaked: %s", s)
		}
		if !strings.Contains(s, "[redacted]") && !strings.Contains(s, "query failed") {
			t.Errorf("expected the echoed credentials to be redacted in %q", s)
		}
	}
}

func TestCallResource(t *testing.T) {
	srv := fixtureDetector(t, "incidents.json")
	ds, _ := newTestDatasource(t, srv.URL, testToken)
	for path, want := range map[string]string{
		"incidents": "inc-20261125T084930Z-74b6 · paymentservice (open)",
		"services":  "paymentservice",
		"edges":     "checkoutservice->paymentservice",
	} {
		var got *backend.CallResourceResponse
		err := ds.CallResource(context.Background(), &backend.CallResourceRequest{Path: path, Method: "GET"},
			backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error { got = r; return nil }))
		if err != nil || got.Status != 200 {
			t.Fatalf("%s: %v %+v", path, err, got)
		}
		var opts []Option
		json.Unmarshal(got.Body, &opts)
		if !slices.ContainsFunc(opts, func(o Option) bool { return o.Label == want }) {
			t.Errorf("%s: no option %q in %s", path, want, got.Body)
		}
	}
	var got *backend.CallResourceResponse
	ds.CallResource(context.Background(), &backend.CallResourceRequest{Path: "secrets"},
		backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error { got = r; return nil }))
	if got.Status != 404 {
		t.Errorf("unknown resource: %d", got.Status)
	}
}

func TestLoadSettings(t *testing.T) {
	for _, c := range []struct {
		name string
		in   backend.DataSourceInstanceSettings
		want Settings
		err  string
	}{
		{"url", backend.DataSourceInstanceSettings{URL: " http://causeway:8080 ", DecryptedSecureJSONData: map[string]string{"apiToken": "t"}},
			Settings{URL: "http://causeway:8080", APIToken: "t", Timeout: DefaultTimeout}, ""},
		{"jsonData url and timeout", backend.DataSourceInstanceSettings{JSONData: json.RawMessage(`{"detectorUrl":"http://d:1","timeoutSeconds":2.5}`)},
			Settings{URL: "http://d:1", Timeout: 2500 * time.Millisecond}, ""},
		{"no url", backend.DataSourceInstanceSettings{}, Settings{}, "url: the detector URL is not set"},
		{"negative timeout", backend.DataSourceInstanceSettings{URL: "http://d", JSONData: json.RawMessage(`{"timeoutSeconds":-1}`)}, Settings{}, "jsonData.timeoutSeconds"},
		{"bad json", backend.DataSourceInstanceSettings{URL: "http://d", JSONData: json.RawMessage(`[`)}, Settings{}, "jsonData:"},
	} {
		got, err := LoadSettings(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	if _, err := New(backend.DataSourceInstanceSettings{URL: "ftp://x"}, log.DefaultLogger); err == nil {
		t.Error("ftp URL accepted")
	}
}

// logRecorder is a log.Logger keeping every line as text.
type logRecorder struct {
	mu     sync.Mutex
	lines_ []string
	with   []any
}

func (r *logRecorder) add(level, msg string, args []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines_ = append(r.lines_, fmt.Sprint(level, " ", msg, " ", append(slices.Clone(r.with), args...)))
}
func (r *logRecorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines_)
}
func (r *logRecorder) Debug(msg string, args ...any)              { r.add("debug", msg, args) }
func (r *logRecorder) Info(msg string, args ...any)               { r.add("info", msg, args) }
func (r *logRecorder) Warn(msg string, args ...any)               { r.add("warn", msg, args) }
func (r *logRecorder) Error(msg string, args ...any)              { r.add("error", msg, args) }
func (r *logRecorder) With(args ...any) log.Logger                { return r }
func (r *logRecorder) Level() log.Level                           { return log.Debug }
func (r *logRecorder) FromContext(ctx context.Context) log.Logger { return r }

// checkGolden compares dr, as Grafana receives it in JSON, with
// testdata/golden/NAME.json (rewritten with -update). The golden files are
// plain JSON so that the frontend's screenshot page can render them.
func checkGolden(t *testing.T, name string, dr *backend.DataResponse) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".json")
	got, err := json.MarshalIndent(dr, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
	}
	var g, w any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	json.Unmarshal(got, &g)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s differs from the response (-update rewrites it); got:\n%s", path, got)
	}
}

// TestTypedSeries: anomalies are attributed to nodes and edges by their
// typed series_id, whatever their names hold: a target with ':' in it
// (host:port) and an operation with '/' and ':' in it land where they
// belong, and the suspect's edge is found by its target.
func TestTypedSeries(t *testing.T) {
	g := &Graph{Nodes: []Node{{ID: "paymentservice"}, {ID: "api.payments.example:443"}}}
	inc := &Incident{
		Anomalies: []Anomaly{
			{Series: "edge paymentservice->api.payments.example:443:POST /v1/charges:capture", Score: 8,
				SeriesID: Series{Kind: "edge", Source: "paymentservice", Target: "api.payments.example:443", Operation: "POST /v1/charges:capture"}},
			{Series: "op paymentservice/a/b:c", Score: 4,
				SeriesID: Series{Kind: "operation", Service: "paymentservice", Operation: "a/b:c"}},
		},
		Suspects: []Suspect{{Service: "api.payments.example:443", Kind: "dependency"}},
	}
	s := scoreIncident(g, inc)
	const edge = "paymentservice->api.payments.example:443"
	if s.edge[edge] != 8 || s.edgeOp[edge] != "POST /v1/charges:capture" {
		t.Errorf("edge scores %v, operations %v", s.edge, s.edgeOp)
	}
	if s.node["paymentservice"] != 4 || len(s.node) != 1 {
		t.Errorf("node scores %v, want paymentservice 4 only", s.node)
	}
	want := []SuspectEdge{{"paymentservice", "api.payments.example:443", "POST /v1/charges:capture"}}
	if got := SuspectEdges(inc, 3); len(got) != 1 || got[0] != want[0] {
		t.Errorf("suspect edges %v, want %v", got, want)
	}
}
