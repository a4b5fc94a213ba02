package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/causeway/causeway/api"
)

// serve sets the API's handler on srv (cfg is the resolved configuration) and serves it on ln as one of the
// detector's parts; the returned func shuts the server down.
func (m *Main) serve(cfg Config, srv *http.Server, ln net.Listener, in *input, parts *group) (shutdown func()) {
	var alerts api.AlertSource
	if m.notifier != nil {
		alerts = m.notifier
	}
	srv.Handler = api.Handler(api.Options{Graph: in.graph, Baselines: m.bs, Incidents: m.incidents, Alerts: alerts, Gatherer: m.reg, Log: m.Log, Pprof: cfg.Pprof,
		Token: cfg.API.Token.Value(), MaxBodyBytes: cfg.API.MaxBodyBytes, Metrics: api.NewMetrics(m.reg),
		Ready: func() error {
			if !m.ready.Load() {
				return errors.New("starting")
			}
			return in.ready()
		}})
	srv.ErrorLog = slog.NewLogLogger(m.Log.Handler(), slog.LevelDebug) // TLS handshake errors of scanners
	parts.run("http", func(context.Context) error {
		serve := srv.Serve
		if srv.TLSConfig != nil {
			serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	}
}

// announce logs that the detector runs and, in the embedded demo, tells
// the newcomer where to look.
func (m *Main) announce(cfg Config, in *input, addr net.Addr) {
	scheme := cfg.API.scheme()
	m.Log.Info("detector running", "api", scheme+"://"+addr.String(), "api_auth", cfg.API.Token.IsSet(), "brokers", in.kafka.Brokers,
		"topic", in.kafka.WithDefaults().Topic, "group", in.kafka.WithDefaults().GroupID, "embedded_demo", cfg.Embedded(), "cluster", cfg.Cluster.Enabled)
	if !cfg.Embedded() {
		return
	}
	curl := "curl -s"
	switch t := cfg.API.Token; { // where the token is, never its value
	case t.Env != "":
		curl += ` -H "Authorization: Bearer $` + t.Env + `"`
	case t.File != "":
		curl += ` -H "Authorization: Bearer $(cat ` + t.File + `)"`
	}
	if cfg.API.TLS.Enabled() {
		curl += " --cacert " + cfg.API.TLS.CertFile
	}
	gc := m.agg.Config()
	fmt.Fprintf(m.Stdout, "\nCauseway is running the embedded demo: simulated services write spans to an in-process Kafka broker.\n"+
		"  service graph:  %[3]s %[4]s://%[1]s/api/v1/graph\n"+
		"  incidents:      %[3]s %[4]s://%[1]s/api/v1/incidents\n"+
		"  metrics:        %[3]s %[4]s://%[1]s/metrics\n"+
		"The first window closes within %[2]v of start; a fault starts later (see the log).\n\n",
		addr, gc.Window+gc.TraceIdle+gc.Lateness, curl, scheme)
}
