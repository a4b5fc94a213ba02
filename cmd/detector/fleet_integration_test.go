//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/internal/wait"
)

// TestIntegrationFleet: simulated services export to a real Collector,
// which writes a real Kafka topic with 6 partitions (trace-keyed, or
// batches); two detector processes in cluster mode and one detector alone
// read it. The fault's incident
// is the same in both; the leader is killed (SIGKILL) after announcing it;
// the survivor takes its partitions and the alerts, loses no window, and
// no event is sent twice. With batch messages (not trace-keyed), the
// fleet re-keys spans and finds the same edges as with trace-keyed ones.
// Either way its graph holds the calls the lone detector's does.
func TestIntegrationFleet(t *testing.T) {
	bin := buildDetector(t)
	edges := map[bool]string{}
	for _, keyed := range []bool{true, false} {
		t.Run(fmt.Sprintf("trace_keyed=%v", keyed), func(t *testing.T) {
			edges[keyed] = runFleet(t, bin, keyed)
		})
	}
	if edges[true] == "" || edges[true] != edges[false] {
		t.Errorf("edges with trace-keyed messages:\n%s\nwith batches:\n%s", edges[true], edges[false])
	}
}

// member is a detector process in cluster mode.
type member struct {
	name, api string
	cmd       *exec.Cmd
	log       string
	flags     []string // more flags for `detector run`
}

