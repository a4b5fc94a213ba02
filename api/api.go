// Package api serves Causeway's HTTP interface: the REST API under
// /api/v1/, Prometheus /metrics, and the /healthz and /readyz probes.
package api

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/incident"
)

// openAPI describes every endpoint; a test checks it against the handler.
//
//go:embed openapi.json
var openAPI []byte

// GraphSource is what the API reads the service graph from. Snapshot must
// be safe to call from any goroutine and return an immutable value.
type GraphSource interface {
	Snapshot() *graph.Snapshot
}

// BaselineSource is what the API reads learned baselines from; safe for
// concurrent use.
type BaselineSource interface {
	EdgeBaselines(source, target, operation string) []baselines.SeriesView
}

// IncidentSource is what the API reads incidents from; safe for concurrent
// use.
type IncidentSource interface {
	List(state incident.State, since, until time.Time) []incident.Incident
	Get(id string) (incident.Incident, bool)
}

// AlertSource reports the alert receivers' delivery state; safe for
// concurrent use, and never returns a secret.
type AlertSource interface {
	Status() []alert.ReceiverStatus
}

// Options configure the handler. Graph and Gatherer are required.
type Options struct {
	Graph     GraphSource
	Baselines BaselineSource // nil: the baseline endpoint answers 404
	Incidents IncidentSource // nil: no incidents
	Alerts    AlertSource    // nil: no receivers
	Gatherer  prometheus.Gatherer
	Log       *slog.Logger
	// Ready reports whether the detector is ready to serve traffic (for
	// example: joined its consumer group). Nil means always ready.
	Ready func() error
	// Pprof mounts /debug/pprof/ when true.
	Pprof bool
	// Token, when set, is the bearer token every request but /healthz and
	// /readyz must carry (Authorization: Bearer <token>); others get 401.
	// Empty: no authentication (a detector on a loopback address).
	Token string
	// MaxBodyBytes bounds a request body; larger ones get 413. Zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Metrics counts refused requests; nil: counted nowhere.
	Metrics *Metrics
}

// Limits of query parameters and path segments; longer ones get 400.
const (
	// MaxLimit is the most incidents one list returns, and its default.
	MaxLimit = 1000
	// DefaultGraphNodes is how many nodes GET /api/v1/graph returns
	// without a limit (the busiest; a system of a few hundred services
	// fits whole), so one request on a graph a cardinality attack grew
	// stays small; MaxGraphNodes is the most a limit may ask for.
	DefaultGraphNodes = 500
	MaxGraphNodes     = 10_000
	// maxGraphBytes bounds GET /api/v1/graph without a limit: fewer than
	// DefaultGraphNodes nodes are returned when that many would not fit.
	maxGraphBytes = 1 << 20
	// maxParam bounds every query parameter and path segment in bytes.
	maxParam = 1024
)

