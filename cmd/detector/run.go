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
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/dustin/go-humanize"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/fleet"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/pipeline"
	"github.com/causeway/causeway/statefs"
)

// Main is the running detector: consumer, graph, HTTP API and, in the
// embedded demo, an in-process broker and the simulator. Run starts the
// parts and blocks; they stop in reverse order when its context ends.
//
// cmd/detector is wiring: the stream itself is driven by pipeline.Driver
// (docs/how-a-span-travels.md).
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
	bs        *baselines.Baselines
	incidents *incident.Manager
	notifier  *alert.Notifier // nil without receivers
	node      *fleet.Node     // cluster mode only
	budget    memoryBudget
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
	if cfg.CPUProfile != "" {
		stop, err := startCPUProfile("run: --cpuprofile", cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	srv, err := m.prepare(ctx, &cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.StateDir != "" {
		unlock, err := lockStateDir(cfg.StateDir)
		if err != nil {
			return err
		}
		defer unlock()
	}
	m.reg = prometheus.NewRegistry()
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "causeway_memory_budget_bytes",
			Help: "The memory budget (memory_budget) the graph's caps derive from; the Go runtime's soft memory limit unless GOMEMLIMIT is set."},
			func() float64 { return float64(m.budget.bytes) }))
	det, err := m.newDetection(cfg)
	if err != nil {
		return err
	}
	defer det.Close()

	var afterStop []func() // run once every goroutine below has returned
	defer func() {
		for _, f := range afterStop {
			f()
		}
	}()
	parts := newGroup(ctx, cancel)
	defer parts.wait() // every goroutine of the group is stopped by cancel

	// The API's address first: a busy port fails the start before anything
	// else (the demo's broker, its fault schedule) begins.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (another detector running? --listen or CAUSEWAY_LISTEN picks another address)", cfg.Listen, err)
	}
	defer ln.Close() // the server closes it too; this covers the returns before it serves

	in, err := m.openInput(ctx, cfg, det, parts)
	if err != nil {
		return err
	}
	defer in.Close()
	if len(cfg.Alerts.Receivers) > 0 {
		removeOutbox, err := m.startAlerts(cfg, cfg.API.scheme()+"://"+ln.Addr().String())
		if err != nil {
			return err
		}
		afterStop = append(afterStop, removeOutbox)
		parts.run("alerts", m.notifier.Run)
		if in.ck != nil {
			in.ck.Durable = m.notifier.Sync
		}
	}
	stopServing := m.serve(cfg, srv, ln, in, parts)
	defer stopServing()
	m.addr <- ln.Addr().String()

	if m.node != nil {
		parts.run("fleet", m.node.Run)
	} else {
		parts.run("consumer", in.cons.Run)
	}
	m.ready.Store(true)
	m.announce(cfg, in, ln.Addr())

	stopping := func() {
		if ctx.Err() != nil { // a signal, or a part that failed (its error follows)
			m.Log.Info("detector stopping", "cause", context.Cause(ctx))
		}
	}
	if in.cons != nil {
		// This goroutine is the graph's; with a checkpointer the driver
		// writes a last checkpoint before it returns.
		d := pipeline.NewDriver(pipeline.Options{Source: in.cons, Graph: m.agg, Idle: in.idle, Log: m.Log,
			Checkpoint: in.ck, CheckpointEvery: cfg.SnapshotInterval})
		err = d.Run(ctx)
		stopping()
	} else {
		<-ctx.Done() // the fleet node's goroutines do the work
		stopping()
	}
	cancel()
	return errors.Join(err, parts.err())
}

// prepare checks what must hold before anything starts (the
// configuration, the API token, alert secrets, the TLS key pair) and
// returns the API server without its handler. The embedded demo's graph
// settings are filled in cfg.
func (m *Main) prepare(ctx context.Context, cfg *Config) (*http.Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.API.Token.Resolve(m.Getenv); err != nil {
		return nil, fmt.Errorf("api.token: %w", err)
	}
	lookup := m.LookupHost
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if err := requireToken(ctx, cfg.Listen, cfg.API.Token.IsSet(), lookup); err != nil {
		return nil, err
	}
	if err := cfg.Alerts.Resolve(m.Getenv); err != nil {
		return nil, err
	}
	// The HTTP server is built first, so a bad key pair stops the
	// detector before anything starts; the handler is set once the
	// sources exist.
	srv, err := cfg.API.server(nil)
	if err != nil {
		return nil, err
	}
	budget, err := resolveBudget(cfg.MemoryBudget, m.Getenv("GOMEMLIMIT"), memlimit.FromCgroup)
	if err != nil {
		return nil, err
	}
	m.budget = budget
	cfg.Graph = cfg.Graph.WithBudget(budget.bytes)
	if budget.setRuntime {
		debug.SetMemoryLimit(budget.bytes)
	}
	m.Log.Info("memory budget", "bytes", budget.bytes, "budget", humanize.IBytes(uint64(budget.bytes)), "from", budget.source,
		"max_pending_bytes", cfg.Graph.MaxPendingBytes, "max_pending_spans", cfg.Graph.MaxPendingSpans, "max_edges", cfg.Graph.MaxEdges, "max_operations", cfg.Graph.MaxOperations)
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
	return srv, nil
}
