package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
)

// Options are a Node's surroundings.
type Options struct {
	Kafka consume.Config // brokers, span topic, group, encoding, TLS and SASL
	Graph graph.Config   // windows and joining, as for a single detector
	// Idle is how long a partition may go without a message (once caught
	// up) before its event time follows the wall clock, minus Idle, so its
	// windows close when traffic stops. 0: never.
	Idle           time.Duration
	Log            *slog.Logger
	DecodeMetrics  *consume.Metrics      // shared by the partition workers; nil: not exported
	Registerer     prometheus.Registerer // nil: not exported
	OnWindow       func(*graph.Window)   // merged windows, in order, from one goroutine
	OnLeader       func(bool)            // this member became, or stopped being, the alert sender
	OnAcknowledged func(receiver, eventID string)
}

// Node is one member of a fleet. Run runs it; Ready, Leader and Acknowledge
// may be called from any goroutine.
type Node struct {
	cfg    Config
	opt    Options
	kcfg   consume.Config
	log    *slog.Logger
	m      *metrics
	dialer *kafka.Dialer
	tr     *kafka.Transport

	source     string // the topic partition workers read: the span topic, or the re-key topic
	partitions int    // of source
	spanParts  int    // of the span topic: the event-time sources of a re-key partition
	shards     int    // partitions of the windows topic: the shards of a sharded merge
	rekeyLimit int    // the largest message the re-key topic takes (checkRekeyLimit)
	dropLogged bool   // a dropped re-key segment was logged: once is enough

	mu     sync.Mutex
	merge  *merger       // the fleet's windows: of the partitions' summaries, or of the merged shards (Sharded)
	local  *localWindows // windows this process published, until read back
	ready  atomic.Bool
	leader atomic.Bool
	acks   *kafka.Writer

	graphMu sync.Mutex
	graphM  map[int]*graph.Metrics // per span partition, created when first owned

	// commitMu lets one partition worker at a time commit to the group's
	// coordinator. kafka-go's connection to it has one reader; a goroutine
	// whose response is not the next one spins until it is, so the
	// workers' commits, each after a window, took a fifth of a member's
	// CPU when several waited at once (make bench-fleet's profile).
	commitMu sync.Mutex
}

// graphMetrics returns the graph metrics of the workers of partition p,
// labelled with it: created and registered when a worker of p first
// runs here, kept for the next (counters go on across generations).
func (n *Node) graphMetrics(p int) *graph.Metrics {
	n.graphMu.Lock()
	defer n.graphMu.Unlock()
	if n.graphM == nil {
		n.graphM = map[int]*graph.Metrics{}
	}
	m, ok := n.graphM[p]
	if !ok {
		m = graph.NewPartitionMetrics(n.opt.Registerer, p)
		n.graphM[p] = m
	}
	return m
}

// New checks the configuration; Run connects.
func New(cfg Config, opt Options) (*Node, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kcfg := opt.Kafka.WithDefaults()
	if err := kcfg.Validate(); err != nil {
		return nil, err
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.OnWindow == nil {
		opt.OnWindow = func(*graph.Window) {}
	}
	dialer, err := kcfg.Dialer()
	if err != nil {
		return nil, err
	}
	tr, err := kcfg.Transport()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, opt: opt, kcfg: kcfg, local: newLocalWindows(), log: opt.Log.With("member", cfg.Member), m: newMetrics(opt.Registerer),
		dialer: dialer, tr: tr, source: kcfg.Topic}
	if !kcfg.IsTraceKeyed() {
		n.source = cfg.RekeyTopic
	}
	return n, nil
}

// Ready reports whether the node has read every summary published before
// it started (its graph, baselines and incidents are those of the fleet).
func (n *Node) Ready() error {
	if !n.ready.Load() {
		return errors.New("catching up with the fleet's window summaries")
	}
	return nil
}

// Leader reports whether this member sends the alerts.
func (n *Node) Leader() bool { return n.leader.Load() }

// Acknowledge records on the leader topic that eventID reached receiver,
// so no later leader sends it again. Called by the leader's notifier.
func (n *Node) Acknowledge(receiver, eventID string) {
	n.mu.Lock()
	w := n.acks
	n.mu.Unlock()
	if w == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("ack"), Value: []byte(receiver + "\x00" + eventID)}); err != nil {
		n.m.errors.WithLabelValues("ack").Inc()
		n.log.Warn("record delivered alert on the leader topic; a new leader may send it again", "event", eventID, "err", err)
	}
}

