package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// traceReceiver is an OTLP/gRPC trace receiver counting what it is sent;
// it refuses the first refuse exports.
type traceReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    map[string]int // by service
	requests int
	refuse   int
}

func (r *traceReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.requests <= r.refuse {
		return nil, status.Error(codes.Unavailable, "busy")
	}
	for _, rs := range req.ResourceSpans {
		svc := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				svc = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			r.spans[svc] += len(ss.Spans)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func startReceiver(t *testing.T, refuse int) (*traceReceiver, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &traceReceiver{spans: map[string]int{}, refuse: refuse}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return r, ln.Addr().String()
}

// TestSimulateExportsOTLP: `detector simulate` sends its history and then
// live traffic of every simulated service over OTLP/gRPC; a refused export
// is skipped, the rest go on.
func TestSimulateExportsOTLP(t *testing.T) {
	r, addr := startReceiver(t, 1)
	a, err := parseSimulateFlags([]string{"--otlp-endpoint", addr, "--history", "30s", "--duration", "2s", "--rate", "20",
		"--fault", "errors:cartservice:30%@0s"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := simulate(ctx, a, quietLogger(t)); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, svc := range []string{"frontend", "checkoutservice", "cartservice", "paymentservice"} {
		if r.spans[svc] == 0 {
			t.Errorf("no spans of %s received (%v)", svc, r.spans)
		}
	}
	// 32 s at 20 requests/s: several hundred traces, far more spans.
	total := 0
	for _, n := range r.spans {
		total += n
	}
	if total < 3000 || r.requests < 3 {
		t.Errorf("%d spans in %d exports", total, r.requests)
	}
}

// TestSimulateFlagsAndUnreachable: flags are checked; a receiver that never
// answers makes the command fail, naming it.
func TestSimulateFlagsAndUnreachable(t *testing.T) {
	for _, args := range [][]string{{}, {"--otlp-endpoint", "nohostport"}, {"--otlp-endpoint", "127.0.0.1:4317", "--speed", "0"}} {
		if _, err := parseSimulateFlags(args); err == nil {
			t.Errorf("simulate %v accepted", args)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	a, err := parseSimulateFlags([]string{"--otlp-endpoint", addr, "--history", "5s", "--duration", "1s", "--rate", "5"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := simulate(ctx, a, quietLogger(t)); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("simulate to nothing: %v", err)
	}
}
