//go:build integration

package main

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/wait"
)

// TestIntegrationShippedCollectorConfig: the Collector scripts/collector.sh
// builds starts with the configuration the deployment ships
// (deploy/collector/collector.yaml: memory limiter, batch, kafka exporter,
// health check, its own metrics), with only its addresses moved to
// loopback and the test broker; its health check answers, and the spans
// the simulator sends it reach a detector through Kafka.
func TestIntegrationShippedCollectorConfig(t *testing.T) {
	bin := collectorBinary(t)
	bs := brokers(t)
	b, err := os.ReadFile("../../deploy/collector/collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topic := "it_shipped_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	createTopic(t, bs, topic, 3)
	grpcAddr, httpAddr, health, metrics := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	_, metricsPort, _ := strings.Cut(metrics, ":")
	config := strings.NewReplacer(
		"0.0.0.0:4317", grpcAddr,
		"0.0.0.0:4318", httpAddr,
		"0.0.0.0:13133", health,
		"host: 0.0.0.0", "host: 127.0.0.1",
		"port: 8888", "port: "+metricsPort,
		"[kafka:9092]", "["+strings.Join(bs, ", ")+"]",
		"topic: otlp_spans", "topic: "+topic,
	).Replace(string(b))
	for _, left := range []string{"0.0.0.0", "kafka:9092", "topic: otlp_spans"} {
		if strings.Contains(config, left) {
			t.Fatalf("the shipped config changed: %q is left after moving it to loopback:\n%s", left, config)
		}
	}
	startCollector(t, bin, grpcAddr, config)
	wait.For(t, 30*time.Second, 200*time.Millisecond, "the health check", func() bool {
		resp, err := http.Get("http://" + health + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	_, apiAddr, stop := startMain(t, topicDetectorConfig(bs, topic))
	defer stop()
	a, err := parseSimulateFlags([]string{"--otlp-endpoint", grpcAddr, "--history", "20s", "--duration", "2s", "--rate", "20"})
	if err != nil {
		t.Fatal(err)
	}
	if err := simulate(t.Context(), a, quietLogger(t)); err != nil {
		t.Fatal(err)
	}
	wait.For(t, time.Minute, 250*time.Millisecond, "the simulated spans in the detector", func() bool {
		return scrape(t, apiAddr, "causeway_spans_total") > 1000
	})
}
