package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/statefs"
)

// A checkpoint is everything the detector has derived from the messages
// before some offset of each partition, in one file written atomically:
// the baselines, the graph's open windows and pending traces, and the
// incidents. The protocol (docs/operations.md, "Crash safety"):
//
//  1. on the graph's goroutine, between two messages, the state is
//     serialised together with the next offset of every partition;
//  2. a writer goroutine makes the alert outbox and ledger durable, writes
//     the checkpoint file (temporary file, fsync, rename, directory fsync);
//  3. only then are those offsets committed to Kafka.
//
// After a crash the detector loads the checkpoint and reads from the
// committed offsets; messages below the checkpoint's own offsets (the
// commit had not happened yet) are skipped, so each message is applied to
// the state exactly once. The same holds for messages a consumer-group
// rebalance hands out again while the detector runs: every message below
// the next offset the state expects of its partition is skipped.
const (
	checkpointFile    = "checkpoint.snap"
	checkpointMagic   = "causeway-checkpoint"
	checkpointVersion = 1
)

type checkpointData struct {
	Magic   string
	Version int
	Seq     int64
	At      time.Time // wall clock
	Topic   string
	Group   string
	// Next is, per partition, the offset of the first message the state
	// has not seen.
	Next      map[int]int64
	Baselines []byte // graph.Baselines.Save
	Graph     []byte // graph.Aggregator.SaveState
	Incidents []byte // incident.Manager.SaveState
}

// pipelineState is what a checkpoint captures and restores.
type pipelineState struct {
	agg       *graph.Aggregator
	bs        *graph.Baselines
	incidents *incident.Manager
}

// capture serialises the state; call it on the graph's goroutine.
func (p pipelineState) capture(cp *checkpointData) error {
	// The graph first: with several workers it waits until every window
	// closed so far has been scored and its incidents updated.
	var b, g, i bytes.Buffer
	if err := p.agg.SaveState(&g); err != nil {
		return err
	}
	if err := p.bs.Save(&b); err != nil {
		return err
	}
	if err := p.incidents.SaveState(&i); err != nil {
		return err
	}
	cp.Baselines, cp.Graph, cp.Incidents = b.Bytes(), g.Bytes(), i.Bytes()
	return nil
}

// restore loads a checkpoint's state, without the graph's unless
// withGraph; it changes nothing on error, except that the baselines may be
// loaded when a later part fails.
func (p pipelineState) restore(cp *checkpointData, withGraph bool) error {
	if err := p.bs.Load(bytes.NewReader(cp.Baselines)); err != nil {
		return err
	}
	if withGraph {
		if err := p.agg.LoadState(bytes.NewReader(cp.Graph)); err != nil {
			return err
		}
	}
	return p.incidents.LoadState(bytes.NewReader(cp.Incidents))
}

func encodeCheckpoint(cp *checkpointData) ([]byte, error) {
	var buf bytes.Buffer
	z, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err := gob.NewEncoder(z).Encode(cp); err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	if err := z.Close(); err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	return buf.Bytes(), nil
}

// readCheckpoint reads the checkpoint at path; nil, nil when there is none.
func readCheckpoint(path string) (*checkpointData, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	var cp checkpointData
	if err := gob.NewDecoder(z).Decode(&cp); err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	if _, err := io.Copy(io.Discard, z); err != nil { // checks the gzip trailer
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	switch {
	case cp.Magic != checkpointMagic:
		return nil, fmt.Errorf("read checkpoint %s: not a checkpoint", path)
	case cp.Version != checkpointVersion:
		return nil, fmt.Errorf("read checkpoint %s: version %d, this build reads %d", path, cp.Version, checkpointVersion)
	}
	return &cp, nil
}

// checkpointMetrics show whether state is being saved.
type checkpointMetrics struct {
	results     *prometheus.CounterVec // ok, failed, busy
	lastOK      prometheus.Gauge
	duration    prometheus.Gauge
	size        prometheus.Gauge
	uncommitted prometheus.Gauge
	skipped     prometheus.Counter
}

func newCheckpointMetrics(reg prometheus.Registerer) *checkpointMetrics {
	m := &checkpointMetrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_checkpoints_total",
			Help: "State checkpoints, by result: ok (written, offsets committed), failed (not written: the disk is full or failing; offsets not committed), busy (skipped: the previous one was still being written)."},
			[]string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_checkpoint_last_success_timestamp_seconds",
			Help: "When the last checkpoint was written (Unix seconds, wall clock); 0 before the first."}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_checkpoint_write_seconds",
			Help: "How long the last checkpoint took to write and sync."}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_checkpoint_bytes",
			Help: "Size of the last checkpoint written."}),
		uncommitted: prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_checkpoint_uncommitted_messages",
			Help: "Messages applied but not yet covered by a checkpoint, so not committed: what a crash now would read again."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_checkpoint_skipped_messages_total",
			Help: "Messages read again (after a restart, or a rebalance) that the state already held: skipped, not applied twice."}),
	}
	for _, r := range []string{"ok", "failed", "busy"} {
		m.results.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.results, m.lastOK, m.duration, m.size, m.uncommitted, m.skipped)
	}
	return m
}

