// Package api serves Causeway's HTTP interface: the REST API under
// /api/v1/, Prometheus /metrics, and the /healthz and /readyz probes.
package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/causeway/causeway/graph"
)

// GraphSource is what the API reads the service graph from. Snapshot must
// be safe to call from any goroutine and return an immutable value.
type GraphSource interface {
	Snapshot() *graph.Snapshot
}

// BaselineSource is what the API reads learned baselines from; safe for
// concurrent use.
type BaselineSource interface {
	EdgeBaselines(source, target, operation string) []graph.SeriesView
}

// Options configure the handler. Graph and Gatherer are required.
type Options struct {
	Graph     GraphSource
	Baselines BaselineSource // nil: the baseline endpoint answers 404
	Gatherer  prometheus.Gatherer
	Log       *slog.Logger
	// Ready reports whether the detector is ready to serve traffic (for
	// example: joined its consumer group). Nil means always ready.
	Ready func() error
	// Pprof mounts /debug/pprof/ when true.
	Pprof bool
}

// Handler returns the HTTP handler for every endpoint.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/graph", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, o.Log, http.StatusOK, o.Graph.Snapshot())
	})
	mux.HandleFunc("GET /api/v1/edges/{edge}/baseline", func(w http.ResponseWriter, r *http.Request) {
		source, target, ok := strings.Cut(r.PathValue("edge"), "->")
		if !ok || source == "" || target == "" {
			writeJSON(w, o.Log, http.StatusBadRequest, map[string]string{"error": "edge must be SOURCE->TARGET, e.g. frontend->cartservice (URL-encode > as %3E if your client needs)"})
			return
		}
		var views []graph.SeriesView
		if o.Baselines != nil {
			views = o.Baselines.EdgeBaselines(source, target, r.URL.Query().Get("operation"))
		}
		if len(views) == 0 {
			writeJSON(w, o.Log, http.StatusNotFound, map[string]string{"error": "no baseline for edge " + source + "->" + target + " (yet: an edge needs " + strconv.Itoa(graph.MinRequests) + " calls in a window to be learned)"})
			return
		}
		writeJSON(w, o.Log, http.StatusOK, map[string]any{"source": source, "target": target, "operations": views})
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
	return mux
}

func writeJSON(w http.ResponseWriter, log *slog.Logger, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // edges read "a->b"
	if err := enc.Encode(v); err != nil && log != nil {
		log.Debug("write response", "err", err)
	}
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	if p.log != nil {
		p.log.Error("metrics handler", "detail", v)
	}
}
