package fleet

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph/baselines"
)

// TestWindowsTopicRetention: a member creates the windows, merged and
// leader topics keeping what the baselines remember (baselines.Horizon by
// default), and one that finds the topic a new member replays (the merged
// topic, or the windows topic without a sharded merge) keeping less warns
// at start, naming it.
func TestWindowsTopicRetention(t *testing.T) {
	c := inProcessBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Timeout: 10 * time.Second}
	node := func(windows, merged, mode string) *bytes.Buffer {
		var logs bytes.Buffer
		n, err := New(Config{Enabled: true, WindowsTopic: windows, MergedTopic: merged, LeaderTopic: windows + "_leader", Member: "m", Merge: mode},
			Options{Kafka: consume.Config{Brokers: c.ListenAddrs(), Topic: "spans"}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.ensureTopics(ctx); err != nil {
			t.Fatal(err)
		}
		return &logs
	}

	logs := node("windows", "merged", MergeSharded)
	for _, topic := range []string{"windows", "merged", "windows_leader"} {
		if got, err := topicRetention(ctx, client, topic); err != nil || got != baselines.Horizon {
			t.Errorf("%s created with retention %v (%v), want %v", topic, got, err, baselines.Horizon)
		}
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a warning for a topic this member created:\n%s", logs)
	}

	// Topics someone created keeping an hour.
	for _, topic := range []string{"short", "short_merged"} {
		resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 2, ReplicationFactor: 1,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"}}}}})
		if err != nil || resp.Errors[topic] != nil {
			t.Fatalf("create topic: %v %v", err, resp)
		}
	}
	for _, tc := range []struct{ windows, merged, mode, warned string }{
		{"short", "merged", MergeEveryMember, "short"},
		{"windows", "short_merged", MergeSharded, "short_merged"},
	} {
		logs = node(tc.windows, tc.merged, tc.mode)
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "topic="+tc.warned+" ") || !strings.Contains(logs.String(), "retention=1h0m0s") {
			t.Errorf("%s: no warning for %s keeping an hour:\n%s", tc.mode, tc.warned, logs)
		}
	}
	// A short windows topic is no loss with a sharded merge: only a
	// shard's new owner re-reads it.
	if logs = node("short", "merged", MergeSharded); strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("sharded merge, short windows topic: a warning:\n%s", logs)
	}
}

// inProcessBroker is a Kafka-protocol broker in the test's process with a
// span topic "spans" of two partitions, closed when the test ends.
func inProcessBroker(t *testing.T) *kfake.Cluster {
	t.Helper()
	// Groups in these tests use session timeouts of a second.
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "spans"),
		kfake.BrokerConfigs(map[string]string{"group.min.session.timeout.ms": "500"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestRekeyTopicTakesSpanMessages: a member re-keying batch messages
// creates the re-key topic taking messages as large as its span reader
// does, since a re-keyed segment can be about as large as the span
// message it came from.
func TestRekeyTopicTakesSpanMessages(t *testing.T) {
	c := inProcessBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keyed := false
	n, err := New(Config{Enabled: true, WindowsTopic: "w", LeaderTopic: "l", RekeyTopic: "rekey", Member: "m"},
		Options{Kafka: consume.Config{Brokers: c.ListenAddrs(), Topic: "spans", TraceKeyed: &keyed, MaxMessageBytes: 8 << 20},
			Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.ensureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	client := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Timeout: 10 * time.Second}
	resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: "rekey", ConfigNames: []string{"max.message.bytes"}}}})
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, r := range resp.Resources {
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "max.message.bytes" {
				got = e.ConfigValue
			}
		}
	}
	if got != "8388608" {
		t.Errorf("re-key topic created with max.message.bytes %q, want 8388608", got)
	}
}