// checkpointer takes checkpoints of the pipeline and commits the offsets
// they cover. take runs on the graph's goroutine; run writes in the
// background, so a slow disk does not hold up consumption.
type checkpointer struct {
	dir   string
	fs    statefs.FS
	state pipelineState
	topic string
	group string
	m     *checkpointMetrics
	flog  *statefs.FaultLog
	log   *slog.Logger
	// commit commits offsets (the Kafka consumer's Commit).
	commit func(ctx context.Context, messages int, ps ...consume.Position) error
	// durable makes the alert outbox and ledger durable; nil when there
	// are no receivers.
	durable func() error

	// graph goroutine only
	seq     int64
	next    map[int]int64 // per partition, the offset of the first message the state has not seen
	resumed map[int]bool  // partitions restored from a checkpoint and not read since
	applied int           // messages read since the last capture

	work chan *pendingCheckpoint // holds at most one
	mu   sync.Mutex              // serialises write
	// owed counts messages captured in checkpoints written or failed but
	// not yet committed; changed by write (under mu), read by applied.
	owed atomic.Int64
}

type pendingCheckpoint struct {
	data     checkpointData
	pos      []consume.Position
	messages int
}

func newCheckpointer(dir string, fs statefs.FS, st pipelineState, kc consume.Config, reg prometheus.Registerer, log *slog.Logger) *checkpointer {
	kc = kc.WithDefaults()
	return &checkpointer{dir: dir, fs: statefs.Or(fs), state: st, topic: kc.Topic, group: kc.GroupID, m: newCheckpointMetrics(reg),
		flog: &statefs.FaultLog{Log: log, What: "write checkpoint"}, log: log,
		next: map[int]int64{}, resumed: map[int]bool{}, work: make(chan *pendingCheckpoint, 1)}
}

// restore loads the checkpoint in dir, if any, into the pipeline. A
// checkpoint that cannot be read is set aside and false returned: the
// caller falls back to the baseline snapshot. Without stream (a source
// whose offsets and event time start afresh, as the embedded demo's), only
// baselines and incidents are restored.
func (c *checkpointer) restore(stream bool) bool {
	path := filepath.Join(c.dir, checkpointFile)
	cp, err := readCheckpoint(path)
	if err == nil && cp != nil && stream && (cp.Topic != c.topic || cp.Group != c.group) {
		c.log.Warn("checkpoint is of another topic or group; not restored", "path", path, "topic", cp.Topic, "group", cp.Group)
		return false
	}
	if err == nil && cp != nil {
		err = c.state.restore(cp, stream)
	}
	var other *graph.OtherWindowError
	switch {
	case errors.As(err, &other):
		aside := setAside(path, other)
		c.log.Warn("checkpoint learned from windows of another length; relearning", "path", path,
			"checkpoint_window", other.Snapshot, "window", other.Running, "moved_to", aside)
		return false
	case err != nil:
		aside := path + ".unreadable"
		_ = os.Rename(path, aside)
		c.log.Error("checkpoint unreadable; starting from the baseline snapshot", "path", path, "moved_to", aside, "err", err)
		return false
	case cp == nil:
		return false
	}
	c.seq = cp.Seq
	if stream {
		for p, next := range cp.Next {
			c.next[p], c.resumed[p] = next, true
		}
	}
	edges, ops := c.state.bs.Len()
	c.log.Info("checkpoint restored", "path", path, "seq", cp.Seq, "taken", cp.At, "next_offsets", cp.Next,
		"edges", edges, "operations", ops, "incidents", len(c.state.incidents.List("", time.Time{}, time.Time{})))
	return true
}

