package pipeline

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
)

// Source is where a Driver's span batches come from, in offset order
// within each partition: a consumer group's share of a topic
// (consume.Consumer), or one partition a fleet member owns.
type Source interface {
	// Batches delivers the decoded messages; it is closed when the
	// source stops.
	Batches() <-chan *consume.Batch
	// Release returns a batch's spans for reuse once they are applied.
	Release(*consume.Batch)
	// Partitions lists the event-time sources the source may deliver
	// (Batch.EventSource): its partitions, or for a fleet's re-key topic
	// the span partitions its messages come from.
	Partitions(ctx context.Context) ([]int, error)
	// LastError returns when the Kafka client last reported an error; the
	// zero time if it never did.
	LastError() time.Time
	// CaughtUp reports whether every partition the source may deliver has
	// been read to its end offset; next holds, per partition, the offset
	// after the last message applied.
	CaughtUp(ctx context.Context, next map[int]int64) (bool, error)
	// Commit marks the messages at ps, and every earlier one of their
	// partitions, as done with; messages is how many that covers.
	Commit(ctx context.Context, messages int, ps ...consume.Position) error
}

// QuietPartition is how long a partition may send nothing before event
// time stops waiting for it (at least Options.Idle).
const QuietPartition = 30 * time.Second

// A publishing driver that is behind (more batches already waiting) lets
// the windows closed so far wait for them, so that a backlog's windows go
// out several to a write, with one watermark and one commit for them all,
// rather than one by one: each write is a message per shard and a round
// trip. It waits at most Options.PublishHold of wall time or
// publishWindows windows; a driver that is caught up publishes each
// window at once.
const (
	DefaultPublishHold = time.Second
	publishWindows     = 32
)

// Options configure a Driver.
type Options struct {
	Source Source
	Graph  *graph.Aggregator
	// Idle is how long the stream must be quiet, with every partition read
	// to its end, before the wall clock moves event time on (IdleClock);
	// 0: never.
	Idle time.Duration
	Log  *slog.Logger
	// Checkpoint, when set, keeps the state: a checkpoint is taken every
	// CheckpointEvery, and offsets are committed only once a checkpoint
	// holding their effect is written. Messages the state already holds
	// (read again after a restart or a rebalance) are skipped.
	Checkpoint      *Checkpointer
	CheckpointEvery time.Duration
	// Publish, when set, hands on the windows closed so far, up to
	// closedTo (unix ns), and reports false when ctx ended first. A
	// message's offset is committed once every window its spans fell in
	// is published (a fleet partition's windows go to the other members).
	Publish func(ctx context.Context, closedTo int64) bool
	// PublishHold is how long, at most, closed windows wait to be
	// published with the next while more batches are already waiting;
	// 0: DefaultPublishHold.
	PublishHold time.Duration
	// Tick is how often idle partitions and the wall clock are looked at;
	// 0: a second.
	Tick time.Duration
	// Quiet is how long a partition may send nothing before event time
	// stops waiting for it (at least Idle); 0: QuietPartition.
	Quiet time.Duration
	// Applied, when set, sees each batch once the graph has it, with how
	// many of its spans came too late for their window (on the graph's
	// goroutine, before the batch is released).
	Applied func(b *consume.Batch, late int)
}

// A Driver moves one stream of spans through the graph: it applies each
// batch, moves event time on (by the slowest partition, and by the wall
// clock only once every partition is read to its end), and commits each
// message's offset once its effect is kept: at once without state, with
// the checkpoint that holds it, or once its windows are published.
//
// Run is the graph's goroutine: the aggregator is used from it alone.
type Driver struct {
	opt  Options
	src  Source
	agg  *graph.Aggregator
	log  *slog.Logger
	next map[int]int64 // per partition, the offset after the last message applied

	// Publish mode: messages applied and not yet committed, in order.
	held      []held
	published int64
	holding   time.Time // since when closed windows wait for a backlog; zero: none wait
	holdFrom  int64     // the event time the waiting windows start at

	parts   []int        // the event-time sources the source may deliver, as listed at start
	seen    map[int]bool // the event-time sources applied here
	errSeen time.Time    // the source's last error already acted on
}

// held is an applied message whose offset may be committed once windows
// up to until (unix ns) are published.
type held struct {
	pos   consume.Position
	until int64
}