// Handler returns the HTTP handler for every endpoint, behind the token
// check and body limit of o. It never sets CORS headers.
func Handler(o Options) http.Handler {
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	mux := http.NewServeMux()
	for _, r := range routes(o) {
		mux.Handle(r.pattern, r.h)
	}
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, o.Log, http.StatusNotFound, map[string]string{"error": "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	return guard(mux, o.Token, o.MaxBodyBytes, o.Metrics, o.Log)
}

// route is one documented endpoint: "METHOD /path" and its handler.
type route struct {
	pattern string
	h       http.Handler
}

// routes lists every documented endpoint; the OpenAPI document must list
// exactly these (a test checks it).
func routes(o Options) []route {
	var rs []route
	mux := routeList{&rs}
	mux.HandleFunc("GET /api/v1/graph", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		service := q.Get("service")
		if len(service) > maxParam {
			badRequest(w, o.Log, "service must be at most "+strconv.Itoa(maxParam)+" bytes")
			return
		}
		limit, asked := DefaultGraphNodes, false
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxGraphNodes {
				badRequest(w, o.Log, "limit: "+strconv.Quote(truncate(v))+" is not a whole number from 1 to "+strconv.Itoa(MaxGraphNodes))
				return
			}
			limit, asked = n, true
		}
		snap := o.Graph.Snapshot()
		b, err := encodeJSON(snap.Bounded(service, limit))
		// Without a limit asked for, the busiest nodes that fit in
		// maxGraphBytes: nodes with many operations each make for large
		// answers.
		for err == nil && !asked && len(b) > maxGraphBytes && limit > 1 {
			// In proportion to the size, a little under: nodes differ.
			limit = max(1, min(limit-1, int(float64(limit)*0.95*maxGraphBytes/float64(len(b)))))
			b, err = encodeJSON(snap.Bounded(service, limit))
		}
		if err != nil {
			if o.Log != nil {
				o.Log.Error("encode graph", "err", err)
			}
			http.Error(w, "encode graph", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("GET /api/v1/edges/{edge}/baseline", func(w http.ResponseWriter, r *http.Request) {
		if len(r.PathValue("edge")) > maxParam || len(r.URL.Query().Get("operation")) > maxParam {
			badRequest(w, o.Log, "edge and operation must each be at most "+strconv.Itoa(maxParam)+" bytes")
			return
		}
		source, target, ok := strings.Cut(r.PathValue("edge"), "->")
		if !ok || source == "" || target == "" {
			writeJSON(w, o.Log, http.StatusBadRequest, map[string]string{"error": "edge must be SOURCE->TARGET, e.g. frontend->cartservice (URL-encode > as %3E if your client needs)"})
			return
		}
		var views []baselines.SeriesView
		if o.Baselines != nil {
			views = o.Baselines.EdgeBaselines(source, target, r.URL.Query().Get("operation"))
		}
		if len(views) == 0 {
			writeJSON(w, o.Log, http.StatusNotFound, map[string]string{"error": "no baseline for edge " + source + "->" + target + " (yet: an edge needs " + strconv.Itoa(baselines.MinRequests) + " calls in a window to be learned)"})
			return
		}
		writeJSON(w, o.Log, http.StatusOK, map[string]any{"source": source, "target": target, "operations": views})
	})
	mux.HandleFunc("GET /api/v1/incidents", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		state := incident.State(q.Get("state"))
		if state != "" && state != incident.Open && state != incident.Resolved {
			badRequest(w, o.Log, "state: must be open or resolved")
			return
		}
		since, err := parseTime(q.Get("since"))
		if err != nil {
			badRequest(w, o.Log, "since: "+err.Error())
			return
		}
		until, err := parseTime(q.Get("until"))
		if err != nil {
			badRequest(w, o.Log, "until: "+err.Error())
			return
		}
		limit := MaxLimit
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxLimit {
				badRequest(w, o.Log, "limit: "+strconv.Quote(truncate(v))+" is not a whole number from 1 to "+strconv.Itoa(MaxLimit))
				return
			}
			limit = n
		}
		list := []incident.Incident{}
		if o.Incidents != nil {
			list = append(list, o.Incidents.List(state, since, until)...)
		}
		if len(list) > limit {
			list = list[:limit]
		}
		writeJSON(w, o.Log, http.StatusOK, map[string]any{"incidents": list})
	})
	getIncident := func(w http.ResponseWriter, r *http.Request) (incident.Incident, bool) {
		var inc incident.Incident
		ok := false
		id := r.PathValue("id")
		if len(id) > maxParam {
			badRequest(w, o.Log, "incident id must be at most "+strconv.Itoa(maxParam)+" bytes")
			return inc, false
		}
		if o.Incidents != nil {
			inc, ok = o.Incidents.Get(id)
		}
		if !ok {
			writeJSON(w, o.Log, http.StatusNotFound, map[string]string{"error": "no incident " + id})
		}
		return inc, ok
	}
	mux.HandleFunc("GET /api/v1/incidents/{id}", func(w http.ResponseWriter, r *http.Request) {
		if inc, ok := getIncident(w, r); ok {
			writeJSON(w, o.Log, http.StatusOK, inc)
		}
	})
	mux.HandleFunc("GET /api/v1/incidents/{id}/suspects", func(w http.ResponseWriter, r *http.Request) {
		if inc, ok := getIncident(w, r); ok {
			writeJSON(w, o.Log, http.StatusOK, map[string]any{"incident": inc.ID, "state": inc.State, "suspects": inc.Suspects})
		}
	})
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		rs := []alert.ReceiverStatus{}
		if o.Alerts != nil {
			rs = o.Alerts.Status()
		}
		writeJSON(w, o.Log, http.StatusOK, map[string]any{"receivers": rs})
	})
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{o.Log}}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if o.Ready != nil {
			if err := o.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	return rs
}

// routeList collects routes with the ServeMux method names.
type routeList struct{ rs *[]route }

func (l routeList) Handle(p string, h http.Handler) { *l.rs = append(*l.rs, route{p, h}) }
func (l routeList) HandleFunc(p string, f func(http.ResponseWriter, *http.Request)) {
	l.Handle(p, http.HandlerFunc(f))
}

func writeJSON(w http.ResponseWriter, log *slog.Logger, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := newEncoder(w).Encode(v); err != nil && log != nil {
		log.Debug("write response", "err", err)
	}
}

// encodeJSON returns v as writeJSON writes it.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	err := newEncoder(&b).Encode(v)
	return b.Bytes(), err
}

func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // edges read "a->b"
	return enc
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	if p.log != nil {
		p.log.Error("metrics handler", "detail", v)
	}
}

func badRequest(w http.ResponseWriter, log *slog.Logger, msg string) {
	writeJSON(w, log, http.StatusBadRequest, map[string]string{"error": msg})
}

// parseTime reads an RFC 3339 time; empty means unbounded.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", truncate(s))
	}
	return t, nil
}

// truncate shortens a parameter echoed in an error.
func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
