//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/internal/wait"
)

// TestIntegrationBrokerRestart: the broker is killed (SIGKILL) mid-stream
// and started again on the same data and port. The detector keeps running
// through the outage, counts it in causeway_consume_kafka_errors_total,
// and consumes every span produced before and after: at least as many
// spans as were produced (at-least-once: a batch whose commit the outage
// lost is read again), none too late for its window though the outage
// outlasts idle_advance, and the group's offsets reach the end of every
// partition. While the broker is down the lag is not exported. The test runs a broker of its own, so the others are not
// disturbed.
func TestIntegrationBrokerRestart(t *testing.T) {
	kb := startOwnBroker(t)
	bs := []string{kb.addr}
	topic := "it_restart_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	createReadyTopic(t, bs, topic, 2)

	cfg := topicDetectorConfig(bs, topic)
	_, addr, stop := startMain(t, cfg)
	defer stop()

	const before, after = 40, 40
	start := time.Now().Add(-2 * time.Minute)
	produceMessages(t, &kafka.Transport{}, bs, topic, traceMessages(t, 0, before, start, time.Second)...)
	waitMetric(t, addr, "causeway_spans_total", before*spansPerTrace)
	waitMetric(t, addr, "causeway_consume_commits_total", before)
	errsBefore := scrape(t, addr, "causeway_consume_kafka_errors_total")

	kb.run(t, "kill")
	killed := time.Now()
	// While the broker is down the detector keeps serving, and counts the
	// client's failed attempts to reach it.
	wait.Report(t, 60*time.Second, 100*time.Millisecond, "outage counted", func() (bool, string) {
		n := scrape(t, addr, "causeway_consume_kafka_errors_total")
		return n > errsBefore, fmt.Sprint(n)
	})
	// Meanwhile the lag is unknown: not exported, rather than a stale 0.
	if exported(t, addr, "causeway_consume_lag_messages") {
		t.Error("causeway_consume_lag_messages exported while the broker is down")
	}
	// The outage lasts 90 s, three times idle_advance: event time must not
	// move on with the wall clock meanwhile, or what is written after it
	// (as a Collector's buffer would be) comes too late for its windows;
	// and the client must still be trying when the broker is back.
	time.Sleep(time.Until(killed.Add(max(brokerOutage, cfg.Idle+5*time.Second))))
	t0 := time.Now()
	kb.run(t, "restart")
	t.Logf("broker restarted in %v", time.Since(t0).Round(time.Millisecond))

	produceMessages(t, &kafka.Transport{}, bs, topic, traceMessages(t, before, after, start.Add(before*time.Second), time.Second)...)
	produced := float64((before + after) * spansPerTrace)
	wait.Report(t, 120*time.Second, 100*time.Millisecond, "every span consumed and committed", func() (bool, string) {
		spans := scrape(t, addr, "causeway_spans_total")
		lag := committedLag(t, bs, cfg.Kafka.GroupID, topic, 2)
		return spans >= produced && lag == 0, fmt.Sprintf("%v of %v spans, %d messages not committed", spans, produced, lag)
	})
	late := scrape(t, addr, "causeway_graph_spans_too_late_total")
	t.Logf("spans consumed %v (produced %v), too late %v, kafka errors counted %v, outage %v",
		scrape(t, addr, "causeway_spans_total"), produced, late,
		scrape(t, addr, "causeway_consume_kafka_errors_total")-errsBefore, t0.Sub(killed).Round(time.Second))
	if late != 0 {
		t.Errorf("%v spans too late after the outage, want 0", late)
	}
}

// brokerOutage is how long TestIntegrationBrokerRestart keeps the broker
// down.
const brokerOutage = 90 * time.Second

// committedLag is how many messages of topic the group has not committed;
// -1 when the broker cannot say yet.
func committedLag(t *testing.T, bs []string, group, topic string, partitions int) int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(bs...), Transport: &kafka.Transport{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var parts []int
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		parts = append(parts, p)
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil || committed.Error != nil {
		return -1
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return -1
	}
	end := map[int]int64{}
	for _, po := range ends.Topics[topic] {
		if po.Error != nil {
			return -1
		}
		end[po.Partition] = po.LastOffset
	}
	var lag int64
	for _, p := range committed.Topics[topic] {
		if p.Error != nil {
			return -1
		}
		lag += end[p.Partition] - max(p.CommittedOffset, 0)
	}
	return lag
}

// ownBroker is a single-node Kafka started by scripts/kafka.sh for one
// test, stopped when it ends.
type ownBroker struct {
	dir, addr string
}

func startOwnBroker(t *testing.T) *ownBroker {
	t.Helper()
	// Under CAUSEWAY_IT_BROKERS_DIR, scripts/integration.sh stops the
	// broker should this test be killed before its cleanup runs.
	parent := os.Getenv("CAUSEWAY_IT_BROKERS_DIR")
	if parent == "" {
		parent = t.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "broker-")
	if err != nil {
		t.Fatal(err)
	}
	kb := &ownBroker{dir: dir}
	port, ctrl := freePort(t), freePort(t)
	t.Cleanup(func() {
		kb.run(t, "stop")
		if t.Failed() {
			t.Logf("broker files and logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	out := kb.run(t, "start", "--port", port, "--controller-port", ctrl)
	kb.addr = net.JoinHostPort("127.0.0.1", port)
	if !strings.Contains(out, "KAFKA_BROKERS="+kb.addr) {
		t.Fatalf("kafka.sh start printed %q", out)
	}
	return kb
}

// run runs scripts/kafka.sh cmd on this broker and returns its stdout.
func (kb *ownBroker) run(t *testing.T, cmd string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, filepath.Join("..", "..", "scripts", "kafka.sh"), append([]string{cmd, "--dir", kb.dir}, args...)...)
	// Not the shared broker's ports or directory, which integration.sh
	// exports.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAFKA_") {
			c.Env = append(c.Env, kv)
		}
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("kafka.sh %s: %v\n%s", cmd, err, stderr.String())
	}
	return stdout.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// exported reports whether addr's /metrics has a sample of series.
func exported(t *testing.T, addr, series string) bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, series+" ") || strings.HasPrefix(line, series+"{") {
			return true
		}
	}
	return false
}
