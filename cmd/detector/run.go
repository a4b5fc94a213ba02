package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/api"
	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/detect"
	"github.com/causeway/causeway/fleet"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/pipeline"
	"github.com/causeway/causeway/statefs"
)

// Main is the running detector: consumer, graph, HTTP API and, in the
// embedded demo, an in-process broker and the simulator. Run starts the
// parts and blocks; they stop in reverse order when its context ends.
type Main struct {
	Config Config
	Log    *slog.Logger
	Stdout io.Writer
	// OnWindow, when set, sees every closed window after the graph does
	// (on the graph's goroutine). Tests use it to wait without sleeping.
	OnWindow func(*graph.Window)
	// Getenv reads the API token and the secrets of alert receivers; nil:
	// os.Getenv.
	Getenv func(string) string
	// FS is where checkpoints and the alert outbox are written; nil: the
	// real file system. Tests give it a disk that fails or is slow.
	FS statefs.FS
	// LookupHost resolves a host name in Config.Listen to check it is
	// loopback only when no API token is set; nil: the system resolver.
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)

	reg       *prometheus.Registry
	agg       *graph.Aggregator
	bs        *graph.Baselines
	incidents *incident.Manager
	notifier  *alert.Notifier // nil without receivers
	node      *fleet.Node     // cluster mode only
	ready     atomic.Bool
	initOnce  sync.Once
	addr      chan string // holds the API address once bound
}

// Addr blocks until the API listener is bound and returns its address, or
// returns "" when ctx ends first.
func (m *Main) Addr(ctx context.Context) string {
	m.initOnce.Do(m.init)
	select {
	case a := <-m.addr:
		m.addr <- a // let later callers see it too
		return a
	case <-ctx.Done():
		return ""
	}
}

// Graph returns the live service graph; nil before Run has started it.
func (m *Main) Graph() *graph.Aggregator { return m.agg }

