// Package grafana holds the Grafana provisioning files and dashboard for
// Causeway; its tests check them against the data source plugin's
// plugin.json. The plugin's backend is a module of its own
// (grafana-plugin/go.mod), so the check that every query type in the
// dashboard is one the backend knows lives there, in
// grafana-plugin/pkg/grafanads (TestDeployedDashboard).
package grafana

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The plugin's query types the dashboard uses, as the backend names them
// (grafanads.Query*).
const (
	queryGraph       = "graph"
	querySuspects    = "suspects"
	queryIncidents   = "incidents"
	queryBaseline    = "baseline"
	queryAnnotations = "annotations"
)

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string `json:"refId"`
	Datasource *dsRef `json:"datasource"`
	QueryType  string `json:"queryType"`
	IncidentID string `json:"incidentId"`
}

type panel struct {
	ID         int      `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	Datasource *dsRef   `json:"datasource"`
	Targets    []target `json:"targets"`
	GridPos    struct{ X, Y, W, H int }
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct{ Name, Type string } `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string `json:"name"`
			Datasource *dsRef `json:"datasource"`
			Enable     bool   `json:"enable"`
			Target     target `json:"target"`
		} `json:"list"`
	} `json:"annotations"`
}

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

// provisioned is the data source the provisioning file creates.
func provisioned(t *testing.T) (name, typ, uid, url string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("provisioning", "datasources", "causeway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, UID, URL string
			SecureJSONData       map[string]string `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if f.APIVersion != 1 || len(f.Datasources) != 1 {
		t.Fatalf("want apiVersion 1 and one data source, got %+v", f)
	}
	d := f.Datasources[0]
	if _, ok := d.SecureJSONData["apiToken"]; !ok {
		t.Error("the provisioned data source sets no secureJsonData.apiToken")
	}
	return d.Name, d.Type, d.UID, d.URL
}

// TestProvisionedDatasource: the data source is the plugin in plugin.json
// and points at a detector URL.
func TestProvisionedDatasource(t *testing.T) {
	_, typ, uid, url := provisioned(t)
	var plugin struct {
		ID, Type, Executable string
		Backend              bool
	}
	readJSON(t, filepath.Join("..", "..", "grafana-plugin", "src", "plugin.json"), &plugin)
	if typ != plugin.ID || plugin.Type != "datasource" || !plugin.Backend || plugin.Executable != "gpx_causeway" {
		t.Errorf("provisioned type %q; plugin.json id %q type %q backend %v executable %q",
			typ, plugin.ID, plugin.Type, plugin.Backend, plugin.Executable)
	}
	if uid != "causeway" || url == "" {
		t.Errorf("uid %q url %q", uid, url)
	}
}

// TestDashboard checks the dashboard's structure: the four panels of the
// issue with their panel types, every query on the provisioned data source
// with a query type, and the incident variable wired in.
func TestDashboard(t *testing.T) {
	_, typ, uid, _ := provisioned(t)
	var d dashboard
	readJSON(t, filepath.Join("dashboards", "causeway.json"), &d)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q title %q", d.UID, d.Title)
	}
	want := map[string]string{ // query type -> panel type
		queryGraph:     "nodeGraph",
		querySuspects:  "table",
		queryIncidents: "table",
		queryBaseline:  "timeseries",
	}
	seen := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d repeated", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource == nil || p.Datasource.UID != uid || p.Datasource.Type != typ {
			t.Errorf("panel %q: data source %+v, want %s/%s", p.Title, p.Datasource, typ, uid)
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid position %+v", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.Datasource == nil || q.Datasource.UID != uid {
				t.Errorf("panel %q query %s: data source %+v", p.Title, q.RefID, q.Datasource)
			}
			if q.QueryType == "" {
				t.Errorf("panel %q query %s: no query type", p.Title, q.RefID)
			}
			if pt, ok := want[q.QueryType]; ok && pt != p.Type {
				t.Errorf("panel %q: %s query in a %s panel, want %s", p.Title, q.QueryType, p.Type, pt)
			}
			if q.QueryType == queryGraph || q.QueryType == querySuspects {
				if q.IncidentID != "$incident" {
					t.Errorf("panel %q: incidentId %q, want $incident", p.Title, q.IncidentID)
				}
			}
			seen[q.QueryType] = true
		}
	}
	for qt := range want {
		if !seen[qt] {
			t.Errorf("no panel queries %s", qt)
		}
	}
	if !slices.ContainsFunc(d.Templating.List, func(v struct{ Name, Type string }) bool { return v.Name == "incident" }) {
		t.Error("no incident variable")
	}
	if len(d.Annotations.List) != 1 || d.Annotations.List[0].Target.QueryType != queryAnnotations ||
		d.Annotations.List[0].Datasource == nil || d.Annotations.List[0].Datasource.UID != uid || !d.Annotations.List[0].Enable {
		t.Errorf("annotations %+v: want one enabled Causeway annotations query", d.Annotations.List)
	}
}

// TestDashboardProvider: the dashboards provider loads files from a folder.
func TestDashboardProvider(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("provisioning", "dashboards", "causeway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string
			Options struct{ Path string }
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if f.APIVersion != 1 || len(f.Providers) != 1 || f.Providers[0].Type != "file" || f.Providers[0].Options.Path == "" {
		t.Errorf("provider %+v", f)
	}
}
