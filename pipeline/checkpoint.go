package pipeline

import (
	"context"
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
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/statefs"
)

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

// Checkpointer takes checkpoints of the pipeline and commits the offsets
// they cover (the protocol above). A Driver takes them on the graph's
// goroutine and runs the writer in the background, so a slow disk does not
// hold up consumption.
type Checkpointer struct {
	dir   string
	fs    statefs.FS
	state State
	topic string
	group string
	m     *checkpointMetrics
	flog  *statefs.FaultLog
	log   *slog.Logger
	// commit commits offsets: the Driver's, set when it takes the
	// checkpointer.
	commit func(ctx context.Context, messages int, ps ...consume.Position) error
	// Durable makes the alert outbox and ledger durable before each
	// checkpoint is written; nil when there are no receivers.
	Durable func() error

	// graph goroutine only
	seq     int64
	next    map[int]int64 // per partition, the offset of the first message the state has not seen
	resumed map[int]bool  // partitions restored from a checkpoint and not read since
	applied int           // messages read since the last capture
	// lastCapture is when the last capture began and captureCost how
	// long it held the graph's goroutine (see captureSpacing).
	lastCapture time.Time
	captureCost time.Duration

	work chan *pendingCheckpoint // holds at most one
	mu   sync.Mutex              // serialises write
	// owed counts messages captured in checkpoints written or failed but
	// not yet committed; changed by write (under mu), read by applied.
	owed atomic.Int64
}

type pendingCheckpoint struct {
	data     CheckpointData
	pos      []consume.Position
	messages int
}

// captureSpacing keeps checkpoints from starving the stream: capturing
// serialises the whole state on the graph's goroutine, so a checkpoint is
// skipped (counted busy) until this many times the last capture's cost
// has passed since it began. The capture then holds the stream for at
// most a quarter of the time, however large the state or slow the
// machine; a checkpoint interval shorter than that is stretched.
const captureSpacing = 4

// NewCheckpointer returns a checkpointer of st into dir (on fs; nil: the
// real file system) for the topic and group of kc.
func NewCheckpointer(dir string, fs statefs.FS, st State, kc consume.Config, reg prometheus.Registerer, log *slog.Logger) *Checkpointer {
	kc = kc.WithDefaults()
	return &Checkpointer{dir: dir, fs: statefs.Or(fs), state: st, topic: kc.Topic, group: kc.GroupID, m: newCheckpointMetrics(reg),
		flog: &statefs.FaultLog{Log: log, What: "write checkpoint"}, log: log,
		next: map[int]int64{}, resumed: map[int]bool{}, work: make(chan *pendingCheckpoint, 1)}
}

// Restore loads the checkpoint in dir, if any, into the pipeline. A
// checkpoint that cannot be read is set aside and false returned: the
// caller falls back to the baseline snapshot. Without stream (a source
// whose offsets and event time start afresh, as the embedded demo's), only
// baselines and incidents are restored.
func (c *Checkpointer) Restore(stream bool) bool {
	path := filepath.Join(c.dir, CheckpointFile)
	cp, err := ReadCheckpoint(path)
	if err == nil && cp != nil && stream && (cp.Topic != c.topic || cp.Group != c.group) {
		c.log.Warn("checkpoint is of another topic or group; not restored", "path", path, "topic", cp.Topic, "group", cp.Group)
		return false
	}
	if err == nil && cp != nil {
		err = c.state.restore(cp, stream)
	}
	var other *baselines.OtherWindowError
	switch {
	case errors.As(err, &other):
		aside := SetAside(path, other)
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
	edges, ops := c.state.Baselines.Len()
	c.log.Info("checkpoint restored", "path", path, "seq", cp.Seq, "taken", cp.At, "next_offsets", cp.Next,
		"edges", edges, "operations", ops, "incidents", len(c.state.Incidents.List("", time.Time{}, time.Time{})))
	return true
}

// admit says whether b is new to the state (then the caller applies it)
// or was already in it (then it is skipped): read again after a restart
// from a checkpoint the commit had not followed yet, or after a rebalance.
// Either way its offset is committed with the next checkpoint.
func (c *Checkpointer) admit(b *consume.Batch) bool {
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
func (c *Checkpointer) take() {
	start := time.Now()
	if len(c.work) > 0 || start.Sub(c.lastCapture) < captureSpacing*c.captureCost {
		c.m.results.WithLabelValues("busy").Inc()
		return
	}
	pc, err := c.capture()
	c.lastCapture, c.captureCost = start, time.Since(start)
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

func (c *Checkpointer) capture() (*pendingCheckpoint, error) {
	c.seq++
	pc := &pendingCheckpoint{data: CheckpointData{Magic: checkpointMagic, Version: checkpointVersion, Seq: c.seq, At: time.Now().UTC(),
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
func (c *Checkpointer) run(ctx context.Context) {
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
func (c *Checkpointer) final(ctx context.Context) {
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
func (c *Checkpointer) write(ctx context.Context, pc *pendingCheckpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	owed := c.owed.Add(int64(pc.messages))
	start := time.Now()
	err := c.persist(pc)
	if err != nil {
		c.m.results.WithLabelValues("failed").Inc()
		c.flog.Failed(err, "path", filepath.Join(c.dir, CheckpointFile), "uncommitted_messages", owed)
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

func (c *Checkpointer) persist(pc *pendingCheckpoint) error {
	if c.Durable != nil {
		if err := c.Durable(); err != nil {
			return fmt.Errorf("alert outbox: %w", err)
		}
	}
	// Streamed to the file as it is encoded: the state is held once, in
	// its sections, not again whole in its encoding.
	var size countingWriter
	err := statefs.WriteStream(c.fs, filepath.Join(c.dir, CheckpointFile), func(w io.Writer) error {
		size.w = w
		return writeCheckpoint(&size, &pc.data)
	})
	if err != nil {
		return err
	}
	c.m.size.Set(float64(size.n))
	// The baselines alone as well, as older builds and `replay` read them.
	if err := c.fs.WriteFile(filepath.Join(c.dir, BaselineFile), pc.data.Baselines); err != nil {
		return err
	}
	return nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
