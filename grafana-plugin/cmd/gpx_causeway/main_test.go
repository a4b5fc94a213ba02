package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/grpcplugin"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"
	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
)

// harnessToken is the API token the detector requires (from
// CAUSEWAY_API_TOKEN) and the data source's secure JSON holds; the plugin
// must send it and never print it.
const (
	harnessToken = "harness-token-6b1f0e"
	wrongToken   = "wrong-token-0c7d2a"
)

// TestHarness builds the plugin executable and a detector, starts the
// detector's embedded demo with a fault and an API token, launches the
// plugin the way
// Grafana does (go-plugin handshake of the SDK, gRPC), and runs CheckHealth,
// QueryData and CallResource through it with real settings and secure JSON;
// with a wrong token, CheckHealth reports an authentication error.
func TestHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the plugin and a detector")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	pluginBin := filepath.Join(dir, "gpx_causeway")
	detectorBin := filepath.Join(dir, "detector")
	goBuild(t, ctx, pluginBin, ".", ".")
	// The detector is another module, the repository's root.
	goBuild(t, ctx, detectorBin, "../../..", "./cmd/detector")

	base := startDetector(t, ctx, detectorBin)
	pluginLog := &syncBuffer{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  grpcplugin.ProtocolVersion,
			MagicCookieKey:   grpcplugin.MagicCookieKey,
			MagicCookieValue: grpcplugin.MagicCookieValue,
		},
		VersionedPlugins: map[int]plugin.PluginSet{grpcplugin.ProtocolVersion: {
			"diagnostics": &grpcplugin.DiagnosticsGRPCPlugin{},
			"data":        &grpcplugin.DataGRPCPlugin{},
			"resource":    &grpcplugin.ResourceGRPCPlugin{},
		}},
		Cmd:              exec.Command(pluginBin),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     30 * time.Second,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: pluginLog, Level: hclog.Trace}),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("plugin handshake: %v\n%s", err, pluginLog)
	}
	diag := dispense[grpcplugin.DiagnosticsClient](t, rpc, "diagnostics")
	dataClient := dispense[grpcplugin.DataClient](t, rpc, "data")
	resources := dispense[grpcplugin.ResourceClient](t, rpc, "resource")

	pc := backend.PluginContext{
		OrgID:    1,
		PluginID: "causeway-rootcause-datasource",
		DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{
			UID: "causeway", Name: "Causeway", Type: "causeway-rootcause-datasource", URL: base,
			JSONData:                json.RawMessage(`{"timeoutSeconds": 10}`),
			DecryptedSecureJSONData: map[string]string{"apiToken": harnessToken},
			Updated:                 time.Now(),
		},
	}
	protoPC := backend.ToProto().PluginContext(pc)

	t.Run("CheckHealth", func(t *testing.T) {
		res, err := diag.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: protoPC})
		if err != nil {
			t.Fatal(err)
		}
		h := backend.FromProto().CheckHealthResponse(res)
		if h.Status != backend.HealthStatusOk || !strings.Contains(h.Message, "Causeway detector at "+base+" is up") {
			t.Fatalf("health %v: %s", h.Status, h.Message)
		}
		t.Logf("CheckHealth: %s", h.Message)
	})

	t.Run("CheckHealth with a wrong token", func(t *testing.T) {
		wrong := pc
		ws := *pc.DataSourceInstanceSettings
		ws.UID = "causeway-wrong-token"
		ws.DecryptedSecureJSONData = map[string]string{"apiToken": wrongToken}
		wrong.DataSourceInstanceSettings = &ws
		res, err := diag.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: backend.ToProto().PluginContext(wrong)})
		if err != nil {
			t.Fatal(err)
		}
		h := backend.FromProto().CheckHealthResponse(res)
		if h.Status != backend.HealthStatusError || !strings.Contains(h.Message, "authentication failed (HTTP 401)") ||
			strings.Contains(h.Message, wrongToken) || strings.Contains(h.Message, harnessToken) {
			t.Fatalf("health with a wrong token %v: %s", h.Status, h.Message)
		}
		t.Logf("CheckHealth with a wrong token: %s", h.Message)
	})

	queryData := func(t *testing.T, queries ...backend.DataQuery) *backend.QueryDataResponse {
		t.Helper()
		res, err := dataClient.QueryData(ctx, backend.ToProto().QueryDataRequest(&backend.QueryDataRequest{PluginContext: pc, Queries: queries}))
		if err != nil {
			t.Fatal(err)
		}
		out, err := backend.FromProto().QueryDataResponse(res)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	q := func(refID, body string) backend.DataQuery {
		var m struct {
			QueryType string `json:"queryType"`
		}
		json.Unmarshal([]byte(body), &m)
		return backend.DataQuery{RefID: refID, QueryType: m.QueryType, JSON: json.RawMessage(body),
			TimeRange: backend.TimeRange{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute)}}
	}

	t.Run("QueryData graph and errors per RefID", func(t *testing.T) {
		res := queryData(t, q("G", `{"queryType":"graph"}`), q("X", `{"queryType":"bogus"}`))
		if len(res.Responses) != 2 {
			t.Fatalf("%d responses, want 2", len(res.Responses))
		}
		g := res.Responses["G"]
		if g.Error != nil || len(g.Frames) != 2 {
			t.Fatalf("graph: %v, %d frames", g.Error, len(g.Frames))
		}
		nodes, edges := g.Frames[0], g.Frames[1]
		if nodes.Name != "nodes" || edges.Name != "edges" || nodes.Meta.PreferredVisualization != data.VisTypeNodeGraph {
			t.Fatalf("frames %q %q %v", nodes.Name, edges.Name, nodes.Meta)
		}
		ids := values(t, nodes, "id")
		for _, want := range []string{"frontend", "checkoutservice", "paymentservice"} {
			if !slices.Contains(ids, want) {
				t.Errorf("no node %s in %v", want, ids)
			}
		}
		if edges.Rows() == 0 {
			t.Error("no edges")
		}
		x := res.Responses["X"]
		if x.Error == nil || x.ErrorSource != backend.ErrorSourceDownstream || x.Status != backend.StatusBadRequest {
			t.Errorf("bogus query: %v %v %v", x.Error, x.Status, x.ErrorSource)
		}
	})

	t.Run("incident: suspects and culprit", func(t *testing.T) {
		id := waitIncident(t, ctx, base, "paymentservice")
		res := queryData(t,
			q("S", `{"queryType":"suspects","incidentId":"`+id+`"}`),
			q("G", `{"queryType":"graph","incidentId":"`+id+`"}`),
			q("I", `{"queryType":"incidents"}`),
			q("B", `{"queryType":"baseline","edge":"checkoutservice->paymentservice"}`),
		)
		for ref, r := range res.Responses {
			if r.Error != nil {
				t.Fatalf("%s: %v", ref, r.Error)
			}
		}
		if s := values(t, res.Responses["S"].Frames[0], "service"); len(s) == 0 || s[0] != "paymentservice" {
			t.Errorf("suspects %v, want paymentservice first", s)
		}
		nodes := res.Responses["G"].Frames[0]
		ids := values(t, nodes, "id")
		culprit, _ := nodes.FieldByName("arc__culprit")
		for i, id := range ids {
			if want := id == "paymentservice"; (culprit.At(i).(float64) == 1) != want {
				t.Errorf("node %s: arc__culprit %v", id, culprit.At(i))
			}
		}
		if !slices.Contains(values(t, res.Responses["I"].Frames[0], "id"), id) {
			t.Errorf("incidents table lacks %s", id)
		}
		if f := res.Responses["B"].Frames; len(f) == 0 || f[0].Rows() == 0 {
			t.Errorf("no baseline series for checkoutservice->paymentservice: %v", f)
		}
	})

	t.Run("CallResource services", func(t *testing.T) {
		stream, err := resources.CallResource(ctx, backend.ToProto().CallResourceRequest(&backend.CallResourceRequest{
			PluginContext: pc, Path: "services", Method: http.MethodGet, URL: "services"}))
		if err != nil {
			t.Fatal(err)
		}
		var body []byte
		status := 0
		for {
			part, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if part.Code != 0 {
				status = int(part.Code)
			}
			body = append(body, part.Body...)
		}
		if status != http.StatusOK || !bytes.Contains(body, []byte(`"value":"paymentservice"`)) {
			t.Fatalf("services: %d %s", status, body)
		}
	})

	client.Kill()
	if !strings.Contains(pluginLog.String(), `unknown query type \"bogus\"`) {
		t.Errorf("the plugin's log of the bogus query was not captured, so a leaked token would go unseen:\n%s", pluginLog)
	}
	if strings.Contains(pluginLog.String(), harnessToken) || strings.Contains(pluginLog.String(), wrongToken) {
		t.Errorf("the plugin logged the API token:\n%s", pluginLog)
	}
}

