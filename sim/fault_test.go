package sim

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/span"
)

// TestFaults runs the same seed with and without each fault and checks that
// the fault changes what it should and leaves the rest alone.
func TestFaults(t *testing.T) {
	const d = 40 * time.Second
	base := simulate(t, Config{Seed: 21, Steady: true}, d, 5*time.Second)
	medianRise := func(t *testing.T, f *simRun, match func(*sp) bool) float64 {
		t.Helper()
		b, a := base.durations(match), f.durations(match)
		if len(b) < 20 || len(a) < 20 {
			t.Fatalf("too few spans: %d before, %d after", len(b), len(a))
		}
		return median(a) - median(b)
	}
	near := func(t *testing.T, what string, got, want, tol float64) {
		t.Helper()
		if math.IsNaN(got) || math.Abs(got-want) > tol {
			t.Errorf("%s = %.3f, want %.3f ± %.3f", what, got, want, tol)
		}
	}
	tests := []struct {
		name  string
		fault Fault
		check func(t *testing.T, r *simRun)
	}{
		{
			name:  "latency",
			fault: Fault{Kind: Latency, Target: "paymentservice", Delay: 200 * time.Millisecond},
			check: func(t *testing.T, r *simRun) {
				near(t, "payment median rise (ms)", medianRise(t, r, server("paymentservice", "")), 200, 20)
				near(t, "checkout median rise (ms)", medianRise(t, r, server("checkoutservice", "")), 200, 30)
				near(t, "checkout page median rise (ms)", medianRise(t, r, server("frontend", "POST /cart/checkout")), 200, 30)
				near(t, "external call median rise (ms)", medianRise(t, r, client("paymentservice", "api.payments.example")), 0, 5)
				near(t, "cart median rise (ms)", medianRise(t, r, server("cartservice", "")), 0, 0.2)
				near(t, "product page median rise (ms)", medianRise(t, r, server("frontend", "GET /product/{id}")), 0, 1)
			},
		},
		{
			name:  "latency on one operation",
			fault: Fault{Kind: Latency, Target: "productcatalogservice", Operation: "GetProduct", Delay: 50 * time.Millisecond},
			check: func(t *testing.T, r *simRun) {
				near(t, "GetProduct median rise (ms)", medianRise(t, r, server("productcatalogservice", "hipstershop.ProductCatalogService/GetProduct")), 50, 3)
				near(t, "ListProducts median rise (ms)", medianRise(t, r, server("productcatalogservice", "hipstershop.ProductCatalogService/ListProducts")), 0, 0.5)
				near(t, "add-to-cart median rise (ms)", medianRise(t, r, server("frontend", "POST /cart")), 50, 5)
			},
		},
		{
			name:  "errors",
			fault: Fault{Kind: Errors, Target: "checkoutservice", Fraction: 0.5},
			check: func(t *testing.T, r *simRun) {
				got, n := r.failedRatio(server("checkoutservice", ""))
				near(t, "checkout failure ratio", got, 0.5, 0.15)
				page, _ := r.failedRatio(server("frontend", "POST /cart/checkout"))
				near(t, "checkout page failure ratio", page, got, 0.02)
				pay, _ := r.failedRatio(server("paymentservice", ""))
				near(t, "payment failure ratio", pay, 0, 0.02)
				before, _ := base.failedRatio(server("frontend", ""))
				after, _ := r.failedRatio(server("frontend", "GET /product/{id}"))
				near(t, "product page failure ratio", after, before, 0.01)
				if n < 20 {
					t.Fatalf("%d checkout spans", n)
				}
				for _, p := range r.spans {
					if !p.Failed() {
						continue
					}
					switch {
					case p.Service == "checkoutservice" && p.Kind == span.KindServer && (p.GRPCStatus != 13 || p.Status != span.StatusError):
						t.Fatalf("failed checkout span: grpc %d status %d", p.GRPCStatus, p.Status)
					case p.Service == "frontend" && p.Kind == span.KindServer && p.Name == "POST /cart/checkout" && p.HTTPStatus != 500:
						t.Fatalf("failed checkout page: HTTP %d", p.HTTPStatus)
					}
				}
			},
		},
		{
			name:  "slow database",
			fault: Fault{Kind: SlowDB, Target: "catalog-db", Delay: 20 * time.Millisecond},
			check: func(t *testing.T, r *simRun) {
				near(t, "query median rise (ms)", medianRise(t, r, client("productcatalogservice", "catalog-db")), 20, 2)
				near(t, "GetProduct median rise (ms)", medianRise(t, r, server("productcatalogservice", "hipstershop.ProductCatalogService/GetProduct")), 20, 2)
				near(t, "redis median rise (ms)", medianRise(t, r, client("cartservice", "redis-cart")), 0, 0.05)
			},
		},
		{
			name:  "network delay",
			fault: Fault{Kind: NetworkDelay, Target: "frontend", Callee: "cartservice", Delay: 30 * time.Millisecond},
			check: func(t *testing.T, r *simRun) {
				near(t, "frontend→cart gap rise (ms)", median(r.gaps("frontend", "cartservice"))-median(base.gaps("frontend", "cartservice")), 30, 0.5)
				near(t, "checkout→cart gap rise (ms)", median(r.gaps("checkoutservice", "cartservice"))-median(base.gaps("checkoutservice", "cartservice")), 0, 0.1)
				near(t, "frontend→currency gap rise (ms)", median(r.gaps("frontend", "currencyservice"))-median(base.gaps("frontend", "currencyservice")), 0, 0.05)
				near(t, "cart server median rise (ms)", medianRise(t, r, server("cartservice", "")), 0, 0.2)
				near(t, "cart client median rise (ms)", medianRise(t, r, client("frontend", "cartservice")), 30, 1)
			},
		},
		{
			name:  "dead instance",
			fault: Fault{Kind: DeadInstance, Target: "cartservice"},
			check: func(t *testing.T, r *simRun) {
				calls := 0
				for _, tr := range r.traces {
					for _, p := range tr.spans {
						if p.Service == "cartservice" {
							t.Fatalf("span %s %s from a dead service", p.Kind, p.Name)
						}
						if p.Kind == span.KindClient && p.ServerAddress == "cartservice" {
							calls++
							if p.GRPCStatus != 14 || p.Status != span.StatusError || len(tr.kids[p.SpanID]) > 0 || p.Duration() > int64(20*time.Millisecond) {
								t.Fatalf("call to dead cartservice: grpc %d, status %d, %d children, %v", p.GRPCStatus, p.Status, len(tr.kids[p.SpanID]), time.Duration(p.Duration()))
							}
						}
					}
				}
				if calls < 100 {
					t.Fatalf("%d calls to cartservice", calls)
				}
				page, _ := r.failedRatio(server("frontend", "GET /product/{id}"))
				near(t, "product page failure ratio", page, 1, 0)
				// Calls made before the cart still succeed.
				cur, _ := r.failedRatio(server("currencyservice", "hipstershop.CurrencyService/GetSupportedCurrencies"))
				near(t, "currency failure ratio", cur, 0, 0.01)
			},
		},
		{
			name:  "one dead instance of two",
			fault: Fault{Kind: DeadInstance, Target: "cartservice", Fraction: 0.5},
			check: func(t *testing.T, r *simRun) {
				got, _ := r.failedRatio(client("frontend", "cartservice"))
				near(t, "failed calls to cartservice", got, 0.5, 0.05)
				instances := map[string]bool{}
				for _, p := range r.spans {
					if p.Service == "cartservice" && p.Kind == span.KindServer {
						instances[p.Instance] = true
					}
				}
				if len(instances) != 1 {
					t.Errorf("cartservice spans from %d instances, want only the live one", len(instances))
				}
			},
		},
		{
			name:  "dead cache",
			fault: Fault{Kind: DeadInstance, Target: "redis-cart"},
			check: func(t *testing.T, r *simRun) {
				redis, _ := r.failedRatio(client("cartservice", "redis-cart"))
				near(t, "failed redis calls", redis, 1, 0)
				cart, _ := r.failedRatio(server("cartservice", ""))
				near(t, "failed cart calls", cart, 1, 0)
			},
		},
		{
			name:  "dead consumer",
			fault: Fault{Kind: DeadInstance, Target: "fulfillmentservice"},
			check: func(t *testing.T, r *simRun) {
				for _, p := range r.spans {
					if p.Service == "fulfillmentservice" {
						t.Fatalf("span %s from the dead consumer", p.Name)
					}
				}
				sent, n := r.failedRatio(func(p *sp) bool { return p.Kind == span.KindProducer })
				near(t, "failed sends", sent, 0, 0)
				if n < 20 {
					t.Fatalf("%d sends", n)
				}
			},
		},
		{
			name:  "latency past the deadline",
			fault: Fault{Kind: Latency, Target: "paymentservice", Delay: 4 * time.Second},
			check: func(t *testing.T, r *simRun) {
				calls := 0
				for _, tr := range r.traces {
					for _, p := range tr.spans {
						if !client("checkoutservice", "paymentservice")(p) {
							continue
						}
						calls++
						srv := tr.kids[p.SpanID]
						if p.GRPCStatus != 4 || p.Duration() != int64(3*time.Second) || len(srv) != 1 || srv[0].End <= p.End || srv[0].Failed() {
							t.Fatalf("call past the deadline: grpc %d after %v", p.GRPCStatus, time.Duration(p.Duration()))
						}
					}
				}
				if calls < 20 {
					t.Fatalf("%d calls", calls)
				}
				page, _ := r.failedRatio(server("frontend", "POST /cart/checkout"))
				near(t, "checkout page failure ratio", page, 1, 0)
			},
		},
		{
			name:  "window",
			fault: Fault{Kind: Latency, Target: "currencyservice", Delay: 10 * time.Millisecond, Start: 10 * time.Second, Duration: 20 * time.Second},
			check: func(t *testing.T, r *simRun) {
				start := r.cfg.Start.UnixNano()
				in := func(from, to time.Duration) func(*sp) bool {
					return func(p *sp) bool {
						return server("currencyservice", "")(p) && p.Start >= start+int64(from) && p.Start < start+int64(to)
					}
				}
				near(t, "median rise before (ms)", medianRise(t, r, in(0, 10*time.Second)), 0, 0.1)
				near(t, "median rise during (ms)", medianRise(t, r, in(10*time.Second, 30*time.Second)), 10, 0.3)
				near(t, "median rise after (ms)", medianRise(t, r, in(30*time.Second, 40*time.Second)), 0, 0.1)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, simulate(t, Config{Seed: 21, Steady: true, Faults: []Fault{tt.fault}}, d, 5*time.Second))
		})
	}
}

