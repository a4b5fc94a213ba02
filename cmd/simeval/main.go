// Command simeval measures root-cause accuracy on the simulator's scenario
// suite: every fault kind on several targets, and fault-free scenarios
// (traffic surge, batch job, a small deploy change) that must raise no
// incident; and sparse scenarios, the shop at sparseRate requests per
// second, where quiet edges carry about 0.1 calls/s. Each scenario runs the
// detector's pipeline in-process on simulated traffic: decode, join,
// baselines, incidents, ranking.
//
// It prints a table by fault type and ends with one summary line in the
// format of ../shared/eval/score.py:
//
//	AC@1=1.00 AC@3=1.00 Avg@5=1.00 detected=13/13 median_delay_s=10 false_per_hour=0.00
//
// over the fault scenarios (false incidents over all scenarios).
//
//	go run ./cmd/simeval [-history 20m] [-after 5m] [-rate 50] [-v] [-summary FILE]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/detect"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/pipeline"
	"github.com/causeway/causeway/sim"
	"github.com/causeway/causeway/span"
)

// scenario is one run: a fault and the service to blame, or none.
type scenario struct {
	name   string
	fault  string // sim fault syntax without @start/duration; "" for none
	truth  string // the node to blame; "" for a fault-free scenario
	kind   string
	sparse bool // run at sparseRate instead of -rate
	setup  func(*sim.Config)
}

// sparseRate is the request rate of the sparse scenarios. One request in 19
// of the simulator's mix is a checkout, which calls paymentservice, shipping
// (ShipOrder), email and the orders queue once: at 1.8 requests/s
// frontend->checkoutservice, checkoutservice->paymentservice and
// checkoutservice->emailservice carry about 0.1 calls/s (0.05 to 0.15 over
// the compressed day), and a 10-second window of them holds one call or none.
const sparseRate = 1.8

var scenarios = []scenario{
	{name: "latency paymentservice +150ms", fault: "latency:paymentservice:+150ms", truth: "paymentservice", kind: "latency"},
	{name: "latency cartservice +40ms", fault: "latency:cartservice:+40ms", truth: "cartservice", kind: "latency"},
	{name: "latency currencyservice +20ms", fault: "latency:currencyservice:+20ms", truth: "currencyservice", kind: "latency"},
	{name: "latency productcatalogservice +30ms", fault: "latency:productcatalogservice:+30ms", truth: "productcatalogservice", kind: "latency"},
	{name: "errors paymentservice 30%", fault: "errors:paymentservice:30%", truth: "paymentservice", kind: "errors"},
	{name: "errors cartservice 20%", fault: "errors:cartservice:20%", truth: "cartservice", kind: "errors"},
	{name: "errors shippingservice 50%", fault: "errors:shippingservice:50%", truth: "shippingservice", kind: "errors"},
	{name: "slow_db catalog-db +20ms", fault: "slow_db:catalog-db:+20ms", truth: "catalog-db", kind: "slow_db"},
	{name: "slow_db redis-cart +10ms", fault: "slow_db:redis-cart:+10ms", truth: "redis-cart", kind: "slow_db"},
	{name: "network_delay frontend>cartservice +30ms", fault: "network_delay:frontend>cartservice:+30ms", truth: "cartservice", kind: "network_delay"},
	{name: "network_delay checkoutservice>paymentservice +50ms", fault: "network_delay:checkoutservice>paymentservice:+50ms", truth: "paymentservice", kind: "network_delay"},
	{name: "dead_instance cartservice", fault: "dead_instance:cartservice", truth: "cartservice", kind: "dead_instance"},
	{name: "dead_instance currencyservice", fault: "dead_instance:currencyservice", truth: "currencyservice", kind: "dead_instance"},
	{name: "no fault: traffic surge x3", kind: "no_fault", setup: func(c *sim.Config) { c.Rate *= 3 }},
	{name: "no fault: batch job", kind: "no_fault", setup: func(c *sim.Config) {
		c.Batch = &sim.BatchJob{Every: 30 * time.Minute, Duration: 3 * time.Minute, Offset: 5 * time.Minute, Rate: 10, Slowdown: 0.4}
	}},
	{name: "no fault: small deploy change (+1ms adservice)", fault: "latency:adservice:+1ms", kind: "no_fault"},
	{name: "sparse latency paymentservice +150ms", fault: "latency:paymentservice:+150ms", truth: "paymentservice", kind: "latency", sparse: true},
	{name: "sparse network_delay checkoutservice>paymentservice +50ms", fault: "network_delay:checkoutservice>paymentservice:+50ms", truth: "paymentservice", kind: "network_delay", sparse: true},
	{name: "sparse errors paymentservice 30%", fault: "errors:paymentservice:30%", truth: "paymentservice", kind: "errors", sparse: true},
	{name: "sparse latency emailservice +50ms", fault: "latency:emailservice:+50ms", truth: "emailservice", kind: "latency", sparse: true},
	{name: "sparse dead_instance paymentservice", fault: "dead_instance:paymentservice", truth: "paymentservice", kind: "dead_instance", sparse: true},
	{name: "sparse no fault", kind: "no_fault", sparse: true},
}

