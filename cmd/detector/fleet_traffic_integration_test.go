//go:build integration

package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/sim"
)

// produce sends simulated traffic with a fault through a real
// OpenTelemetry Collector (OTLP/gRPC in, kafka exporter out, with or without
// partition_traces_by_id) to topic: the history at once, then live at
// speed, until ctx ends.
func produce(ctx context.Context, t *testing.T, brokers []string, topic string, byID bool, history time.Duration, speed float64, fault string) {
	t.Helper()
	addr := freeAddr(t)
	startCollector(t, collectorBinary(t), addr, collectorConfig(addr, brokers, topic, byID))
	client := coltracepb.NewTraceServiceClient(dialOTLP(t, addr))
	cfg := sim.Default()
	cfg.Seed, cfg.ByTrace, cfg.Start = 5, false, time.Now().Add(-history) // batches, as SDKs export them
	f, err := sim.ParseFault(fault)
	if err != nil {
		t.Fatal(err)
	}
	f.Start += history
	cfg.Faults = []sim.Fault{f}
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(ctx context.Context, msgs []sim.Message) error {
		for _, m := range msgs {
			var req coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(m.Value, &req); err != nil {
				return err
			}
			if _, err := client.Export(ctx, &req); err != nil && ctx.Err() == nil {
				return fmt.Errorf("export to the collector: %w", err)
			}
		}
		return nil
	}
	for sent := time.Duration(0); sent < history; sent += 30 * time.Second {
		if err := publish(ctx, s.Messages(30*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		if err := s.Run(ctx, speed, publish); err != nil && ctx.Err() == nil {
			t.Errorf("producer: %v", err)
		}
	}()
}
