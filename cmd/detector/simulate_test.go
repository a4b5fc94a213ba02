package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
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

// TestSimulateExportsOTLPHTTP: with an http:// URL, `detector simulate`
// posts protobuf exports to the receiver's /v1/traces, as OTLP/HTTP
// exporters do; a refused export (503 with a google.rpc.Status) is
// skipped, the rest go on.
func TestSimulateExportsOTLPHTTP(t *testing.T) {
	r := &traceReceiver{spans: map[string]int{}, refuse: 1}
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		paths = append(paths, req.Method+" "+req.URL.Path+" "+req.Header.Get("Content-Type"))
		r.mu.Unlock()
		body, err := io.ReadAll(req.Body)
		var exp coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &exp)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := r.Export(req.Context(), &exp); err != nil {
			b, _ := proto.Marshal(status.Convert(err).Proto())
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write(b)
			return
		}
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	}))
	defer srv.Close()
	a, err := parseSimulateFlags([]string{"--otlp-endpoint", srv.URL, "--history", "30s", "--duration", "1s", "--rate", "20"})
	if err != nil {
		t.Fatal(err)
	}
	if want := srv.URL + "/v1/traces"; a.endpoint != want {
		t.Errorf("endpoint %q, want %q", a.endpoint, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs strings.Builder
	if err := simulate(ctx, a, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "busy") {
		t.Errorf("the refused export's reason is not logged:\n%s", logs.String())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range paths {
		if p != "POST /v1/traces application/x-protobuf" {
			t.Fatalf("request %q, want POST /v1/traces application/x-protobuf", p)
		}
	}
	total := 0
	for _, n := range r.spans {
		total += n
	}
	if r.spans["paymentservice"] == 0 || total < 3000 || r.requests < 3 {
		t.Errorf("%d spans in %d exports (%v)", total, r.requests, r.spans)
	}
}

// TestSimulateHTTPEndpointPaths: a base URL gets the traces path, a URL
// with a path is used as given, and a URL without a host is refused.
func TestSimulateHTTPEndpointPaths(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":             "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":            "http://127.0.0.1:4318/v1/traces",
		"https://otel.example:443/custom/x": "https://otel.example:443/custom/x",
	} {
		a, err := parseSimulateFlags([]string{"--otlp-endpoint", in})
		if err != nil || a.endpoint != want {
			t.Errorf("%s: %q, %v; want %q", in, a.endpoint, err, want)
		}
	}
	if _, err := parseSimulateFlags([]string{"--otlp-endpoint", "http:///v1/traces"}); err == nil {
		t.Error("a URL without a host was accepted")
	}
}
