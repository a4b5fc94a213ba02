package grafanads

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testToken is the API token the fixture detector expects.
const testToken = "s3cret-t0ken-for-tests"

// fixtureDetector serves the detector's REST API from JSON recorded from a
// running demo detector (testdata/detector): incidentsFile is the incidents
// list it serves, filtered by state as the detector does. Requests without
// the Bearer token get 401, as an authenticating detector would answer.
func fixtureDetector(t *testing.T, incidentsFile string) *httptest.Server {
	t.Helper()
	dir := filepath.Join("testdata", "detector")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var incidents struct {
		Incidents []json.RawMessage `json:"incidents"`
	}
	if err := json.Unmarshal(read(incidentsFile), &incidents); err != nil {
		t.Fatal(err)
	}
	fail := func(w http.ResponseWriter, code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /api/v1/graph", func(w http.ResponseWriter, r *http.Request) { w.Write(read("graph.json")) })
	mux.HandleFunc("GET /api/v1/incidents", func(w http.ResponseWriter, r *http.Request) {
		state := r.URL.Query().Get("state")
		out := []json.RawMessage{}
		for _, raw := range incidents.Incidents {
			var inc struct{ State string }
			json.Unmarshal(raw, &inc)
			if state == "" || inc.State == state {
				out = append(out, raw)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"incidents": out})
	})
	mux.HandleFunc("GET /api/v1/incidents/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, raw := range incidents.Incidents {
			var inc struct{ ID string }
			json.Unmarshal(raw, &inc)
			if inc.ID == r.PathValue("id") {
				w.Write(raw)
				return
			}
		}
		fail(w, http.StatusNotFound, "no incident "+r.PathValue("id"))
	})
	mux.HandleFunc("GET /api/v1/edges/{edge}/baseline", func(w http.ResponseWriter, r *http.Request) {
		src, dst, _ := strings.Cut(r.PathValue("edge"), "->")
		b, err := os.ReadFile(filepath.Join(dir, "baseline-"+src+"-"+dst+".json"))
		if err != nil {
			fail(w, http.StatusNotFound, "no baseline for edge "+src+"->"+dst)
			return
		}
		if op := r.URL.Query().Get("operation"); op != "" {
			var eb map[string]any
			json.Unmarshal(b, &eb)
			var keep []any
			for _, o := range eb["operations"].([]any) {
				if o.(map[string]any)["operation"] == op {
					keep = append(keep, o)
				}
			}
			if keep == nil {
				fail(w, http.StatusNotFound, "no baseline for edge "+src+"->"+dst+" operation "+op)
				return
			}
			eb["operations"] = keep
			b, _ = json.Marshal(eb)
		}
		w.Write(b)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			// An authenticating server that echoes what it got: the
			// plugin must not pass the token on into its errors.
			fail(w, http.StatusUnauthorized, "bad credentials: "+r.Header.Get("Authorization"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}