type result struct {
	s         scenario
	rank      int // 0: not found
	detected  bool
	delay     time.Duration
	falseIncs int
	top       []string
	hours     float64
	judged    *incident.Incident
}

func main() {
	history := flag.Duration("history", 20*time.Minute, "normal traffic before the fault")
	after := flag.Duration("after", 5*time.Minute, "how long the fault lasts (and the run after it)")
	rate := flag.Float64("rate", 50, "user requests per second")
	verbose := flag.Bool("v", false, "show the top suspects of each scenario")
	summary := flag.String("summary", "", "also write \"LABEL<TAB>SUMMARY LINE\" to this file")
	flag.Parse()

	began := time.Now()
	var results []result
	for _, sc := range scenarios {
		r, err := run(sc, *history, *after, *rate)
		if err != nil {
			fmt.Fprintln(os.Stderr, "simeval:", sc.name+":", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "%-58s rank %d detected %v delay %v false %d top %v\n", sc.name, r.rank, r.detected, r.delay, r.falseIncs, r.top)
		if *verbose && r.judged != nil {
			for _, sp := range r.judged.Suspects[:min(3, len(r.judged.Suspects))] {
				fmt.Fprintf(os.Stderr, "    %s %s %.2f: %s\n", sp.Service, sp.Kind, sp.Score, sp.Summary)
			}
		}
		results = append(results, r)
	}
	fmt.Fprintf(os.Stderr, "simeval: %d scenarios in %.0fs\n", len(results), time.Since(began).Seconds())
	report(results)
	label := fmt.Sprintf("own simulator suite (cmd/simeval, %d scenarios)", len(results))
	line := summaryLine(results)
	fmt.Printf("\n%-49s %s\n", label+":", line)
	if *summary != "" {
		if err := os.WriteFile(*summary, []byte(label+"\t"+line+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "simeval:", err)
			os.Exit(1)
		}
	}
}

func run(sc scenario, history, after time.Duration, rate float64) (result, error) {
	cfg := sim.Default()
	cfg.Faults, cfg.Rate, cfg.ByTrace = nil, rate, false
	if sc.sparse {
		cfg.Rate = sparseRate
	}
	if sc.setup != nil {
		sc.setup(&cfg)
	}
	faultAt := cfg.Start.Add(history)
	if sc.fault != "" {
		f, err := sim.ParseFault(fmt.Sprintf("%s@%v/%v", sc.fault, history, after))
		if err != nil {
			return result{}, err
		}
		cfg.Faults = []sim.Fault{f}
	}
	s, err := sim.New(cfg)
	if err != nil {
		return result{}, err
	}
	p, err := detect.New(detect.Options{})
	if err != nil {
		return result{}, err
	}
	agg, incs := p.Graph, p.Incidents
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	feed := pipeline.NewFeed(func(emit func([]span.Span) []span.Span) error {
		var buf []span.Span
		for range int((history + after + time.Minute) / time.Second) {
			for _, m := range s.Messages(time.Second) {
				res, err := dec.DecodeInto(m.Value, buf)
				if err != nil {
					return err
				}
				buf = emit(res.Spans)
			}
		}
		return nil
	})
	_ = pipeline.NewDriver(pipeline.Options{Source: feed, Graph: agg}).Run(context.Background())
	if err := feed.Err(); err != nil {
		return result{}, err
	}
	agg.Flush()

	r := result{s: sc}
	all := incs.List("", time.Time{}, time.Time{})
	slices.Reverse(all)
	var judged *incident.Incident
	for i := range all {
		inc := &all[i]
		if inc.MergedInto != "" {
			continue
		}
		faulty := sc.fault != "" && sc.kind != "no_fault" && !inc.UpdatedAt.Before(faultAt)
		if !faulty {
			r.falseIncs++
			fmt.Fprintf(os.Stderr, "  false incident %s at %v: %s\n", inc.ID, inc.OpenedAt.Sub(cfg.Start), explain(inc))
			continue
		}
		if judged == nil {
			judged = inc
		}
	}
	r.hours = history.Hours()
	if sc.kind == "no_fault" {
		r.hours = (history + after).Hours()
	}
	r.judged = judged
	if judged != nil {
		r.detected = true
		r.delay = max(0, judged.OpenedAt.Sub(faultAt))
		for _, sp := range judged.Suspects {
			if !slices.Contains(r.top, sp.Service) {
				r.top = append(r.top, sp.Service)
			}
		}
		if i := slices.Index(r.top, sc.truth); i >= 0 {
			r.rank = i + 1
		}
		if len(r.top) > 5 {
			r.top = r.top[:5]
		}
	}
	return r, nil
}

func report(rs []result) {
	fmt.Println("\nSimulator scenario suite")
	fmt.Println("| fault type | n | AC@1 | AC@3 | Avg@5 | detected | median delay s | false incidents/h |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	by := map[string][]result{}
	var kinds []string
	for _, r := range rs {
		if _, ok := by[r.s.kind]; !ok {
			kinds = append(kinds, r.s.kind)
		}
		by[r.s.kind] = append(by[r.s.kind], r)
	}
	sort.Strings(kinds)
	var faults, sparse []result
	for _, k := range kinds {
		line(k, by[k])
		if k != "no_fault" {
			faults = append(faults, by[k]...)
		}
	}
	for _, r := range faults {
		if r.s.sparse {
			sparse = append(sparse, r)
		}
	}
	if len(sparse) > 0 {
		line(fmt.Sprintf("sparse faults (%g req/s)", sparseRate), sparse)
	}
	line("all faults", faults)
}

// summaryLine is the last line of ../shared/eval/score.py over rs: AC@1,
// AC@3 and Avg@5 (the mean of AC@1..AC@5) over the fault scenarios, how many
// of them raised an incident, the median delay of those, and false incidents
// per hour over all scenarios.
func summaryLine(rs []result) string {
	var faults int
	var atK [5]int
	var delays []float64
	var falses, hours float64
	for _, r := range rs {
		falses += float64(r.falseIncs)
		hours += r.hours
		if r.s.kind == "no_fault" {
			continue
		}
		faults++
		for k := range atK {
			if r.rank > 0 && r.rank <= k+1 {
				atK[k]++
			}
		}
		if r.detected {
			delays = append(delays, r.delay.Seconds())
		}
	}
	ac := func(k int) float64 {
		if faults == 0 {
			return 0
		}
		return float64(atK[k-1]) / float64(faults)
	}
	avg5 := (ac(1) + ac(2) + ac(3) + ac(4) + ac(5)) / 5
	med := "n/a"
	if len(delays) > 0 {
		med = fmt.Sprintf("%.0f", median(delays))
	}
	fph := 0.0
	if hours > 0 {
		fph = falses / hours
	}
	return fmt.Sprintf("AC@1=%.2f AC@3=%.2f Avg@5=%.2f detected=%d/%d median_delay_s=%s false_per_hour=%.2f",
		ac(1), ac(3), avg5, len(delays), faults, med, fph)
}

// median is the middle value of xs, or the mean of the two middle ones, as
// Python's statistics.median. It sorts xs.
func median(xs []float64) float64 {
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func line(title string, rs []result) {
	n := float64(len(rs))
	ac := func(k int) float64 {
		c := 0
		for _, r := range rs {
			if r.rank > 0 && r.rank <= k {
				c++
			}
		}
		return float64(c) / n
	}
	var avg5, det, hours, falses float64
	var delays []float64
	for k := 1; k <= 5; k++ {
		avg5 += ac(k) / 5
	}
	for _, r := range rs {
		if r.detected {
			det++
			delays = append(delays, r.delay.Seconds())
		}
		hours += r.hours
		falses += float64(r.falseIncs)
	}
	med := "-"
	if len(delays) > 0 {
		med = fmt.Sprintf("%.0f", median(delays))
	}
	if title == "no_fault" {
		fmt.Printf("| %s | %d | - | - | - | - | - | %.2f |\n", title, len(rs), falses/hours)
		return
	}
	fmt.Printf("| %s | %d | %.2f | %.2f | %.2f | %.2f | %s | %.2f |\n", title, len(rs), ac(1), ac(3), avg5, det/n, med, falses/hours)
}

func explain(inc *incident.Incident) string {
	if len(inc.Anomalies) == 0 {
		return ""
	}
	return inc.Anomalies[0].Series + ": " + inc.Anomalies[0].Explanation
}