func (m *Main) init() {
	if m.Log == nil {
		m.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	if m.Getenv == nil {
		m.Getenv = os.Getenv
	}
	m.addr = make(chan string, 1)
}

// Run starts the detector and blocks until ctx ends or a part fails.
func (m *Main) Run(ctx context.Context) error {
	m.initOnce.Do(m.init)
	cfg := m.Config
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := cfg.API.Token.Resolve(m.Getenv); err != nil {
		return fmt.Errorf("api.token: %w", err)
	}
	lookup := m.LookupHost
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if err := requireToken(ctx, cfg.Listen, cfg.API.Token.IsSet(), lookup); err != nil {
		return err
	}
	if err := cfg.Alerts.Resolve(m.Getenv); err != nil {
		return err
	}
	// The HTTP server is built first, so a bad key pair stops the
	// detector before anything starts; the handler is set once the
	// sources exist.
	srv, err := cfg.API.server(nil)
	if err != nil {
		return err
	}
	scheme := cfg.API.scheme()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if cfg.Embedded() {
		// The simulator delivers spans promptly (no SDK or Collector
		// batching delays), so the demo can close windows sooner.
		if cfg.Graph.TraceIdle == 0 {
			cfg.Graph.TraceIdle = 5 * time.Second
		}
		if cfg.Graph.Lateness == 0 {
			cfg.Graph.Lateness = 2 * time.Second
		}
	}
	if cfg.StateDir != "" {
		unlock, err := lockStateDir(cfg.StateDir)
		if err != nil {
			return err
		}
		defer unlock()
	}
	m.reg = prometheus.NewRegistry()
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cm := consume.NewMetrics(m.reg)
	// In cluster mode, baselines and incidents are re-derived from the
	// fleet's window summaries at start, not restored from the state dir.
	keepState := cfg.StateDir != "" && !cfg.Cluster.Enabled
	var store *incident.Store
	if keepState {
		store = &incident.Store{Path: filepath.Join(cfg.StateDir, incidentFile), FS: m.FS}
	}
	storeErrs := prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_incident_store_errors_total",
		Help: "Writes of incidents.json that failed (the checkpoint still holds the incidents when it can be written)."})
	m.reg.MustRegister(storeErrs)
	storeLog := &statefs.FaultLog{Log: m.Log, What: "write " + incidentFile}
	gcfg := withWorkers(cfg.Graph)
	if cfg.Cluster.Enabled {
		gcfg.Workers = 1 // the fleet node's workers feed it windows, not spans
	}
	p, err := detect.New(detect.Options{
		Graph: gcfg, GraphMetrics: graph.NewMetrics(m.reg), BaselineMetrics: graph.NewBaselineMetrics(m.reg),
		Incidents: incident.Options{Store: store},
		OnWindow: func(w *graph.Window, fs []graph.Finding, changes []incident.Change, err error) {
			logFindings(m.Log, fs)
			switch {
			case err != nil:
				storeErrs.Inc()
				storeLog.Failed(err)
			case len(changes) > 0 && store != nil:
				storeLog.Succeeded()
			}
			logChanges(m.Log, changes)
			if m.notifier != nil {
				m.notifier.Observe(w.End, changes)
			}
			if m.OnWindow != nil {
				m.OnWindow(w)
			}
		},
	})
	if err != nil {
		return err
	}
	defer p.Close()
	m.agg, m.bs, m.incidents = p.Graph, p.Baselines, p.Incidents

	var afterStop []func() // run once every goroutine below has returned
	defer func() {
		for _, f := range afterStop {
			f()
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait() // every goroutine below is stopped by cancel
	errc := make(chan error, 4)
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}

	// The API's address first: a busy port fails the start before anything
	// else (the demo's broker, its fault schedule) begins.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (another detector running? --listen or CAUSEWAY_LISTEN picks another address)", cfg.Listen, err)
	}
	defer ln.Close() // the server closes it too; this covers the returns before it serves

	idle := cfg.Idle
	kcfg := cfg.Kafka
	if cfg.Embedded() {
		demo, err := startDemo(ctx, cfg.Demo, m.Log, m.reg)
		if err != nil {
			return err
		}
		defer demo.Close()
		kcfg = demo.kafkaConfig()
		// The simulator never goes quiet, and its history arrives all at
		// once: event time alone closes windows. Sped up, simulated time
		// runs ahead of the wall clock.
		idle = 0
		if cfg.Demo.Speed != 1 {
			kcfg.MaxClockSkew = 100 * 365 * 24 * time.Hour
		}
		goRun("simulator", demo.Run)
	}
	if !cfg.Embedded() {
		// Settings the brokers refuse (TLS, SASL) are fatal at start, named
		// by their field; brokers that are down are not: the client retries.
		switch err := kcfg.Check(ctx); {
		case err == nil:
		case errors.As(err, new(*consume.RejectedError)):
			return err
		default:
			m.Log.Warn("kafka brokers not reachable yet; retrying in the background", "err", err)
		}
		switch warning, err := kcfg.CheckDeadLetter(ctx); {
		case err != nil:
			m.Log.Warn("cannot read the dead-letter topic's settings", "err", err)
		case warning != "":
			m.Log.Warn(warning)
		}
	}
	var (
		cons     *consume.Consumer
		graphSrc api.GraphSource = m.agg
		ready                    = func() error { return nil }
	)
	if cfg.Cluster.Enabled {
		view := graph.NewView()
		graphSrc = view
		m.node, err = fleet.New(cfg.Cluster, fleet.Options{Kafka: kcfg, Graph: cfg.Graph, Idle: idle, Log: m.Log,
			DecodeMetrics: cm, Registerer: m.reg,
			OnWindow: func(w *graph.Window) {
				view.Add(w)
				p.Window(w)
			},
			OnLeader: func(on bool) {
				if m.notifier != nil {
					m.notifier.SetActive(on)
				}
			},
			OnAcknowledged: func(receiver, id string) {
				if m.notifier != nil {
					m.notifier.Acknowledge(receiver, id)
				}
			}})
		if err != nil {
			return err
		}
		ready = m.node.Ready
	} else {
		cons, err = consume.New(kcfg, m.Log, cm, nil)
		if err != nil {
			return err
		}
		defer cons.Close()
	}
	var ck *pipeline.Checkpointer // keeps the state; nil without a state dir, and in cluster mode
	if keepState && cons != nil {
		ck = pipeline.NewCheckpointer(cfg.StateDir, m.FS, pipeline.State{Graph: m.agg, Baselines: m.bs, Incidents: m.incidents}, kcfg, m.reg, m.Log)
		// The demo's in-process broker starts empty each time: its
		// offsets and event time mean nothing to the next run.
		if !ck.Restore(!cfg.Embedded()) {
			pipeline.RestoreBaselines(m.bs, filepath.Join(cfg.StateDir, pipeline.BaselineFile), m.Log)
		}
	}

	if len(cfg.Alerts.Receivers) > 0 {
		removeOutbox, err := m.startAlerts(cfg, scheme+"://"+ln.Addr().String())
		if err != nil {
			ln.Close()
			return err
		}
		afterStop = append(afterStop, removeOutbox)
		goRun("alerts", m.notifier.Run)
		if ck != nil {
			ck.Durable = m.notifier.Sync
		}
	}
	var alerts api.AlertSource
	if m.notifier != nil {
		alerts = m.notifier
	}
	srv.Handler = api.Handler(api.Options{Graph: graphSrc, Baselines: m.bs, Incidents: m.incidents, Alerts: alerts, Gatherer: m.reg, Log: m.Log, Pprof: cfg.Pprof,
		Token: cfg.API.Token.Value(), MaxBodyBytes: cfg.API.MaxBodyBytes, Metrics: api.NewMetrics(m.reg),
		Ready: func() error {
			if !m.ready.Load() {
				return errors.New("starting")
			}
			return ready()
		}})
	srv.ErrorLog = slog.NewLogLogger(m.Log.Handler(), slog.LevelDebug) // TLS handshake errors of scanners
	wg.Add(1)
	go func() {
		defer wg.Done()
		serve := srv.Serve
		if srv.TLSConfig != nil {
			serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
			cancel()
		}
	}()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	}()
	m.addr <- ln.Addr().String()

	if m.node != nil {
		goRun("fleet", m.node.Run)
	} else {
		goRun("consumer", cons.Run)
	}
	m.ready.Store(true)
	m.Log.Info("detector running", "api", scheme+"://"+ln.Addr().String(), "api_auth", cfg.API.Token.IsSet(), "brokers", kcfg.Brokers,
		"topic", kcfg.WithDefaults().Topic, "group", kcfg.WithDefaults().GroupID, "embedded_demo", cfg.Embedded(), "cluster", cfg.Cluster.Enabled)
	if cfg.Embedded() {
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
		fmt.Fprintf(m.Stdout, "\nCauseway is running the embedded demo: simulated services write spans to an in-process Kafka broker.\n"+
			"  service graph:  %[3]s %[4]s://%[1]s/api/v1/graph\n"+
			"  incidents:      %[3]s %[4]s://%[1]s/api/v1/incidents\n"+
			"  metrics:        %[3]s %[4]s://%[1]s/metrics\n"+
			"The first window closes within %[2]v of start; a fault starts later (see the log).\n\n",
			ln.Addr(), m.agg.Config().Window+m.agg.Config().TraceIdle+m.agg.Config().Lateness, curl, scheme)
	}

	stopping := func() {
		if ctx.Err() != nil { // a signal, or a part that failed (its error follows)
			m.Log.Info("detector stopping", "cause", context.Cause(ctx))
		}
	}
	if cons != nil {
		// This goroutine is the graph's; with a checkpointer the driver
		// writes a last checkpoint before it returns.
		d := pipeline.NewDriver(pipeline.Options{Source: cons, Graph: m.agg, Idle: idle, Log: m.Log,
			Checkpoint: ck, CheckpointEvery: cfg.SnapshotInterval})
		err = d.Run(ctx)
		stopping()
	} else {
		<-ctx.Done() // the fleet node's goroutines do the work
		stopping()
	}
	cancel()
	select {
	case e := <-errc:
		err = errors.Join(err, e)
	default:
	}
	return err
}