// goBuild builds package pkg of the module in directory dir into out.
func goBuild(t *testing.T, ctx context.Context, out, dir, pkg string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s in %s: %v\n%s", pkg, dir, err, b)
	}
}

// startDetector runs the embedded demo on a free 127.0.0.1 port, four
// times faster than real time, with paymentservice 200 ms slower from 5 s
// after start, and returns its base URL once its graph has nodes.
func startDetector(t *testing.T, ctx context.Context, bin string) string {
	t.Helper()
	cmd := exec.Command(bin, "run", "--listen", "127.0.0.1:0", "--speed", "4", "--history", "20m",
		"--fault", "latency:paymentservice:+200ms@5s/10m", "--log-level", "info")
	cmd.Env = append(cmd.Environ(), "CAUSEWAY_API_TOKEN="+harnessToken)
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	api := regexp.MustCompile(`api=(http://127\.0\.0\.1:\d+)`)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := api.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	var base string
	select {
	case base = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatal("detector did not report its API address within 30 s")
	}
	poll(t, ctx, 60*time.Second, "detector graph has nodes", func() bool {
		var g struct{ Nodes []json.RawMessage }
		return getJSON(base+"/api/v1/graph", &g) == nil && len(g.Nodes) > 0
	})
	// The detector requires the token.
	if err := getJSONWith(base+"/api/v1/graph", "", new(json.RawMessage)); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("detector answered without a token: %v", err)
	}
	return base
}

