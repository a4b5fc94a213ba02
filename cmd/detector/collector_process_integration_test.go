//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// collectorBinary returns the Collector scripts/collector.sh built. A
// missing Collector fails the test: this is the only test of the real
// producer, and skipping it would hide a broken build.
func collectorBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("OTELCOL_BIN")
	if bin == "" {
		if msg := os.Getenv("OTELCOL_BUILD_ERROR"); msg != "" {
			t.Fatalf("the OpenTelemetry Collector could not be built: %s", msg)
		}
		t.Fatal("OTELCOL_BIN is not set: run these tests through scripts/integration.sh, which builds the Collector with scripts/collector.sh build")
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("OTELCOL_BIN=%s is not an executable: %v", bin, err)
	}
	return bin
}

// collectorConfig is a Collector pipeline from OTLP/gRPC on addr to topic.
// The Collector's own metrics are off: their default listener is not on
// loopback, and nothing here reads them.
func collectorConfig(addr string, brokers []string, topic string, byID bool) string {
	return fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
processors:
  batch:
    timeout: 200ms
    send_batch_size: 2000
exporters:
  kafka:
    brokers: [%s]
    traces:
      topic: %s
      encoding: otlp_proto
    partition_traces_by_id: %t
service:
  telemetry:
    logs:
      level: info
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [kafka]
`, addr, strings.Join(brokers, ", "), topic, byID)
}

// startCollector runs the Collector with config until the test ends, and
// returns once its OTLP/gRPC receiver at addr accepts exports. Its log is
// printed if the test fails.
func startCollector(t *testing.T, bin, addr, config string) {
	t.Helper()
	dir := t.TempDir()
	confPath := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(confPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "collector.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", confPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start collector: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		// SIGTERM lets it flush what it holds; a hung one is killed.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("collector ignored SIGTERM for 15s and was killed")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("collector config:\n%s\ncollector log (%s):\n%s", config, logPath, b)
		}
	})

	// Ready when an empty export goes through the pipeline.
	conn := dialOTLP(t, addr)
	client := coltracepb.NewTraceServiceClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Export(ctx, &coltracepb.ExportTraceServiceRequest{})
		cancel()
		if err == nil {
			return
		}
		select {
		case werr := <-exited:
			exited <- werr // for the cleanup
			t.Fatalf("collector exited during start-up: %v", werr)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector did not accept OTLP on %s within 30s: %v", addr, err)
		}
	}
}

func dialOTLP(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
