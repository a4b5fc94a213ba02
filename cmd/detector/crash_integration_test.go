//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/internal/simtest"
	"github.com/causeway/causeway/internal/wait"
	"github.com/causeway/causeway/sim"
)

// TestIntegrationCrashReplay replays a simulated fault (12 minutes of
// normal traffic, paymentservice 150 ms slower for 3 minutes, 2 more
// minutes) from a real Kafka topic through the detector binary twice: once
// without interruption, and once SIGKILLed at random points (seeded by
// CAUSEWAY_CRASH_SEED, or the clock, and logged) and restarted from the
// same state directory until it has consumed everything. Both must end
// with the same incidents (id, state, revision, top suspect) and the same
// alert events at their webhook receivers, and no span may come too late
// for its window in any life; the killed one may deliver an event more
// than once, always with the same idempotency key. The event
// times lie ahead of the wall clock, so windows close on event time alone
// and the replay runs as fast as the detector reads.
//
// CAUSEWAY_CRASH_KILLS sets how many kills (default 3; make crash: 10).
func TestIntegrationCrashReplay(t *testing.T) {
	bs := brokers(t)
	kills := 3
	if v := os.Getenv("CAUSEWAY_CRASH_KILLS"); v != "" {
		var err error
		if kills, err = strconv.Atoi(v); err != nil {
			t.Fatalf("CAUSEWAY_CRASH_KILLS: %v", err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CAUSEWAY_CRASH_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("CAUSEWAY_CRASH_SEED: %v", err)
		}
	}
	t.Logf("CAUSEWAY_CRASH_SEED=%d CAUSEWAY_CRASH_KILLS=%d", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 0))

	bin := filepath.Join(t.TempDir(), "detector")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	topic := "it_crash_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	// One partition: a detector that starts on several reads the first
	// fetched one ahead, and spans of the others can come too late for
	// windows closed meanwhile — at the start of any run, crashed or not,
	// and differently each time (see docs/operations.md, "Crash safety").
	createTopic(t, bs, topic, 1)
	total := produceScenario(t, bs, topic)
	t.Logf("%d messages in %s", total, topic)

	began := time.Now()
	straight := newCrashRun(t, bin, bs, topic, "straight")
	p := straight.start()
	straight.waitConsumed(p, total)
	straightIncs, straightCalls := straight.incidents(p), straight.calls(p)
	t.Logf("uninterrupted run: %v; checkpoints: %v written, last %v bytes in %.1f ms",
		time.Since(began).Round(time.Millisecond), scrape(t, p.addr, `causeway_checkpoints_total{result="ok"}`),
		scrape(t, p.addr, "causeway_checkpoint_bytes"), 1000*scrape(t, p.addr, "causeway_checkpoint_write_seconds"))
	straight.stop(p)

	// Kill points: random positions in the topic, in order.
	var points []int
	for range kills {
		points = append(points, total/20+rng.IntN(total*9/10))
	}
	slices.Sort(points)
	began = time.Now()
	killed := newCrashRun(t, bin, bs, topic, "killed")
	var replayed int64
	late := 0.0 // spans too late, in every life of the killed run
	for i, at := range points {
		from := killed.committed()
		t0 := time.Now()
		p := killed.start()
		ready := time.Since(t0)
		// This process starts at the group's committed offsets.
		reached := killed.waitRead(p, max(1, at-int(from)))
		late += scrape(t, p.addr, "causeway_graph_spans_too_late_total")
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		after := killed.committed()
		replayed += int64(from) + int64(reached) - after
		t.Logf("life %d: started at offset %d, ready in %v; SIGKILL at about offset %d (target %d), %v s after start; committed then: %d, so %d messages to read again",
			i+1, from, ready.Round(time.Millisecond), from+int64(reached), at, time.Since(t0).Seconds(), after, from+int64(reached)-after)
	}
	p = killed.start()
	killed.waitConsumed(p, total)
	killedIncs, killedCalls := killed.incidents(p), killed.calls(p)
	late += scrape(t, p.addr, "causeway_graph_spans_too_late_total")
	killed.stop(p)
	t.Logf("killed run: %v, %d kills, %d messages read again in all", time.Since(began).Round(time.Millisecond), kills, replayed)

	if len(straightIncs) == 0 {
		t.Fatal("the uninterrupted run found no incident")
	}
	// Every restart reads its backlog in event time: no span of any life
	// came after its window had closed (each life's count read just
	// before its SIGKILL).
	if late != 0 {
		t.Errorf("%v spans too late across the killed run's lives, want 0", late)
	}
	if !slices.Equal(straightIncs, killedIncs) {
		t.Errorf("incidents uninterrupted:\n%s\nkilled and restarted:\n%s", strings.Join(straightIncs, "\n"), strings.Join(killedIncs, "\n"))
	}
	// Nothing lost, nothing counted twice: every call of every closed
	// window, per edge, as the service graph's totals since the start.
	if straightCalls != killedCalls || straightCalls == "" {
		t.Errorf("calls per edge since the start, uninterrupted:\n%s\nkilled and restarted:\n%s", straightCalls, killedCalls)
	}
	want, got := straight.hook.events(), killed.hook.events()
	if !slices.Equal(want, got) {
		t.Errorf("alert events uninterrupted:\n%s\nkilled and restarted:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
	if d := straight.hook.duplicates(); d != 0 {
		t.Errorf("the uninterrupted run delivered %d events twice", d)
	}
	t.Logf("incidents: %s; events: %s; duplicate deliveries after kills: %d (same idempotency key)",
		strings.Join(straightIncs, "; "), strings.Join(want, "; "), killed.hook.duplicates())
}

// produceScenario writes the simulator's fault scenario to topic, one
// message per trace keyed by trace id, and returns how many messages.
func produceScenario(t *testing.T, bs []string, topic string) int {
	t.Helper()
	cfg := sim.Default()
	cfg.Seed, cfg.Rate = 7, 20
	cfg.Start = time.Now().Add(time.Minute).Truncate(10 * time.Second) // ahead of the wall clock
	s := simtest.New(t, cfg, "latency:paymentservice:+150ms@12m/3m")
	w := &kafka.Writer{Addr: kafka.TCP(bs...), Topic: topic, Balancer: &kafka.Hash{}, Transport: &kafka.Transport{},
		BatchTimeout: 5 * time.Millisecond, BatchSize: 1000, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	for range 17 * 6 {
		var msgs []kafka.Message
		for _, m := range s.Messages(10 * time.Second) {
			msgs = append(msgs, kafka.Message{Key: m.Key, Value: m.Value})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		n += len(msgs)
	}
	return n
}

// crashRun is one detector's life, or lives, over the topic: its group,
// state directory, webhook and log.
type crashRun struct {
	t       *testing.T
	bin     string
	bs      []string
	topic   string
	group   string
	config  string
	logPath string
	hook    *keyedHook
}

type crashProc struct {
	cmd  *exec.Cmd
	addr string
}

func newCrashRun(t *testing.T, bin string, bs []string, topic, name string) *crashRun {
	dir := t.TempDir()
	r := &crashRun{t: t, bin: bin, bs: bs, topic: topic, group: topic + "_" + name, logPath: filepath.Join(dir, "detector.log"),
		hook: newKeyedHook()}
	t.Cleanup(r.hook.Close)
	r.config = filepath.Join(dir, "causeway.yaml")
	conf := fmt.Sprintf(`state_dir: %s
snapshot_interval: 300ms
log_level: info
kafka:
  brokers: [%s]
  topic: %s
  group_id: %s
  max_clock_skew: 24h
  session_timeout: 6s
  commit_interval: 100ms
alerts:
  backoff: 50ms
  max_backoff: 500ms
  receivers:
    - {name: hook, kind: webhook, url: %s}
`, filepath.Join(dir, "state"), strings.Join(bs, ","), topic, r.group, r.hook.URL)
	if err := os.WriteFile(r.config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(r.logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return r
}

func (r *crashRun) start() *crashProc {
	r.t.Helper()
	addr := freeAddr(r.t)
	cmd := exec.Command(r.bin, "run", "--config", r.config, "--listen", addr)
	f, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "----- start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	p := &crashProc{cmd: cmd, addr: addr}
	r.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatal("detector not ready within 30s")
		}
		time.Sleep(10 * time.Millisecond) // another process: nothing to block on
	}
}

// waitRead waits until the process has read at least n messages, and
// returns how many it had.
func (r *crashRun) waitRead(p *crashProc, n int) int {
	r.t.Helper()
	var got float64
	deadline := time.Now().Add(time.Minute)
	for {
		got = scrape(r.t, p.addr, "causeway_consume_messages_total")
		if got >= float64(n) {
			return int(got)
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("read %v messages in a minute, waiting for %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitConsumed waits until the group has committed the end of the topic
// and the receiver has every event.
func (r *crashRun) waitConsumed(p *crashProc, total int) {
	r.t.Helper()
	wait.For(r.t, 2*time.Minute, 250*time.Millisecond, "every message committed", func() bool { return r.committed() == int64(total) })
	wait.For(r.t, 30*time.Second, 250*time.Millisecond, "every alert delivered", func() bool {
		return scrape(r.t, p.addr, `causeway_alert_queue_depth{receiver="hook"}`) == 0
	})
}

// committed is the group's committed offsets summed over the partitions.
func (r *crashRun) committed() int64 {
	client := &kafka.Client{Addr: kafka.TCP(r.bs...), Transport: &kafka.Transport{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: r.group, Topics: map[string][]int{r.topic: {0}}})
	if err != nil {
		return -1
	}
	var n int64
	for _, p := range res.Topics[r.topic] {
		n += max(0, p.CommittedOffset)
	}
	return n
}

// incidents are the incidents the API serves, oldest first, as
// "id state rN top-suspect".
func (r *crashRun) incidents(p *crashProc) []string {
	r.t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/incidents")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Incidents []incident.Incident }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, inc := range slices.Backward(body.Incidents) {
		top := "-"
		if len(inc.Suspects) > 0 {
			top = inc.Suspects[0].Service
		}
		out = append(out, fmt.Sprintf("%s %s r%d %s", inc.ID, inc.State, inc.Revision, top))
	}
	return out
}

// calls are the service graph's calls per edge over every closed window,
// with the last window's end, one edge a line.
func (r *crashRun) calls(p *crashProc) string {
	r.t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/graph")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var g graph.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
		r.t.Fatal(err)
	}
	lines := []string{fmt.Sprintf("last window ends %s; spans too late (this process) %v", g.WindowEnd.Format(time.TimeOnly),
		scrape(r.t, p.addr, "causeway_graph_spans_too_late_total"))}
	for _, e := range g.Edges {
		lines = append(lines, fmt.Sprintf("%s->%s %d calls %d errors p50 %.4g", e.Source, e.Target, e.Total.Requests, e.Total.Errors, e.Total.P50))
	}
	slices.Sort(lines[1:])
	return strings.Join(lines, "\n")
}

func (r *crashRun) stop(p *crashProc) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// keyedHook is a webhook receiver recording events by idempotency key.
type keyedHook struct {
	*httptest.Server
	mu    sync.Mutex
	order []string // keys, first delivery order
	desc  map[string]string
	count map[string]int // deliveries per key
	bad   []string
}

func newKeyedHook() *keyedHook {
	h := &keyedHook{desc: map[string]string{}, count: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e alert.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		d := fmt.Sprintf("%s %s %s top=%s", key, e.Kind, e.IncidentID, e.TopSuspect())
		h.mu.Lock()
		defer h.mu.Unlock()
		if key != e.ID {
			h.bad = append(h.bad, "key "+key+" for event "+e.ID)
		}
		if prev, ok := h.desc[key]; ok && prev != d {
			h.bad = append(h.bad, "key "+key+" reused: "+prev+" then "+d)
		}
		if h.count[key] == 0 {
			h.order = append(h.order, key)
			h.desc[key] = d
		}
		h.count[key]++
	}))
	return h
}

// events lists the distinct events received, by first delivery, with any
// inconsistency found.
func (h *keyedHook) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, k := range h.order {
		out = append(out, h.desc[k])
	}
	return append(out, h.bad...)
}

// duplicates counts deliveries beyond the first of each key.
func (h *keyedHook) duplicates() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.count {
		n += c - 1
	}
	return n
}
