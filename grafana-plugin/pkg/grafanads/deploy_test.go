package grafanads

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// readJSON decodes the JSON file at path into v.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestPluginJSON: the frontend's plugin.json names this backend: the same
// plugin id, and the executable Makefile's make plugin builds.
func TestPluginJSON(t *testing.T) {
	var plugin struct {
		ID, Type, Executable string
		Backend              bool
	}
	readJSON(t, filepath.Join("..", "..", "src", "plugin.json"), &plugin)
	if plugin.ID != PluginID || plugin.Type != "datasource" || !plugin.Backend || plugin.Executable != "gpx_causeway" {
		t.Errorf("plugin.json id %q type %q backend %v executable %q; backend id %q",
			plugin.ID, plugin.Type, plugin.Backend, plugin.Executable, PluginID)
	}
}

// TestDeployedDashboard: every query of the dashboard the repository
// provisions (deploy/grafana, in the detector's module, whose own tests
// check its layout) asks for a query type this backend knows.
func TestDeployedDashboard(t *testing.T) {
	type target struct {
		RefID     string `json:"refId"`
		QueryType string `json:"queryType"`
	}
	var d struct {
		Panels []struct {
			Title   string   `json:"title"`
			Targets []target `json:"targets"`
		} `json:"panels"`
		Annotations struct {
			List []struct {
				Name   string `json:"name"`
				Target target `json:"target"`
			} `json:"list"`
		} `json:"annotations"`
	}
	readJSON(t, filepath.Join("..", "..", "..", "deploy", "grafana", "dashboards", "causeway.json"), &d)
	n := 0
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			n++
			if !slices.Contains(QueryTypes, q.QueryType) {
				t.Errorf("panel %q query %s: query type %q unknown to the backend", p.Title, q.RefID, q.QueryType)
			}
		}
	}
	for _, a := range d.Annotations.List {
		n++
		if !slices.Contains(QueryTypes, a.Target.QueryType) {
			t.Errorf("annotation %q: query type %q unknown to the backend", a.Name, a.Target.QueryType)
		}
	}
	if n == 0 {
		t.Error("the dashboard has no queries")
	}
}