// NewDriver returns a driver of opt.Graph fed by opt.Source. With a
// Checkpointer, the driver commits what it covers.
func NewDriver(opt Options) *Driver {
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.Tick <= 0 {
		opt.Tick = time.Second
	}
	if opt.Quiet <= 0 {
		opt.Quiet = QuietPartition
	}
	if opt.PublishHold <= 0 {
		opt.PublishHold = DefaultPublishHold
	}
	d := &Driver{opt: opt, src: opt.Source, agg: opt.Graph, log: opt.Log, next: map[int]int64{}, seen: map[int]bool{}}
	if opt.Checkpoint != nil {
		opt.Checkpoint.commit = d.commit
	}
	return d
}

// Run drives the stream until ctx ends or the source stops. With a
// Checkpointer it writes checkpoints in the background, and a last one,
// synchronously, before it returns.
func (d *Driver) Run(ctx context.Context) error {
	if ck := d.opt.Checkpoint; ck != nil {
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			ck.run(wctx)
		}()
		defer func() {
			stop()
			<-done
			ck.final(ctx) // nothing feeds the graph any more
		}()
	}
	d.loop(ctx)
	return nil
}

func (d *Driver) loop(ctx context.Context) {
	t := time.NewTicker(d.opt.Tick)
	defer t.Stop()
	var checkpoints <-chan time.Time
	if d.opt.Checkpoint != nil {
		ct := time.NewTicker(d.opt.CheckpointEvery)
		defer ct.Stop()
		checkpoints = ct.C
	}
	clock := NewIdleClock(d.opt.Idle, time.Now())
	// Every partition holds windows back until it has been heard from, or
	// has been silent for QuietPartition (another member of the group has
	// it): otherwise the first partitions fetched would close windows the
	// others' backlog still has spans for.
	heard := map[int]time.Time{}
	if parts, err := d.src.Partitions(ctx); err != nil {
		d.log.Warn("cannot list the topic's partitions; windows may close before every partition's backlog is read", "err", err)
	} else {
		d.parts = parts
		for _, p := range parts {
			d.agg.ExpectSource(p)
			heard[p] = time.Now()
		}
	}
	d.errSeen = d.src.LastError()
	d.published = d.agg.ClosedTo()
	for {
		select {
		case b, ok := <-d.src.Batches():
			if !ok {
				return
			}
			now := time.Now()
			d.reexpect(now, heard)
			src := b.EventSource()
			if src >= 0 {
				clock.Heard(src, b.Newest(), now)
			}
			if d.apply(ctx, b) && src >= 0 {
				heard[src] = now
			}
		case <-checkpoints:
			d.opt.Checkpoint.take()
		case now := <-t.C:
			d.idle(ctx, now, clock, heard)
		case <-ctx.Done():
			return
		}
		if d.opt.Publish != nil && d.agg.ClosedTo() > d.published && !d.hold(time.Now()) && !d.publish(ctx) {
			return
		}
	}
}

// hold reports whether the windows closed and not yet published should
// wait for the batches already waiting (PublishHold, publishWindows).
func (d *Driver) hold(now time.Time) bool {
	if len(d.src.Batches()) == 0 {
		return false
	}
	window := int64(d.agg.Config().Window)
	if d.holding.IsZero() {
		// From the first window closed since the last publish (at the
		// start, event time jumps from zero to the first window).
		d.holding, d.holdFrom = now, max(d.published, d.agg.ClosedTo()-window)
	}
	return now.Sub(d.holding) < d.opt.PublishHold && d.agg.ClosedTo()-d.holdFrom < publishWindows*window
}

// apply adds one batch to the graph (unless the state already holds it)
// and settles its offset; it reports whether the batch was applied.
func (d *Driver) apply(ctx context.Context, b *consume.Batch) bool {
	defer d.src.Release(b)
	d.next[b.Partition] = b.Offset + 1
	src := b.EventSource()
	if src >= 0 {
		d.seen[src] = true
	}
	ck := d.opt.Checkpoint
	if ck != nil && !ck.admit(b) {
		return false // its offset is committed with the next checkpoint
	}
	late := d.agg.AddFrom(src, b.Spans)
	if b.SourceAt > 0 {
		d.agg.SourceAt(src, b.SourceAt)
	}
	if d.opt.Applied != nil {
		d.opt.Applied(b, late)
	}
	switch {
	case ck != nil: // committed with the checkpoint that holds it
	case d.opt.Publish != nil:
		d.held = append(d.held, held{pos: b.Position(), until: d.windowsEnd(b)})
	default:
		if err := d.commit(ctx, 1, b.Position()); err != nil && ctx.Err() == nil {
			d.log.Warn("commit span offset", "partition", b.Partition, "offset", b.Offset, "err", err)
		}
	}
	return true
}