// startAlerts opens the alert outbox (in the state directory, or a
// temporary one that does not outlive the process) and queues what a
// crash kept from being sent. The returned func removes a temporary
// outbox.
func (m *Main) startAlerts(cfg Config, apiURL string) (func(), error) {
	stop := func() {}
	dir := filepath.Join(cfg.StateDir, "alerts")
	if cfg.StateDir == "" {
		tmp, err := os.MkdirTemp("", "causeway-alerts-")
		if err != nil {
			return stop, fmt.Errorf("alerts: %w", err)
		}
		dir, stop = tmp, func() { os.RemoveAll(tmp) }
		m.Log.Warn("alert outbox is in a temporary directory: undelivered events do not survive a restart without --state-dir", "dir", tmp)
	}
	ac := cfg.Alerts
	if ac.ExternalURL == "" {
		ac.ExternalURL = apiURL
	}
	opt := alert.Options{Dir: dir, Incidents: m.incidents, Log: m.Log, Registerer: m.reg, FS: m.FS}
	if m.node != nil {
		// Every member computes the events; the leader sends them and
		// records each delivery for the others.
		opt.Standby, opt.OnDelivered = true, m.node.Acknowledge
	}
	n, err := alert.New(ac, opt)
	if err != nil {
		stop()
		return func() {}, err
	}
	n.Reconcile(m.incidents.List("", time.Time{}, time.Time{}))
	m.notifier = n
	for _, r := range n.Status() {
		m.Log.Info("alert receiver", "name", r.Name, "kind", r.Kind, "url", r.URL, "pending", r.Pending)
	}
	return stop, nil
}

// withWorkers gives g one graph worker per CPU unless it names a number.
func withWorkers(g graph.Config) graph.Config {
	if g.Workers == 0 {
		g.Workers = runtime.GOMAXPROCS(0)
	}
	return g
}

// incidentFile, in the state directory, holds the incidents alone.
const incidentFile = "incidents.json"

// logChanges logs incidents as they open, change their top suspect, and
// resolve.
func logChanges(log *slog.Logger, changes []incident.Change) {
	for _, c := range changes {
		attrs := []any{"id", c.Incident.ID, "services", c.Incident.Services}
		if len(c.Incident.Suspects) > 0 {
			top := c.Incident.Suspects[0]
			attrs = append(attrs, "top_suspect", top.Service, "kind", top.Kind, "why", top.Summary)
		}
		log.Info("incident "+string(c.Kind), attrs...)
	}
}

// logFindings logs the episodes that opened or closed in a window.
func logFindings(log *slog.Logger, fs []graph.Finding) {
	for _, f := range fs {
		if !f.Score.Opened && !f.Score.Closed {
			continue
		}
		what := "edge"
		name := ""
		if f.Edge != nil {
			name = f.Edge.String()
		} else {
			what, name = "operation", f.Op.Service+"/"+f.Op.Operation
		}
		// Debug: an incident's line names what matters; its series are in
		// the API.
		if f.Score.Opened {
			log.Debug("anomaly opened", what, name, "score", fmt.Sprintf("%.1f", f.Score.Value), "why", f.Score.Explanation)
		} else {
			log.Debug("anomaly closed", what, name)
		}
	}
}