// Run joins the fleet and works until ctx ends: it creates missing topics,
// reads every window summary published so far, then takes its share of
// the span partitions and runs for the alert-sender role.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var spanParts int
	for attempt := 1; ; attempt++ { // the brokers may still be starting
		var err error
		if spanParts, err = n.ensureTopics(ctx); err == nil {
			break
		}
		if attempt == 30 || ctx.Err() != nil {
			return err
		}
		n.log.Warn("prepare fleet topics; retrying", "err", err)
		if !sleep(ctx, 2*time.Second) {
			return nil
		}
	}
	n.partitions = spanParts
	sources, wait := spanParts, n.cfg.MaxWindowWait
	if n.cfg.Sharded() {
		// The shards' mergers stop waiting for a silent span partition;
		// a shard is always waited for: when its merger goes, the group
		// hands the shard to another member within the session timeout,
		// which resumes from the shard's last commit.
		sources, wait = n.shards, 0
	}
	n.merge = newMerger(sources, wait, time.Now, func(w *graph.Window) {
		n.m.merged.Inc()
		n.opt.OnWindow(w)
	})
	n.merge.onLate = n.onLate
	out := n.summaryWriter(n.cfg.WindowsTopic)
	defer out.Close()
	merged := n.summaryWriter(n.cfg.MergedTopic) // written only by a sharded merge
	defer merged.Close()
	n.mu.Lock()
	n.acks = &kafka.Writer{Addr: kafka.TCP(n.kcfg.Brokers...), Topic: n.cfg.LeaderTopic, Balancer: &kafka.LeastBytes{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, WriteTimeout: 10 * time.Second, Transport: n.tr}
	n.mu.Unlock()
	defer n.acks.Close()

	var wg sync.WaitGroup
	errc := make(chan error, 8)
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	defer wg.Wait()

	acksRead := make(chan struct{})
	goRun("leader topic", func(ctx context.Context) error { return n.readAcks(ctx, acksRead) })
	caughtUp := make(chan struct{})
	goRun("window summaries", func(ctx context.Context) error { return n.readSummaries(ctx, caughtUp) })
	for _, ch := range []chan struct{}{acksRead, caughtUp} {
		select {
		case <-ch:
		case <-ctx.Done():
			return n.firstErr(errc)
		}
	}
	n.ready.Store(true)
	n.log.Info("fleet member caught up", "span_topic", n.source, "partitions", spanParts, "merge", n.cfg.Merge, "shards", n.shards)
	if !n.kcfg.IsTraceKeyed() {
		goRun("re-key", n.rekey)
	}
	if n.cfg.Sharded() {
		// Shards are taken once the merged windows are read: a shard's
		// worker starts from the shard's watermark this member has read.
		goRun("shard merge", func(ctx context.Context) error { return n.mergeShards(ctx, merged) })
	}
	goRun("leader election", n.elect)
	goRun("span partitions", func(ctx context.Context) error { return n.consume(ctx, out) })
	<-ctx.Done()
	return n.firstErr(errc)
}

// summaryWriter writes summaries to topic: a summary naming its shard
// (headerShard) to that partition, any other by its key.
func (n *Node) summaryWriter(topic string) *kafka.Writer {
	return &kafka.Writer{Addr: kafka.TCP(n.kcfg.Brokers...), Topic: topic, Balancer: &shardBalancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchBytes: int64(n.cfg.MaxMessageBytes) * 2,
		WriteTimeout: 15 * time.Second, Transport: n.tr}
}

// onLate counts a window part a merger dropped, and logs one that came
// after the merger stopped waiting for its partition (or shard).
func (n *Node) onLate(source string, p int, start time.Time, repeat bool) {
	if repeat {
		n.m.repeated.Inc()
		return
	}
	n.m.lateParts.Inc()
	n.log.Warn("window summary after the fleet stopped waiting for its partition; its calls are missing", "partition", p, "window", start)
}