// windowsEnd is the end of the latest window b's spans fall in; 0 when
// it has none (a skipped message).
func (d *Driver) windowsEnd(b *consume.Batch) int64 {
	var end int64
	for i := range b.Spans {
		end = max(end, b.Spans[i].End)
	}
	if end == 0 {
		return 0
	}
	window := int64(d.agg.Config().Window)
	return end - end%window + window
}

// publish hands on the windows closed so far, then commits the offsets of
// the messages whose windows are all published; false when ctx ended.
func (d *Driver) publish(ctx context.Context) bool {
	closedTo := d.agg.ClosedTo()
	if !d.opt.Publish(ctx, closedTo) {
		return false
	}
	d.published, d.holding = closedTo, time.Time{}
	last := map[int]consume.Position{}
	n := 0
	for ; n < len(d.held) && d.held[n].until <= closedTo; n++ {
		last[d.held[n].pos.Partition] = d.held[n].pos
	}
	d.held = d.held[n:]
	for _, pos := range last {
		if err := d.commit(ctx, n, pos); err != nil {
			if ctx.Err() != nil {
				return false
			}
			d.log.Warn("commit span offset; it will be read again after a restart", "partition", pos.Partition, "offset", pos.Offset+1, "err", err)
		}
		n = 0 // counted once
	}
	return true
}

// commit is where every offset is committed: at once, by the
// checkpointer's writer, or after publishing. Safe from any goroutine.
func (d *Driver) commit(ctx context.Context, messages int, ps ...consume.Position) error {
	return d.src.Commit(ctx, messages, ps...)
}

// idle runs once a tick: partitions silent for long stop holding windows
// back, and event time follows the wall clock once the stream is quiet and
// read to its end.
func (d *Driver) idle(ctx context.Context, now time.Time, clock *IdleClock, heard map[int]time.Time) {
	d.reexpect(now, heard)
	// Whether every partition has been read to its end, asked of the
	// brokers at most once a tick and only when needed.
	var up *bool
	caughtUp := func() bool {
		if up == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			ok, err := d.src.CaughtUp(cctx, d.next)
			cancel()
			v := err == nil && ok // a broker that cannot say: not caught up
			up = &v
		}
		return *up
	}
	quiet := max(d.opt.Idle, d.opt.Quiet)
	lastErr := d.src.LastError()
	for p, at := range heard {
		// A partition silent for quiet stops holding windows back when the
		// client has been healthy since (it has nothing to send, or
		// another member has it), or when every partition is read to its
		// end and the client has been healthy for quiet: not while a
		// broker is away, nor just after, when what producers buffered
		// meanwhile is still on its way, to this partition as to others.
		if now.Sub(at) > quiet && (lastErr.Before(at) || now.Sub(lastErr) > quiet && caughtUp()) {
			d.agg.ForgetSource(p)
			clock.Forget(p)
			delete(heard, p)
		}
	}
	if clock.Advance(now, d.src.LastError()) && caughtUp() {
		d.agg.AdvanceTo(now.Add(-d.opt.Idle).UnixNano())
	}
}

// reexpect makes every partition read here hold windows back again once
// the client has reported an error (a broker away, the group rejoining): a
// partition forgotten while it was quiet may have had spans written during
// the outage, which arrive only now, behind the others' newer ones.
// Partitions never read here (another member's) are left alone: they
// would hold windows until the group's offsets say they are read. It stops
// holding them back as at the start: once heard from, or quiet with the
// client healthy, or every partition read to its end.
func (d *Driver) reexpect(now time.Time, heard map[int]time.Time) {
	le := d.src.LastError()
	if !le.After(d.errSeen) {
		return
	}
	d.errSeen = le
	for _, p := range d.parts {
		read := d.seen[p] // only partitions read here: not another member's
		if _, held := heard[p]; read && !held {
			d.agg.ExpectSource(p)
			heard[p] = now
		}
	}
}
