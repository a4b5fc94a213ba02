package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
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
	fs.StringVar(&a.endpoint, "otlp-endpoint", "", "`HOST:PORT` of an OTLP/gRPC receiver, e.g. a Collector's otlp receiver at 127.0.0.1:4317 (plaintext)")
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
	if _, _, err := net.SplitHostPort(a.endpoint); err != nil {
		return a, fmt.Errorf("simulate: --otlp-endpoint %q: %w", a.endpoint, err)
	}
	return a, nil
}

// simulate sends the simulator's traffic, faults included, to an OTLP/gRPC
// receiver, so the whole stack can be tried: an OpenTelemetry Collector,
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
	conn, err := grpc.NewClient(a.endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	defer conn.Close()
	client := coltracepb.NewTraceServiceClient(conn)

	var exported, failed int
	publish := func(ctx context.Context, msgs []sim.Message) error {
		for _, m := range msgs {
			var req coltracepb.ExportTraceServiceRequest // the message sim encodes
			if err := proto.Unmarshal(m.Value, &req); err != nil {
				return fmt.Errorf("simulate: %w", err)
			}
			ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := client.Export(ectx, &req)
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