// publish writes summaries, retrying until the broker takes them; false
// when ctx ended first. what and attrs name them in the log. A retry
// writes only the messages that failed: those of one write go to several
// partitions (the shards), and a part written twice would be merged
// twice.
func (n *Node) publish(ctx context.Context, out *kafka.Writer, msgs []kafka.Message, what string, attrs ...any) bool {
	for attempt := 1; ; attempt++ {
		err := out.WriteMessages(ctx, msgs...)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var each kafka.WriteErrors
		if errors.As(err, &each) && len(each) == len(msgs) {
			var failed []kafka.Message
			for i, e := range each {
				if e != nil {
					failed = append(failed, msgs[i])
				}
			}
			msgs = failed
		}
		n.m.errors.WithLabelValues("publish").Inc()
		if attempt == 1 {
			n.log.Warn("publish "+what+"; retrying", append(attrs, "err", err)...)
		}
		if !sleep(ctx, min(time.Duration(attempt)*time.Second, 10*time.Second)) {
			return false
		}
	}
}

func (n *Node) firstErr(errc chan error) error {
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// checkRetention warns when the topic a new member replays (the merged
// topic, or the windows topic without a sharded merge) keeps less than
// WindowsRetention: a member starting later rebuilds the baselines from
// less history than they remember. A broker that cannot say is noted at
// debug level only.
func (n *Node) checkRetention(ctx context.Context) {
	topic := n.cfg.ReplayedTopic()
	got, err := topicRetention(ctx, n.admin(), topic)
	switch {
	case err != nil:
		n.log.Debug("cannot read the retention of the topic a new member replays", "topic", topic, "err", err)
	case got >= 0 && got < n.cfg.WindowsRetention:
		n.log.Warn("the topic a new member replays keeps less than the baselines remember: a member started later rebuilds them from less history (raise its retention.ms)",
			"topic", topic, "retention", got, "want", n.cfg.WindowsRetention)
	}
}

// admin is a client for asking the brokers about topics.
func (n *Node) admin() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(n.kcfg.Brokers...), Transport: n.tr, Timeout: 10 * time.Second}
}