// TestDefault checks the make-run scenario: normal first, then
// paymentservice 200 ms slower from 40 s.
func TestDefault(t *testing.T) {
	cfg := Default()
	r := simulate(t, cfg, time.Minute, 5*time.Second)
	start := cfg.Start.UnixNano()
	between := func(from, to time.Duration) []float64 {
		return r.durations(func(p *sp) bool {
			return server("paymentservice", "")(p) && p.Start >= start+int64(from) && p.Start < start+int64(to)
		})
	}
	before, during := median(between(0, 40*time.Second)), median(between(40*time.Second, time.Minute))
	if before > 40 || during < before+180 || during > before+230 {
		t.Errorf("paymentservice median %.1f ms before the fault, %.1f ms during", before, during)
	}
}

// TestFaultKeepsTraffic checks that a fault leaves the arrival process and
// untouched traces alone: the same requests arrive at the same times.
func TestFaultKeepsTraffic(t *testing.T) {
	cfg := Config{Seed: 4}
	a := simulate(t, cfg, 20*time.Second, 5*time.Second)
	cfg.Faults = []Fault{{Kind: Latency, Target: "emailservice", Delay: time.Second}}
	b := simulate(t, cfg, 20*time.Second, 5*time.Second)
	if len(a.traces) != len(b.traces) {
		t.Fatalf("%d traces without the fault, %d with", len(a.traces), len(b.traces))
	}
	roots := map[span.TraceID]int64{}
	for _, tr := range a.traces {
		roots[tr.root.TraceID] = tr.root.Start
	}
	for _, tr := range b.traces {
		if start, ok := roots[tr.root.TraceID]; !ok || start != tr.root.Start {
			t.Fatalf("trace %s changed its root", tr.root.TraceID)
		}
	}
}

