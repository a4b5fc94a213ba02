//go:build integration

package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/wait"
)

// TestIntegrationSimulateThroughCollector: `detector simulate` feeds a
// real OpenTelemetry Collector (built by scripts/collector.sh) over
// OTLP/gRPC and over OTLP/HTTP; its kafka exporter writes to a real
// broker, and a detector reading that topic sees the simulated services'
// calls.
func TestIntegrationSimulateThroughCollector(t *testing.T) {
	bin := collectorBinary(t)
	bs := brokers(t)
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			topic := "it_simulate_" + proto + "_" + strconv.FormatInt(time.Now().UnixNano(), 36)
			createTopic(t, bs, topic, 3)
			addr, httpAddr := freeAddr(t), freeAddr(t)
			config := strings.Replace(collectorConfig(addr, bs, topic, true), "      grpc:\n",
				fmt.Sprintf("      http:\n        endpoint: %s\n      grpc:\n", httpAddr), 1)
			startCollector(t, bin, addr, config)

			m, apiAddr, stop := startMain(t, topicDetectorConfig(bs, topic))
			defer stop()

			endpoint := addr
			if proto == "http" {
				endpoint = "http://" + httpAddr
			}
			a, err := parseSimulateFlags([]string{"--otlp-endpoint", endpoint, "--history", "40s", "--duration", "3s", "--rate", "20"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := simulate(ctx, a, quietLogger(t)); err != nil {
				t.Fatal(err)
			}
			want := []string{"checkoutservice->paymentservice", "frontend->cartservice", "frontend->checkoutservice", "frontend->productcatalogservice"}
			var got []string
			wait.For(t, time.Minute, 250*time.Millisecond, "the simulated calls in the detector's graph", func() bool {
				got = edgeSet(m.agg.Snapshot())
				for _, e := range want {
					if !slices.Contains(got, e) {
						return false
					}
				}
				return scrape(t, apiAddr, "causeway_spans_total") > 3000
			})
			t.Logf("%v spans, edges %v", scrape(t, apiAddr, "causeway_spans_total"), fmt.Sprint(len(got)))
		})
	}
}
