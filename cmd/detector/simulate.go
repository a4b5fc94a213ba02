package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/sim"
)

// simulateArgs are the flags of `detector simulate`.
type simulateArgs struct {
	endpoint string
	faults   []string
	seed     int64
	rate     float64
	history  time.Duration
	duration time.Duration
	speed    float64
}

func parseSimulateFlags(args []string) (simulateArgs, error) {
	a := simulateArgs{seed: 1, speed: 1}
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.StringVar(&a.endpoint, "otlp-endpoint", "", "OTLP receiver: `HOST:PORT` for OTLP/gRPC (plaintext), e.g. a Collector's otlp receiver at 127.0.0.1:4317, or an http:// or https:// URL for OTLP/HTTP protobuf, e.g. http://127.0.0.1:4318 (/v1/traces is added to a URL without a path)")
	fs.Var(listFlag{&a.faults}, "fault", "fault to inject (repeatable), as for detector run (see detector run -h); default the demo's, latency:paymentservice:+200ms@40s/3m")
	fs.Int64Var(&a.seed, "seed", a.seed, "simulator seed")
	fs.Float64Var(&a.rate, "rate", 0, "user requests per simulated second (default 50, about 900 spans/s)")
	fs.DurationVar(&a.history, "history", 0, "normal traffic sent at once first, ending now, so a detector's baselines know normal (e.g. 20m)")
	fs.DurationVar(&a.duration, "duration", 0, "stop after this long (default: until interrupted)")
	fs.Float64Var(&a.speed, "speed", a.speed, "simulated seconds per second")
	if err := fs.Parse(args); err != nil {
		return a, err
	}
	switch {
	case a.endpoint == "":
		return a, errors.New("simulate: --otlp-endpoint is required")
	case a.rate < 0 || a.history < 0 || a.duration < 0 || !(a.speed > 0):
		return a, errors.New("simulate: --rate, --history and --duration must not be negative, --speed must be positive")
	}
	if strings.HasPrefix(a.endpoint, "http://") || strings.HasPrefix(a.endpoint, "https://") {
		u, err := url.Parse(a.endpoint)
		if err != nil || u.Host == "" {
			return a, fmt.Errorf("simulate: --otlp-endpoint %q: not a URL with a host", a.endpoint)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces" // the signal's path under a base URL, as OTLP exporters add it
		}
		a.endpoint = u.String()
		return a, nil
	}
	if _, _, err := net.SplitHostPort(a.endpoint); err != nil {
		return a, fmt.Errorf("simulate: --otlp-endpoint %q: want HOST:PORT (OTLP/gRPC) or an http:// URL (OTLP/HTTP): %w", a.endpoint, err)
	}
	return a, nil
}

// exporter sends one OTLP trace export request, encoded as protobuf.
type exporter interface {
	export(ctx context.Context, req []byte) error
	close() error
}

// newExporter returns the exporter for endpoint: OTLP/HTTP for a URL,
// OTLP/gRPC for HOST:PORT.
func newExporter(endpoint string) (exporter, error) {
	if strings.Contains(endpoint, "://") {
		return &httpExporter{url: endpoint, client: &http.Client{}}, nil
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &grpcExporter{conn: conn, client: coltracepb.NewTraceServiceClient(conn)}, nil
}

type grpcExporter struct {
	conn   *grpc.ClientConn
	client coltracepb.TraceServiceClient
}

func (g *grpcExporter) export(ctx context.Context, b []byte) error {
	var req coltracepb.ExportTraceServiceRequest // the message sim encodes
	if err := proto.Unmarshal(b, &req); err != nil {
		return err
	}
	_, err := g.client.Export(ctx, &req)
	return err
}

func (g *grpcExporter) close() error { return g.conn.Close() }

// httpExporter posts requests to an OTLP/HTTP receiver's traces path in
// the binary protobuf encoding (the one every receiver accepts).
type httpExporter struct {
	url    string
	client *http.Client
}

func (h *httpExporter) export(ctx context.Context, b []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, httpErrorMessage(body))
	}
	return nil
}

func (h *httpExporter) close() error {
	h.client.CloseIdleConnections()
	return nil
}

// httpErrorMessage is the message of an OTLP/HTTP error response (a
// google.rpc.Status in protobuf), or the body as text when it is not one.
func httpErrorMessage(body []byte) string {
	var st spb.Status
	if proto.Unmarshal(body, &st) == nil && st.Message != "" {
		return st.Message
	}
	return strings.TrimSpace(string(body))
}

// simulate sends the simulator's traffic, faults included, to an OTLP
// receiver (gRPC or HTTP), so the whole stack can be tried: an OpenTelemetry Collector,
// its kafka exporter, Kafka, and detectors reading it. Each export is one
// batch of whole traces; a failed export is counted, logged once and
// skipped, as a Collector's client would lose it.
func simulate(ctx context.Context, a simulateArgs, log *slog.Logger) error {
	cfg, err := simConfig(a.seed, a.history, a.faults, log, "simulated fault scheduled")
	if err != nil {
		return fmt.Errorf("simulate: --fault: %w", err)
	}
	cfg.Rate, cfg.ByTrace = a.rate, false // batches of many traces: fewer exports
	s, err := sim.New(cfg)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	exp, err := newExporter(a.endpoint)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	defer exp.close()

	var exported, failed int
	publish := func(ctx context.Context, msgs []sim.Message) error {
		for _, m := range msgs {
			ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := exp.export(ectx, m.Value)
			cancel()
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				if failed++; failed == 1 {
					log.Warn("export to the OTLP receiver failed; skipping the batch and going on", "endpoint", a.endpoint, "err", err)
				}
			default:
				exported++
			}
		}
		return nil
	}
	log.Info("simulating", "endpoint", a.endpoint, "history", a.history, "rate", cfg.Rate, "speed", a.speed)
	if err := catchUp(ctx, s, publish); err != nil {
		return err
	}
	if a.duration > 0 { // live traffic from here on
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.duration)
		defer cancel()
	}
	err = s.Run(ctx, a.speed, publish)
	log.Info("simulation stopped", "exports", exported, "failed_exports", failed)
	if exported == 0 && failed > 0 {
		return fmt.Errorf("simulate: none of %d exports reached %s", failed, a.endpoint)
	}
	return err
}