func TestParseFault(t *testing.T) {
	tests := []struct {
		in   string
		want Fault
		err  string
	}{
		{in: "latency:paymentservice:+200ms@60s/120s",
			want: Fault{Kind: Latency, Target: "paymentservice", Delay: 200 * time.Millisecond, Start: time.Minute, Duration: 2 * time.Minute}},
		{in: "latency:checkoutservice#PlaceOrder:1s",
			want: Fault{Kind: Latency, Target: "checkoutservice", Operation: "PlaceOrder", Delay: time.Second}},
		{in: "latency:frontend#GET /product/{id}:+5ms@1m",
			want: Fault{Kind: Latency, Target: "frontend", Operation: "GET /product/{id}", Delay: 5 * time.Millisecond, Start: time.Minute}},
		{in: "errors:checkoutservice:25%@1m/30s",
			want: Fault{Kind: Errors, Target: "checkoutservice", Fraction: 0.25, Start: time.Minute, Duration: 30 * time.Second}},
		{in: "errors:cartservice#GetCart:0.1",
			want: Fault{Kind: Errors, Target: "cartservice", Operation: "GetCart", Fraction: 0.1}},
		{in: "slow_db:catalog-db:+20ms@40s",
			want: Fault{Kind: SlowDB, Target: "catalog-db", Delay: 20 * time.Millisecond, Start: 40 * time.Second}},
		{in: "network_delay:frontend>cartservice:+30ms@40s/1m",
			want: Fault{Kind: NetworkDelay, Target: "frontend", Callee: "cartservice", Delay: 30 * time.Millisecond, Start: 40 * time.Second, Duration: time.Minute}},
		{in: "network_delay:frontend->cartservice:30ms",
			want: Fault{Kind: NetworkDelay, Target: "frontend", Callee: "cartservice", Delay: 30 * time.Millisecond}},
		{in: "dead_instance:cartservice@2m/1m",
			want: Fault{Kind: DeadInstance, Target: "cartservice", Start: 2 * time.Minute, Duration: time.Minute}},
		{in: "dead_instance:cartservice:50%",
			want: Fault{Kind: DeadInstance, Target: "cartservice", Fraction: 0.5}},
		{in: "slowness:paymentservice:1s", err: `unknown kind "slowness"`},
		{in: "latency", err: "missing target"},
		{in: "latency:paymentservice", err: "needs a delay"},
		{in: "latency:paymentservice:fast", err: "delay"},
		{in: "errors:paymentservice", err: "needs a fraction"},
		{in: "errors:paymentservice:lots", err: "fraction"},
		{in: "network_delay:frontend:30ms", err: "CALLER>CALLEE"},
		{in: "latency:paymentservice:1s@soon", err: "start"},
		{in: "latency:paymentservice:1s@1m/", err: "duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFault(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseFault(%q) error %v, want one containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("ParseFault(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			again, err := ParseFault(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip through %q gave %+v, %v", got.String(), again, err)
			}
			if _, err := New(Config{Faults: []Fault{got}}); err != nil {
				t.Fatalf("New rejects a documented example: %v", err)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative rate", Config{Rate: -1}, "Rate"},
		{"NaN rate", Config{Rate: math.NaN()}, "Rate"},
		{"swing", Config{Swing: 1}, "Swing"},
		{"period", Config{Period: -time.Second}, "Period"},
		{"batch", Config{MaxBatchSpans: -1}, "MaxBatchSpans"},
		{"unknown kind", Config{Faults: []Fault{{Kind: "slow"}}}, `Faults[0].Kind: unknown fault kind "slow"`},
		{"unknown service", Config{Faults: []Fault{{Kind: DeadInstance, Target: "adservice"}, {Kind: Latency, Target: "paymentsvc", Delay: 1}}}, `Faults[1].Target: unknown service "paymentsvc"`},
		{"unknown operation", Config{Faults: []Fault{{Kind: Errors, Target: "cartservice", Operation: "Nope", Fraction: 1}}}, `Faults[0].Operation`},
		{"no delay", Config{Faults: []Fault{{Kind: Latency, Target: "cartservice"}}}, `Faults[0].Delay`},
		{"bad fraction", Config{Faults: []Fault{{Kind: Errors, Target: "cartservice", Fraction: 2}}}, `Faults[0].Fraction`},
		{"slow non-database", Config{Faults: []Fault{{Kind: SlowDB, Target: "api.payments.example", Delay: 1}}}, `Faults[0].Target: unknown database`},
		{"edge that does not exist", Config{Faults: []Fault{{Kind: NetworkDelay, Target: "cartservice", Callee: "paymentservice", Delay: 1}}}, `Faults[0].Callee`},
		{"dead frontend", Config{Faults: []Fault{{Kind: DeadInstance, Target: "frontend"}}}, `Faults[0].Target: frontend has no instrumented callers`},
		{"dead nothing", Config{Faults: []Fault{{Kind: DeadInstance, Target: "mars"}}}, `Faults[0].Target`},
		{"negative start", Config{Faults: []Fault{{Kind: DeadInstance, Target: "adservice", Start: -1}}}, `Faults[0].Start`},
		{"operation on slow_db", Config{Faults: []Fault{{Kind: SlowDB, Target: "catalog-db", Operation: "x", Delay: 1}}}, `Faults[0].Operation`},
		{"batch runs overlap", Config{Batch: &BatchJob{Every: time.Minute, Duration: time.Minute}}, "Batch.Every: must exceed Batch.Duration"},
		{"batch longer than the default period", Config{Batch: &BatchJob{Duration: time.Hour}}, "Batch.Every: must exceed Batch.Duration"},
		{"negative batch period", Config{Batch: &BatchJob{Every: -time.Minute}}, "Batch.Every: must be positive"},
		{"negative batch duration", Config{Batch: &BatchJob{Duration: -time.Minute}}, "Batch.Duration"},
		{"negative batch offset", Config{Batch: &BatchJob{Offset: -time.Second}}, "Batch.Offset"},
		{"infinite batch rate", Config{Batch: &BatchJob{Rate: math.Inf(1)}}, "Batch.Rate"},
		{"negative batch slowdown", Config{Batch: &BatchJob{Slowdown: -0.1}}, "Batch.Slowdown"},
		{"dead batch job", Config{Batch: &BatchJob{}, Faults: []Fault{{Kind: DeadInstance, Target: "batchjob"}}}, "Faults[0].Target: batchjob has no instrumented callers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error %v, want one containing %q", err, tt.want)
			}
			var fe *fieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), "new simulator: ") {
				t.Errorf("error %q is not a wrapped field error", err)
			}
		})
	}
}