// waitIncident waits (bounded) for an open incident whose top suspect is
// service and returns its id.
func waitIncident(t *testing.T, ctx context.Context, base, service string) string {
	t.Helper()
	var id string
	poll(t, ctx, 90*time.Second, "an open incident naming "+service, func() bool {
		var list struct {
			Incidents []struct {
				ID       string
				State    string
				Suspects []struct{ Service string }
			}
		}
		if getJSON(base+"/api/v1/incidents?state=open", &list) != nil {
			return false
		}
		for _, inc := range list.Incidents {
			if len(inc.Suspects) > 0 && inc.Suspects[0].Service == service {
				id = inc.ID
				return true
			}
		}
		return false
	})
	return id
}

// poll checks cond every 200 ms until it holds, failing after limit.
func poll(t *testing.T, ctx context.Context, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("waited %v for %s", limit, what)
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// getJSON fetches url with the harness token.
func getJSON(url string, out any) error { return getJSONWith(url, harnessToken, out) }

func getJSONWith(url, token string, out any) error {
	c := http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func dispense[T any](t *testing.T, rpc plugin.ClientProtocol, name string) T {
	t.Helper()
	raw, err := rpc.Dispense(name)
	if err != nil {
		t.Fatalf("dispense %s: %v", name, err)
	}
	c, ok := raw.(T)
	if !ok {
		t.Fatalf("dispense %s: got %T", name, raw)
	}
	return c
}

func values(t *testing.T, f *data.Frame, name string) []string {
	t.Helper()
	fl, _ := f.FieldByName(name)
	if fl == nil {
		t.Fatalf("frame %s has no field %s", f.Name, name)
	}
	var out []string
	for i := 0; i < fl.Len(); i++ {
		out = append(out, fl.At(i).(string))
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for the plugin's log writer and the
// test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