// topicRetention reads a topic's retention.ms; -1 means unlimited.
func topicRetention(ctx context.Context, c *kafka.Client, topic string) (time.Duration, error) {
	v, err := topicConfig(ctx, c, topic, "retention.ms")
	if err != nil {
		return 0, err
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("retention.ms %q: %w", v, err)
	}
	if ms < 0 {
		return -1, nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// topicConfig reads one of a topic's configs; one the brokers do not
// list is an error.
func topicConfig(ctx context.Context, c *kafka.Client, topic, name string) (string, error) {
	v, found, err := consume.TopicConfig(ctx, c, topic, name)
	if err == nil && !found {
		err = fmt.Errorf("topic %s: no %s in its configs", topic, name)
	}
	return v, err
}

// checkRekeyLimit reads the largest message the re-key topic takes (its
// max.message.bytes), which bounds what the re-key stage writes, and
// warns when it is below the span reader's: a re-keyed segment is about
// as large as the span message it came from, and one the topic does not
// take is dropped and counted (causeway_fleet_rekey_dropped_spans_total).
func (n *Node) checkRekeyLimit(ctx context.Context) {
	n.rekeyLimit = n.kcfg.MaxMessageBytes // what the topic is created with
	v, err := topicConfig(ctx, n.admin(), n.cfg.RekeyTopic, "max.message.bytes")
	if err != nil {
		n.log.Debug("cannot read the re-key topic's max.message.bytes", "topic", n.cfg.RekeyTopic, "err", err)
		return
	}
	limit, err := strconv.Atoi(v)
	if err != nil || limit <= 0 {
		n.log.Debug("the re-key topic's max.message.bytes is not a size", "topic", n.cfg.RekeyTopic, "value", v)
		return
	}
	n.rekeyLimit = limit
	if limit < n.kcfg.MaxMessageBytes {
		n.log.Warn("the re-key topic takes smaller messages than the span reader: a re-keyed part of a larger span message is dropped and counted (raise the topic's max.message.bytes to kafka.max_message_bytes)",
			"topic", n.cfg.RekeyTopic, "max_message_bytes", limit, "kafka_max_message_bytes", n.kcfg.MaxMessageBytes)
	}
}

// ensureTopics creates the fleet's topics when missing and returns the
// partition count of the topic the workers read.
func (n *Node) ensureTopics(ctx context.Context) (int, error) {
	conn, err := n.dialer.DialContext(ctx, "tcp", n.kcfg.Brokers[0])
	if err != nil {
		return 0, fmt.Errorf("connect to kafka: %w", err)
	}
	defer conn.Close()
	// Count partitions from the list of every topic: asking for one topic
	// by name would have a broker that auto-creates topics create it, with
	// its default partition count.
	count := func(topic string) (int, error) {
		ps, err := conn.ReadPartitions()
		if err != nil {
			return 0, err
		}
		n := 0
		for _, p := range ps {
			if p.Topic == topic {
				n++
			}
		}
		return n, nil
	}
	spans, err := count(n.kcfg.Topic)
	if err != nil || spans == 0 {
		return 0, fmt.Errorf("span topic %s: %v (create it first; its partition count bounds the fleet)", n.kcfg.Topic, err)
	}
	n.spanParts = spans
	ctrl, err := conn.Controller()
	if err != nil {
		return 0, fmt.Errorf("find kafka controller: %w", err)
	}
	cc, err := n.dialer.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return 0, fmt.Errorf("connect to kafka controller: %w", err)
	}
	defer cc.Close()
	retention := []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: strconv.FormatInt(n.cfg.WindowsRetention.Milliseconds(), 10)}}
	want := []kafka.TopicConfig{{Topic: n.cfg.LeaderTopic, NumPartitions: 1, ReplicationFactor: -1, ConfigEntries: retention}}
	wp := n.cfg.WindowsPartitions
	if wp == 0 {
		wp = spans
	}
	want = append(want, kafka.TopicConfig{Topic: n.cfg.WindowsTopic, NumPartitions: wp, ReplicationFactor: -1, ConfigEntries: retention})
	if n.cfg.Sharded() {
		want = append(want, kafka.TopicConfig{Topic: n.cfg.MergedTopic, NumPartitions: wp, ReplicationFactor: -1, ConfigEntries: retention})
	}
	if !n.kcfg.IsTraceKeyed() {
		// A re-keyed segment is at most about as large as the span message
		// it came from (a subset of its spans, each resource once): the
		// topic takes messages as large as the span reader does.
		want = append(want, kafka.TopicConfig{Topic: n.cfg.RekeyTopic, NumPartitions: spans, ReplicationFactor: -1,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(n.kcfg.MaxMessageBytes)}}})
	}
	for _, tc := range want {
		if p, err := count(tc.Topic); err == nil && p > 0 {
			continue
		}
		if err := cc.CreateTopics(tc); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return 0, fmt.Errorf("create topic %s: %w", tc.Topic, err)
		}
		n.log.Info("created topic", "topic", tc.Topic, "partitions", tc.NumPartitions, "configs", tc.ConfigEntries)
	}
	n.checkRetention(ctx)
	if !n.kcfg.IsTraceKeyed() {
		n.checkRekeyLimit(ctx)
	}
	// Topic metadata can lag a creation by a moment.
	settled := func(topic string) (int, error) {
		for i := 0; ; i++ {
			p, err := count(topic)
			if err == nil && p > 0 {
				return p, nil
			}
			if i == 50 {
				return 0, fmt.Errorf("topic %s: %v", topic, err)
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if n.shards, err = settled(n.cfg.WindowsTopic); err != nil {
		return 0, err
	}
	return settled(n.source)
}

// lastOffsets returns each partition's end offset now.
func (n *Node) lastOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	conn, err := n.dialer.DialContext(ctx, "tcp", n.kcfg.Brokers[0])
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ps, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, p := range ps {
		pc, err := n.dialer.DialLeader(ctx, "tcp", n.kcfg.Brokers[0], topic, p.ID)
		if err != nil {
			return nil, err
		}
		last, err := pc.ReadLastOffset()
		pc.Close()
		if err != nil {
			return nil, err
		}
		out[p.ID] = last
	}
	return out, nil
}

// readAll reads every partition of topic from the beginning, handing each
// message to apply on one goroutine, and closes caughtUp once the messages
// that were there at the start have been applied.
func (n *Node) readAll(ctx context.Context, topic string, caughtUp chan struct{}, apply func(kafka.Message)) error {
	// Right after a topic is created, its partitions may still be
	// electing leaders: retry for a while before giving up.
	var ends map[int]int64
	for attempt := 1; ; attempt++ {
		var err error
		if ends, err = n.lastOffsets(ctx, topic); err == nil {
			break
		}
		if attempt == 60 || ctx.Err() != nil {
			return fmt.Errorf("read end offsets of %s: %w", topic, err)
		}
		n.log.Debug("read end offsets; retrying", "topic", topic, "err", err)
		if !sleep(ctx, 500*time.Millisecond) {
			return nil
		}
	}
	behind := 0
	for _, e := range ends {
		if e > 0 {
			behind++
		}
	}
	msgs := make(chan kafka.Message, 256)
	var wg sync.WaitGroup
	defer wg.Wait()
	for p := range ends {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: n.kcfg.Brokers, Topic: topic, Partition: p, Dialer: n.dialer,
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 2 * time.Second, StartOffset: kafka.FirstOffset,
			Logger: kafka.LoggerFunc(func(string, ...any) {})})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						n.log.Warn("read fleet topic", "topic", topic, "partition", p, "err", err)
					}
					return
				}
				select {
				case msgs <- m:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if behind == 0 {
		close(caughtUp)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			apply(m)
			if behind > 0 && ends[m.Partition] > 0 && m.Offset+1 >= ends[m.Partition] {
				ends[m.Partition] = 0
				if behind--; behind == 0 {
					close(caughtUp)
				}
			}
		}
	}
}

