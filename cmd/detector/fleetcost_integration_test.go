//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/sim"
	"github.com/causeway/causeway/span"
)

// costTraffic is a density of traffic TestFleetCost measures: simulated
// Online Boutique at rate user requests a second, for d of event time.
type costTraffic struct {
	name string
	rate float64
	d    time.Duration
}

// The two densities: the simulator's default rate, about 1,000 spans a
// second over some fifty series (edges and operations), so a series has a
// handful of calls per partition and window and the per-window work of a
// member (encoding, merging, one message per shard) weighs as much as the
// spans; and ten times that rate, still a hundredth of what one detector
// takes, where the spans weigh most, as they do wherever a fleet is
// needed. docs/fleet.md has the model.
var costTraffics = []costTraffic{
	{"50 req/s", 50, 10 * time.Minute},
	{"500 req/s", 500, 3 * time.Minute},
}

// TestFleetCost (make bench-fleet) measures what scaling out costs per
// span: the CPU seconds per million spans of one unclustered detector, one
// cluster member and two, each reading the same simulated traffic from
// earliest on a real broker, written trace-keyed (one message per trace,
// keyed by its id) and as the Collector writes without
// partition_traces_by_id (batches, which members re-key), at each density
// of costTraffics. CPU is the processes' own (user and system), from start
// to idle; it prints one table and compares with the targets of
// docs/fleet.md. It is a measurement: it fails only when a run does not
// read every span.
// FLEETCOST_RUNS=N reads each topic N times with each set of readers and
// prints medians, each ratio taken within its run, with their range (a
// shared machine's runs vary by a fifth). FLEETCOST_TRAFFIC=NAME measures
// one density only ("50 req/s" or "500 req/s"). FLEETCOST_PROFILE=DIR
// writes a CPU profile of each process's whole run there (detector run
// --cpuprofile). FLEETCOST_MERGE=every_member measures members merging
// every partition's windows themselves instead of the sharded merge
// (cluster.merge).
func TestFleetCost(t *testing.T) {
	bin := buildDetector(t)
	bs := brokers(t)
	runs := 1
	if v := os.Getenv("FLEETCOST_RUNS"); v != "" {
		var err error
		if runs, err = strconv.Atoi(v); err != nil || runs < 1 {
			t.Fatalf("FLEETCOST_RUNS=%q: want a count of runs", v)
		}
	}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	// Per set of readers, per run: CPU seconds per million spans, and the
	// ratio to one detector of the same run.
	perM, ratio := map[string][]float64{}, map[string][]float64{}
	var order []string
	only := os.Getenv("FLEETCOST_TRAFFIC")
	if only != "" && !slices.ContainsFunc(costTraffics, func(c costTraffic) bool { return c.name == only }) {
		t.Fatalf("FLEETCOST_TRAFFIC=%q: want one of %v", only, costTraffics)
	}
	for ti, traffic := range costTraffics {
		if only != "" && traffic.name != only {
			continue
		}
		for _, keyed := range []bool{true, false} {
			topic := fmt.Sprintf("cost_%d_%v_%s", ti, keyed, suffix)
			createTopic(t, bs, topic, 6)
			n := produceMinutes(t, bs, topic, keyed, traffic.d, traffic.rate)
			for run := range runs {
				var alone float64
				for _, members := range []int{0, 1, 2} {
					name := fmt.Sprintf("%s, %s, %s", traffic.name, map[bool]string{true: "trace-keyed", false: "batches"}[keyed],
						map[int]string{0: "one detector", 1: "one member", 2: "two members"}[members])
					cpu, read := runForCost(t, bin, bs, topic, keyed, members, fmt.Sprintf("%s_%d_%d_%v_%d", suffix, ti, members, keyed, run), n)
					per := cpu.Seconds() / float64(n) * 1e6
					if members == 0 {
						alone = per
					}
					if run == 0 {
						order = append(order, name)
					}
					perM[name], ratio[name] = append(perM[name], per), append(ratio[name], per/alone)
					t.Logf("%s, run %d: %v CPU for %d spans (%v read)", name, run+1, cpu.Round(time.Millisecond), n, read)
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-44s %12s %10s", "traffic, messages, readers", "CPU s/M spans", "vs alone")
	if runs > 1 {
		fmt.Fprintf(&b, "   (medians of %d runs; ratios' range)", runs)
	}
	b.WriteString("\n")
	for _, name := range order {
		fmt.Fprintf(&b, "%-44s %12.2f %9.2fx", name, median(perM[name]), median(ratio[name]))
		if runs > 1 {
			fmt.Fprintf(&b, "   %.2f-%.2fx", slices.Min(ratio[name]), slices.Max(ratio[name]))
		}
		b.WriteString("\n")
	}
	t.Logf("fleet cost (targets, docs/fleet.md: a trace-keyed member at most 1.2x one detector, a re-keying member at most 2x):\n%s", b.String())
	fmt.Print(b.String())
}

// median is the middle value of xs (the mean of the two middle ones for
// an even count).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// produceMinutes writes d of simulated traffic at rate requests a second
// (0: the simulator's default), ending now, to topic:
// trace-keyed (hashed to partitions by trace id) or in batches spread
// round robin. It returns the spans written.
func produceMinutes(t *testing.T, bs []string, topic string, keyed bool, d time.Duration, rate float64) int {
	t.Helper()
	cfg := sim.Default()
	cfg.Faults, cfg.ByTrace, cfg.Start, cfg.Rate = nil, keyed, time.Now().Add(-d), rate
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var bal kafka.Balancer = &kafka.RoundRobin{}
	if keyed {
		bal = &kafka.Hash{}
	}
	w := &kafka.Writer{Addr: kafka.TCP(bs...), Topic: topic, Balancer: bal, Transport: &kafka.Transport{},
		BatchTimeout: 5 * time.Millisecond, BatchSize: 1000, BatchBytes: 900_000, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	spans := 0
	for step := time.Duration(0); step < d; step += 10 * time.Second {
		var msgs []kafka.Message
		for _, m := range s.Messages(10 * time.Second) {
			res, err := dec.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			spans += len(res.Spans)
			msgs = append(msgs, kafka.Message{Key: m.Key, Value: m.Value})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	return spans
}

// runForCost starts one unclustered detector (members 0) or that many
// cluster members on topic from earliest, waits until they are idle, and
// returns the CPU they used, and the spans they report read.
func runForCost(t *testing.T, bin string, bs []string, topic string, keyed bool, members int, id string, spans int) (time.Duration, float64) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "causeway.yaml")
	cluster := ""
	if members > 0 {
		cluster = id
	}
	yaml := fleetConfig(bs, topic, "cost-"+id, keyed, 0, cluster)
	if merge := os.Getenv("FLEETCOST_MERGE"); merge != "" && cluster != "" {
		yaml += "  merge: " + merge + "\n" // the cluster block is fleetConfig's last
	}
	profiles := os.Getenv("FLEETCOST_PROFILE")
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var ps []*member
	for i := range max(members, 1) {
		p := &member{name: strconv.Itoa(i), log: filepath.Join(dir, fmt.Sprintf("%d.log", i))}
		if profiles != "" {
			p.flags = []string{"--cpuprofile", filepath.Join(profiles, fmt.Sprintf("%s-%d.pprof", id, i))}
		}
		p.start(t, bin, conf, "")
		ps = append(ps, p)
	}
	stopAll := func() {
		for _, p := range ps {
			if p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
				_ = p.cmd.Wait()
			}
		}
	}
	defer stopAll()
	// Idle: no process used more than 2% of a core over the last 3 s,
	// after the spans were read.
	read := func() float64 {
		var n float64
		for _, p := range ps {
			n += scrapeOr(p.api, "causeway_spans_total")
		}
		return n
	}
	var history []time.Duration
	deadline := time.Now().Add(4 * time.Minute)
	for {
		time.Sleep(500 * time.Millisecond)
		var cpu time.Duration
		for _, p := range ps {
			cpu += procCPU(t, p.cmd.Process.Pid)
		}
		history = append(history, cpu)
		if k := len(history); k > 6 && read() >= float64(spans) && history[k-1]-history[k-7] < time.Duration(len(ps))*60*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			for _, p := range ps {
				b, _ := os.ReadFile(p.log)
				t.Logf("log (tail):\n%s", tail(string(b), 3000))
			}
			t.Fatalf("not idle with every span read after 4 minutes: %v of %d spans read", read(), spans)
		}
	}
	n := read()
	stopAll()
	var cpu time.Duration
	for _, p := range ps {
		cpu += p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	}
	return cpu, n
}

// scrapeOr is scrape without failing: 0 while the process starts.
func scrapeOr(addr, series string) float64 {
	v, err := scrapeValue(addr, series)
	if err != nil {
		return 0
	}
	return v
}

// procCPU is the user and system time pid has used so far.
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0 // it has exited
	}
	// Fields after the command name, which ends with the last ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / 100 // USER_HZ
}