// start runs `detector run` with configuration conf (and state directory
// stateDir, when set) as m's process: on a new free port each time, its
// output appended to m.log after a line marking the start. The caller
// stops it.
func (m *member) start(t *testing.T, bin, conf, stateDir string) {
	t.Helper()
	m.api = freeAddr(t)
	args := []string{"run", "--config", conf, "--listen", m.api}
	if stateDir != "" {
		args = append(args, "--state-dir", stateDir)
	}
	m.cmd = exec.Command(bin, append(args, m.flags...)...)
	f, err := os.OpenFile(m.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the process has its own copy
	fmt.Fprintf(f, "----- start %s\n", time.Now().Format(time.RFC3339Nano))
	m.cmd.Stdout, m.cmd.Stderr = f, f
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// fleetConfig is the configuration the fleet tests give a detector: topic
// read from earliest as consumer group group, trace-keyed or not, idle
// advance after idle; and, unless cluster is empty, cluster membership
// with the fleet's topics named after cluster.
func fleetConfig(bs []string, topic, group string, keyed bool, idle time.Duration, cluster string) string {
	yaml := fmt.Sprintf(`kafka:
  brokers: [%s]
  topic: %s
  group_id: %s
  trace_keyed: %v
  max_clock_skew: 1h
idle_advance: %s
`, strings.Join(bs, ", "), topic, group, keyed, idle)
	if cluster != "" {
		yaml += fmt.Sprintf(`cluster:
  enabled: true
  windows_topic: windows_%s
  merged_topic: merged_%s
  leader_topic: leader_%s
  rekey_topic: rekey_%s
  session_timeout: 6s
`, cluster, cluster, cluster, cluster)
	}
	return yaml
}

func runFleet(t *testing.T, bin string, keyed bool) string {
	bs := brokers(t)
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	topic := "fleet_spans_" + suffix
	createTopic(t, bs, topic, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	produce(ctx, t, bs, topic, keyed, 12*time.Minute, 4, "latency:paymentservice:+200ms@30s/60s") // keyed: partition_traces_by_id

	hook := newEventHook(t)
	defer hook.Close()
	opened, resolved := hook.opened, hook.resolved

	dir := t.TempDir()
	conf := filepath.Join(dir, "causeway.yaml")
	yaml := fleetConfig(bs, topic, "fleet-"+suffix, keyed, 0, suffix) + fmt.Sprintf(`alerts:
  receivers:
    - name: hook
      kind: webhook
      url: %s
`, hook.URL)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var members []*member
	for _, name := range []string{"a", "b"} {
		m := &member{name: name, log: filepath.Join(dir, name+".log")}
		m.start(t, bin, conf, filepath.Join(dir, name))
		members = append(members, m)
	}
	defer func() {
		for _, m := range members {
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
			_ = m.cmd.Wait()
			if t.Failed() {
				b, _ := os.ReadFile(m.log)
				t.Logf("member %s log (tail):\n%s", m.name, tail(string(b), 4000))
			}
		}
	}()

	// The lone detector, in process.
	cfg := defaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Kafka.Brokers, cfg.Kafka.Topic, cfg.Kafka.GroupID = bs, topic, "solo-"+suffix
	cfg.Kafka.MaxClockSkew = time.Hour
	cfg.Idle = 0 // default trace_idle and lateness: the Collector's batches and six partitions arrive a little out of order
	solo := &Main{Config: cfg, Log: quietLogger(t)}
	soloDone := make(chan error, 1)
	go func() { soloDone <- solo.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-soloDone; err != nil {
			t.Errorf("lone detector: %v", err)
		}
	}()

	var first alert.Event
	select {
	case first = <-opened:
	case <-ctx.Done():
		t.Fatal("no opened event from the fleet")
	}
	var leader, survivor *member
	wait.For(t, 30*time.Second, 250*time.Millisecond, "a leader", func() bool {
		for i, m := range members {
			if scrape(t, m.api, "causeway_fleet_leader") == 1 {
				leader, survivor = m, members[1-i]
				return true
			}
		}
		return false
	})
	if keyed {
		// The survivor must have read the leader's record of the delivery
		// (an empty queue alone may just mean it has not raised the event
		// yet); a leader killed before its record is written is sent again
		// by the next, by design.
		wait.For(t, 30*time.Second, 250*time.Millisecond, "the survivor hearing of the delivery", func() bool {
			return scrape(t, survivor.api, "causeway_fleet_deliveries_heard_total") >= 1 &&
				scrape(t, survivor.api, `causeway_alert_queue_depth{receiver="hook"}`) == 0
		})
		if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		t.Logf("killed the leader %s after %s opened", leader.name, first.ID)
	}
	select {
	case <-resolved:
	case <-ctx.Done():
		t.Fatal("no resolved event")
	}
	wait.For(t, time.Minute, 250*time.Millisecond, "the lone detector resolving", func() bool {
		return len(solo.incidents.List(incident.Resolved, time.Time{}, time.Time{})) > 0 &&
			len(solo.incidents.List(incident.Open, time.Time{}, time.Time{})) == 0
	})

	// Same incidents as alone. The lone detector reads the six
	// partitions' backlog with one watermark, and drops as late the spans
	// of partitions it reads behind the others: its baselines are a little
	// off and it may open the incident a window or two later, at another
	// severity. What both must agree on is what the incident names. The
	// member asked merges the same summaries as the one that sent the
	// alerts, a moment later: it is given a little while to get there.
	var alone, fleetOnes []incident.Incident
	wait.Report(t, 30*time.Second, 250*time.Millisecond, "the fleet's incidents naming what the lone detector's name", func() (bool, string) {
		var fleetIncs struct{ Incidents []incident.Incident }
		getJSON(t, "http://"+survivor.api+"/api/v1/incidents", &fleetIncs)
		alone, fleetOnes = unmerged(solo.incidents.List("", time.Time{}, time.Time{})), unmerged(fleetIncs.Incidents)
		a, b := names(alone), names(fleetOnes)
		return len(a) > 0 && strings.Join(a, "\n") == strings.Join(b, "\n"),
			fmt.Sprintf("alone:\n%s\nin the fleet:\n%s", strings.Join(brief(alone), "\n"), strings.Join(brief(fleetOnes), "\n"))
	})
	for i := range min(len(alone), len(fleetOnes)) {
		if d := alone[i].OpenedAt.Sub(fleetOnes[i].OpenedAt).Abs(); d > 30*time.Second {
			t.Errorf("incident opened %v apart alone and in the fleet", d)
		}
	}
	if late := scrape(t, survivor.api, "causeway_fleet_late_summaries_total"); late != 0 {
		t.Errorf("survivor: %v window summaries came after the fleet stopped waiting", late)
	}
	hook.checkOnce(t)

	var snap graph.Snapshot
	getJSON(t, "http://"+survivor.api+"/api/v1/graph", &snap)
	var es []string
	var calls int64
	for _, e := range snap.Edges {
		es = append(es, e.Source+"->"+e.Target)
		calls += e.Total.Requests
	}
	slices.Sort(es)
	var soloCalls int64
	for _, e := range solo.agg.Snapshot().Edges {
		soloCalls += e.Total.Requests
	}
	// The fleet's graph holds the calls one detector's does: none lost
	// to the re-keying's order (batches) or to the leader's death
	// (trace-keyed). Batches let the lone detector split a trace whose
	// spans it reads from partitions far apart: a couple of percent
	// either way. (TestIntegrationFleetKill compares each edge with
	// replay.)
	t.Logf("calls in the graph: fleet %d, lone detector %d", calls, soloCalls)
	if soloCalls == 0 || math.Abs(float64(calls-soloCalls)) > 0.02*float64(soloCalls) {
		t.Errorf("calls in the graph: fleet %d, lone detector %d; want within 2%%", calls, soloCalls)
	}
	return strings.Join(es, "\n")
}

func unmerged(incs []incident.Incident) []incident.Incident {
	var out []incident.Incident
	for _, i := range incs {
		if i.MergedInto == "" {
			out = append(out, i)
		}
	}
	return out
}

// names is what incidents name: state and top suspect.
func names(incs []incident.Incident) []string {
	var out []string
	for _, i := range incs {
		top := ""
		if len(i.Suspects) > 0 {
			top = i.Suspects[0].Service
		}
		out = append(out, string(i.State)+" "+top)
	}
	return out
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
