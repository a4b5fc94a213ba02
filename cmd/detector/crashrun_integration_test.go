//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/internal/wait"
)

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