// admit says whether b is new to the state (then the caller applies it)
// or was already in it (then it is skipped): read again after a restart
// from a checkpoint the commit had not followed yet, or after a rebalance.
// Either way its offset is committed with the next checkpoint.
func (c *checkpointer) admit(b *consume.Batch) bool {
	c.applied++
	c.m.uncommitted.Set(float64(int64(c.applied) + c.owed.Load()))
	next, known := c.next[b.Partition]
	if known && b.Offset < next {
		c.m.skipped.Inc()
		return false
	}
	if c.resumed[b.Partition] {
		delete(c.resumed, b.Partition)
		if b.Offset > next {
			// Offsets may skip a few (transaction markers); many mean
			// the state directory is older than the group's offsets.
			c.log.Warn("first offset read is past the restored checkpoint: messages in between are not in the state unless they were transaction markers",
				"partition", b.Partition, "checkpoint_next", next, "first_read", b.Offset)
		}
	}
	c.next[b.Partition] = b.Offset + 1
	return true
}

// take captures the state and hands it to the writer. When the previous
// checkpoint is still being written it skips this one (counted): the next
// tick tries again. Call it on the graph's goroutine.
func (c *checkpointer) take() {
	if len(c.work) > 0 {
		c.m.results.WithLabelValues("busy").Inc()
		return
	}
	pc, err := c.capture()
	if err != nil {
		c.m.results.WithLabelValues("failed").Inc()
		c.flog.Failed(err)
		return
	}
	select {
	case c.work <- pc:
	default:
		c.m.results.WithLabelValues("busy").Inc()
	}
}

func (c *checkpointer) capture() (*pendingCheckpoint, error) {
	c.seq++
	pc := &pendingCheckpoint{data: checkpointData{Magic: checkpointMagic, Version: checkpointVersion, Seq: c.seq, At: time.Now().UTC(),
		Topic: c.topic, Group: c.group, Next: map[int]int64{}}, messages: c.applied}
	parts := make([]int, 0, len(c.next))
	for p := range c.next {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		pc.data.Next[p] = c.next[p]
		// Committing where the state is; for a partition not read since
		// the restore that is where the checkpoint was already.
		pc.pos = append(pc.pos, consume.Position{Topic: c.topic, Partition: p, Offset: c.next[p] - 1})
	}
	if err := c.state.capture(&pc.data); err != nil {
		return nil, err
	}
	c.applied = 0
	return pc, nil
}

// run writes the checkpoints take hands over until ctx ends.
func (c *checkpointer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case pc := <-c.work:
			c.write(ctx, pc)
		}
	}
}

// final takes and writes a last checkpoint synchronously, once run has
// returned and nothing feeds the graph any more.
func (c *checkpointer) final(ctx context.Context) {
	select {
	case pc := <-c.work: // taken, never written: superseded by this one
		c.applied += pc.messages
	default:
	}
	pc, err := c.capture()
	if err != nil {
		c.m.results.WithLabelValues("failed").Inc()
		c.flog.Failed(err)
		return
	}
	c.write(ctx, pc)
}

// write makes the alert outbox durable, writes the checkpoint, and then
// commits the offsets it covers. A failure leaves the offsets uncommitted:
// a crash before the next good checkpoint reads those messages again.
func (c *checkpointer) write(ctx context.Context, pc *pendingCheckpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	owed := c.owed.Add(int64(pc.messages))
	start := time.Now()
	err := c.persist(pc)
	if err != nil {
		c.m.results.WithLabelValues("failed").Inc()
		c.flog.Failed(err, "path", filepath.Join(c.dir, checkpointFile), "uncommitted_messages", owed)
		return
	}
	c.m.duration.Set(time.Since(start).Seconds())
	if len(pc.pos) > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = c.commit(cctx, int(owed), pc.pos...)
		cancel()
		if err != nil {
			// The checkpoint is written; the next one commits these too.
			c.m.results.WithLabelValues("failed").Inc()
			c.flog.Failed(err, "stage", "commit")
			return
		}
	}
	c.owed.Add(-owed)
	c.m.results.WithLabelValues("ok").Inc()
	c.m.lastOK.Set(float64(time.Now().UnixNano()) / 1e9)
	c.flog.Succeeded("seq", pc.data.Seq)
	c.log.Debug("checkpoint written", "seq", pc.data.Seq, "next_offsets", pc.data.Next, "took", time.Since(start))
}

func (c *checkpointer) persist(pc *pendingCheckpoint) error {
	if c.durable != nil {
		if err := c.durable(); err != nil {
			return fmt.Errorf("alert outbox: %w", err)
		}
	}
	b, err := encodeCheckpoint(&pc.data)
	if err != nil {
		return err
	}
	if err := c.fs.WriteFile(filepath.Join(c.dir, checkpointFile), b); err != nil {
		return err
	}
	c.m.size.Set(float64(len(b)))
	// The baselines alone as well, as older builds and `replay` read them.
	if err := c.fs.WriteFile(filepath.Join(c.dir, baselineFile), pc.data.Baselines); err != nil {
		return err
	}
	return nil
}