// readSummaries feeds the merger. A summary it cannot read is counted (causeway_fleet_errors_total
// {stage="summary"}) and skipped, never merged in part; the first of each
// kind is logged (a newer format during an upgrade, an unversioned one, a
// malformed one), not every one.
func (n *Node) readSummaries(ctx context.Context, caughtUp chan struct{}) error {
	logged := map[string]bool{}
	return n.readAll(ctx, n.cfg.ReplayedTopic(), caughtUp, func(m kafka.Message) {
		if w, p, ok := n.local.take(m.Headers); ok {
			n.mu.Lock()
			n.merge.hear(p)
			if w != nil { // the first part: the whole window
				n.merge.addWindow(n.source, p, w)
			}
			n.mu.Unlock()
			return
		}
		s, err := decodeSummary(m.Value)
		if err == nil && s.Source == n.source {
			n.mu.Lock()
			err = n.merge.add(s)
			n.mu.Unlock()
		}
		if err != nil {
			n.unreadable(logged, m, err)
		}
	})
}

// unreadable counts a summary that could not be read (causeway_fleet_errors_total
// {stage="summary"}) and logs the first of its kind seen by the caller
// (logged): a newer format during an upgrade, an unversioned one, a
// malformed one.
func (n *Node) unreadable(logged map[string]bool, m kafka.Message, err error) {
	n.m.errors.WithLabelValues("summary").Inc()
	kind := "malformed"
	var newer *newerFormatError
	switch {
	case errors.As(err, &newer):
		kind = fmt.Sprintf("format %d", newer.format)
	case errors.Is(err, errNoFormat):
		kind = "unversioned"
	}
	if !logged[kind] {
		logged[kind] = true
		n.log.Error("unreadable window summary; skipped, and further ones of this kind counted in causeway_fleet_errors_total{stage=\"summary\"} without a log line",
			"kind", kind, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
	}
}

// readAcks passes on the deliveries the leaders recorded.
func (n *Node) readAcks(ctx context.Context, caughtUp chan struct{}) error {
	return n.readAll(ctx, n.cfg.LeaderTopic, caughtUp, func(m kafka.Message) {
		receiver, id, ok := cut(string(m.Value))
		if !ok {
			return
		}
		if n.opt.OnAcknowledged != nil {
			n.opt.OnAcknowledged(receiver, id)
		}
		n.m.acks.Inc()
	})
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// closedTo is what this member has read of partition p's watermark: the
// partition's own, or with a sharded merge the least of the shards' (no
// shard has merged past what p published, so windows of p ending at or
// before it are published; a worker starting there may publish again
// what p published after it, which the shards drop as repeats).
func (n *Node) closedTo(p int) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.cfg.Sharded() {
		return n.merge.closedTo[p]
	}
	lo := int64(-1)
	for s := range n.shards {
		if c := n.merge.closedTo[s]; lo < 0 || c < lo {
			lo = c
		}
	}
	return max(lo, 0)
}

// shardClosedTo is what this member has read of shard s's watermark: its
// merged windows ending at or before it are published.
func (n *Node) shardClosedTo(s int) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.merge.closedTo[s]
}

// groupConfig is the consumer group settings shared by the span and
// leader groups.
func (n *Node) groupConfig(id, topic string) kafka.ConsumerGroupConfig {
	return kafka.ConsumerGroupConfig{ID: id, Brokers: n.kcfg.Brokers, Dialer: n.dialer, Topics: []string{topic},
		SessionTimeout: n.cfg.SessionTimeout, RebalanceTimeout: n.cfg.SessionTimeout, HeartbeatInterval: n.cfg.SessionTimeout / 5,
		JoinGroupBackoff: time.Second, StartOffset: kafka.FirstOffset, WatchPartitionChanges: true, PartitionWatchInterval: 10 * time.Second,
		Logger: kafka.LoggerFunc(func(string, ...any) {})}
}

// elect holds this member in the leader group; the member assigned the
// leader topic's partition sends alerts until the next rebalance.
func (n *Node) elect(ctx context.Context) error {
	g, err := kafka.NewConsumerGroup(n.groupConfig(n.kcfg.GroupID+"-leader", n.cfg.LeaderTopic))
	if err != nil {
		return err
	}
	defer g.Close()
	set := func(on bool) {
		if n.leader.Swap(on) != on {
			n.log.Info("alert sender role", "leader", on)
			n.m.leader.Set(b2f(on))
			if n.opt.OnLeader != nil {
				n.opt.OnLeader(on)
			}
		}
	}
	defer set(false)
	for {
		gen, err := g.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			set(false)
			n.log.Warn("leader group", "err", err)
			continue
		}
		set(len(gen.Assignments[n.cfg.LeaderTopic]) > 0)
		done := make(chan struct{})
		gen.Start(func(ctx context.Context) { <-ctx.Done(); close(done) })
		select {
		case <-done:
			set(false)
		case <-ctx.Done():
			return nil
		}
	}
}

// consume takes this member's share of the source partitions: one worker
// per assigned partition, started on assignment and stopped on revocation.
func (n *Node) consume(ctx context.Context, out *kafka.Writer) error {
	onError := func() {
		if n.opt.DecodeMetrics != nil {
			n.opt.DecodeMetrics.KafkaError()
		}
	}
	return n.eachGeneration(ctx, n.kcfg.GroupID, n.source, "span partitions", n.m.owned, onError,
		func(gen *kafka.Generation, a kafka.PartitionAssignment) func(context.Context) {
			return (&worker{n: n, gen: gen, partition: a.ID, offset: a.Offset, out: out}).run
		})
}

// eachGeneration holds this member in consumer group id on topic and, for
// each generation, starts work on every partition the group assigns it;
// what names the partitions in logs, owned counts them. onError, if set,
// sees each failed generation.
func (n *Node) eachGeneration(ctx context.Context, id, topic, what string, owned prometheus.Gauge, onError func(),
	work func(*kafka.Generation, kafka.PartitionAssignment) func(context.Context)) error {
	g, err := kafka.NewConsumerGroup(n.groupConfig(id, topic))
	if err != nil {
		return err
	}
	defer g.Close()
	for {
		gen, err := g.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if onError != nil {
				onError()
			}
			n.log.Warn(what+": consumer group", "group", id, "err", err)
			continue
		}
		assigned := gen.Assignments[topic]
		owned.Set(float64(len(assigned)))
		ids := make([]int, 0, len(assigned))
		for _, a := range assigned {
			ids = append(ids, a.ID)
		}
		n.log.Info(what+" assigned", "generation", gen.ID, "partitions", ids)
		for _, a := range assigned {
			gen.Start(work(gen, a))
		}
		if len(assigned) == 0 {
			gen.Start(func(ctx context.Context) { <-ctx.Done() })
		}
	}
}

// kafkaErrors is the error logger of the fleet's Kafka clients: it counts
// each error the client retries in causeway_consume_kafka_errors_total, as
// a single detector does, and logs it at debug level (a broker outage
// repeats them every second).
func (n *Node) kafkaErrors() kafka.Logger {
	return kafka.LoggerFunc(func(f string, a ...any) {
		if n.opt.DecodeMetrics != nil {
			n.opt.DecodeMetrics.KafkaError()
		}
		n.log.Debug("kafka client error", "detail", fmt.Sprintf(f, a...))
	})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
