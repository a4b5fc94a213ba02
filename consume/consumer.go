package consume

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/causeway/causeway/span"
)

// Batch is the spans of one Kafka message, handed to the next stage in
// offset order. The receiver owns it until it calls Release.
type Batch struct {
	// Spans are the message's usable spans; empty for a skipped message,
	// which still flows through so its offset is committed in order.
	Spans []span.Span
	// Topic, Partition and Offset say where the message came from.
	Topic     string
	Partition int
	Offset    int64
	// HighWaterMark is the partition's end offset when the message was
	// fetched; 0 when the broker did not say.
	HighWaterMark int64
	// Rekeyed marks a message of a fleet's re-key topic, whose spans count
	// under the span partition they were read from (Source; -1 when the
	// message does not say) rather than under Partition. SourceAt, when
	// set, is a watermark record of the re-key stage: Source has delivered
	// what it holds up to that event time (Unix ns); it carries no spans.
	Rekeyed  bool
	Source   int
	SourceAt int64
}

// EventSource is the source event time counts the spans under: the
// partition, or for a re-keyed message the span partition it came from.
func (b *Batch) EventSource() int {
	if b.Rekeyed {
		return b.Source
	}
	return b.Partition
}

// Newest reports whether the message was its partition's newest when it
// was fetched: the reader had caught up with that partition.
func (b *Batch) Newest() bool {
	return b.HighWaterMark > 0 && b.Offset+1 >= b.HighWaterMark
}

// Consumer reads span messages from a Kafka consumer group.
//
// Run fetches and decodes messages and sends them, in order, on a bounded
// channel. The next stage (pipeline.Driver) applies each Batch, releases
// it, and commits its offset (Commit) once its effect is kept; the commit
// reaches the brokers in the background, every CommitInterval, and on
// Close. A message skipped as bad is also passed on and committed in
// order, so a crash never commits past unapplied spans.
type Consumer struct {
	cfg  Config
	log  *slog.Logger
	r    *kafka.Reader
	md   *MessageDecoder
	samp *sampler
	out  chan *Batch

	dialer *kafka.Dialer
	// troubled is when the client last reported an error: a
	// broker away, a group rejoining, a fetch that failed.
	troubled ErrorClock

	closeOnce sync.Once
	closeErr  error
}

// Partitions lists the topic's partitions, asking each broker in turn.
func (c *Consumer) Partitions(ctx context.Context) ([]int, error) {
	var err error
	for _, b := range c.cfg.Brokers {
		var ps []kafka.Partition
		if ps, err = c.dialer.LookupPartitions(ctx, "tcp", b, c.cfg.Topic); err == nil {
			ids := make([]int, len(ps))
			for i, p := range ps {
				ids[i] = p.ID
			}
			return ids, nil
		}
	}
	return nil, fmt.Errorf("partitions of %s: %w", c.cfg.Topic, err)
}

// CaughtUp reports whether every partition of the topic has been read to
// its end offset: by this consumer (next holds, per partition it read, the
// offset after its last message) or, for the others, by its group as its
// committed offsets say (a partition another member reads). An error
// (brokers away) is not caught up.
func (c *Consumer) CaughtUp(ctx context.Context, next map[int]int64) (bool, error) {
	ends, err := c.EndOffsets(ctx)
	if err != nil {
		return false, err
	}
	tr, err := c.cfg.Transport()
	if err != nil {
		return false, err
	}
	parts := make([]int, 0, len(ends))
	for p := range ends {
		parts = append(parts, p)
	}
	cl := &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Transport: tr}
	committed, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: c.cfg.GroupID, Topics: map[string][]int{c.cfg.Topic: parts}})
	if err == nil && committed.Error != nil {
		err = committed.Error
	}
	if err != nil {
		return false, fmt.Errorf("committed offsets of group %s: %w", c.cfg.GroupID, err)
	}
	read := make(map[int]int64, len(ends))
	for _, po := range committed.Topics[c.cfg.Topic] {
		if po.Error == nil {
			read[po.Partition] = po.CommittedOffset
		}
	}
	for p, end := range ends {
		if max(read[p], next[p]) < end {
			return false, nil
		}
	}
	return true, nil
}

// EndOffsets returns the end offset (the next offset to be written) of
// every partition of the topic.
func (c *Consumer) EndOffsets(ctx context.Context) (map[int]int64, error) {
	parts, err := c.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	tr, err := c.cfg.Transport()
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, len(parts))
	for i, p := range parts {
		reqs[i] = kafka.LastOffsetOf(p)
	}
	cl := &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Transport: tr}
	resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.cfg.Topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", c.cfg.Topic, err)
	}
	ends := make(map[int]int64, len(parts))
	for _, po := range resp.Topics[c.cfg.Topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("end offset of %s/%d: %w", c.cfg.Topic, po.Partition, po.Error)
		}
		ends[po.Partition] = po.LastOffset
	}
	return ends, nil
}

// LastError returns when the Kafka client last reported an error, the
// zero time if it never did.
func (c *Consumer) LastError() time.Time { return c.troubled.Last() }

// MessageDecoder turns Kafka messages into Batches: it decodes them, counts
// and logs (sampled) what it cannot use, copies undecodable messages to the
// dead-letter topic, and tracks consumer lag. One MessageDecoder is used by
// one goroutine; several may share Metrics.
type MessageDecoder struct {
	cfg  Config
	m    *Metrics
	now  func() time.Time
	dlq  *kafka.Writer
	dec  *Decoder
	samp *sampler

	pool *sync.Pool // of []span.Span, shared by a consumer's decoders
	// secret is the SASL password, scrubbed from what the client reports.
	secret string

	lag *lagTracker // shared by a consumer's decoders
}

// lagTracker sums the lag of every partition read.
type lagTracker struct {
	mu  sync.Mutex
	lag map[int]int64
}

// NewMessageDecoder validates cfg and returns a decoder for its topic's
// messages. m may be nil; now may be nil (time.Now).
func NewMessageDecoder(cfg Config, log *slog.Logger, m *Metrics, now func() time.Time) (*MessageDecoder, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if now == nil {
		now = time.Now
	}
	d := &MessageDecoder{
		cfg:  cfg,
		m:    m,
		now:  now,
		dec:  newDecoder(cfg),
		samp: newSampler(log, cfg.LogInterval, now),
		lag:  &lagTracker{lag: make(map[int]int64)},
		pool: new(sync.Pool),
	}
	d.secret, _ = cfg.SASL.password() // Dialer and Transport report a failure to read it
	if cfg.DeadLetterTopic != "" {
		tr, err := cfg.Transport()
		if err != nil {
			return nil, err
		}
		// Its metadata is refreshed every second rather than every 6 s, so
		// that a dead-letter topic created on the first write is found
		// soon (see deadLetter).
		tr.MetadataTTL = time.Second
		d.dlq = &kafka.Writer{
			Addr:                   kafka.TCP(cfg.Brokers...),
			Topic:                  cfg.DeadLetterTopic,
			Balancer:               &kafka.Hash{},
			RequiredAcks:           kafka.RequireAll,
			AllowAutoTopicCreation: true,
			WriteTimeout:           10 * time.Second,
			Transport:              tr,
		}
	}
	return d, nil
}

// newDecoder returns a decoder with cfg's limits.
func newDecoder(cfg Config) *Decoder {
	d := NewDecoder(cfg.Encoding, span.Limits{}, cfg.MaxMessageBytes)
	d.SetMaxSpans(cfg.MaxSpansPerMessage)
	return d
}

// sibling returns a decoder for another goroutine: its own decoding state,
// the same metrics, log sampling, lag and dead-letter writer.
func (c *MessageDecoder) sibling() *MessageDecoder {
	return &MessageDecoder{cfg: c.cfg, m: c.m, now: c.now, dlq: c.dlq, samp: c.samp, lag: c.lag, pool: c.pool, secret: c.secret,
		dec: newDecoder(c.cfg)}
}

// security is cfg's TLS configuration and SASL mechanism (nil when off).
func (c Config) security() (*tls.Config, sasl.Mechanism, error) {
	tlsConf, err := c.TLS.tlsConfig()
	if err != nil {
		return nil, nil, err
	}
	mech, err := c.SASL.mechanism()
	if err != nil {
		return nil, nil, err
	}
	return tlsConf, mech, nil
}

// Dialer is a kafka-go dialer with cfg's TLS and SASL settings.
func (c Config) Dialer() (*kafka.Dialer, error) {
	tlsConf, mech, err := c.security()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: tlsConf, SASLMechanism: mech}, nil
}

// Transport is a kafka-go transport for writers, with cfg's TLS and SASL.
func (c Config) Transport() (*kafka.Transport, error) {
	tlsConf, mech, err := c.security()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{TLS: tlsConf, SASL: mech}, nil
}

// New validates cfg and returns a consumer that has not yet connected. m
// may be nil; now may be nil (time.Now).
func New(cfg Config, log *slog.Logger, m *Metrics, now func() time.Time) (*Consumer, error) {
	md, err := NewMessageDecoder(cfg, log, m, now)
	if err != nil {
		return nil, err
	}
	cfg = md.cfg
	dialer, err := cfg.Dialer()
	if err != nil {
		return nil, err
	}
	start := kafka.FirstOffset
	if cfg.StartAt == "latest" {
		start = kafka.LastOffset
	}
	c := &Consumer{
		cfg:  cfg,
		log:  log,
		md:   md,
		samp: md.samp,
		out:  make(chan *Batch, cfg.QueueMessages),

		dialer: dialer,
	}
	c.r = kafka.NewReader(kafka.ReaderConfig{
		Brokers:  cfg.Brokers,
		GroupID:  cfg.GroupID,
		Topic:    cfg.Topic,
		Dialer:   dialer,
		MinBytes: 1,
		MaxBytes: cfg.MaxMessageBytes + 1<<20, // room to fetch an oversize message and skip it
		// How long the broker may hold a fetch while nothing is new (data
		// that arrives is returned at once: MinBytes is 1). kafka-go asks
		// the broker for this less a round-trip allowance and gives up on
		// the connection at this; at 500 ms that left the broker 125 ms of
		// slack, which a busy machine overran on a healthy broker ("i/o
		// timeout", a reconnect, a counted error). At 2 s it leaves a
		// second. It also bounds how long closing the reader waits for a
		// fetch under way.
		MaxWait:        2 * time.Second,
		CommitInterval: cfg.CommitInterval,
		SessionTimeout: cfg.SessionTimeout,
		StartOffset:    start,
		// kafka-go logs every empty long poll at info level: debug for us.
		Logger: kafka.LoggerFunc(func(f string, a ...any) { log.Debug("kafka reader", "detail", fmt.Sprintf(f, a...)) }),
		// Its errors are mostly transient and retried inside: counted, and
		// at most one line per interval.
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			c.troubled.Note()
			md.m.KafkaError()
			c.samp.note("kafka reader error", scrub(fmt.Sprintf(f, a...), md.secret))
		}),
	})
	return c, nil
}

// Batches returns the channel Run sends decoded messages on. It is closed
// when Run returns.
func (c *Consumer) Batches() <-chan *Batch { return c.out }

// Run reads until ctx ends or the reader is closed, then closes the Batches
// channel and returns nil; it returns an error only when reading cannot go on.
// Call it once.
//
// With Decoders above 1, messages are decoded on that many goroutines, each
// taking the partitions that hash to it: a partition's batches stay in
// offset order, those of different partitions interleave as they are
// decoded.
func (c *Consumer) Run(ctx context.Context) error {
	defer close(c.out)
	n := c.cfg.Decoders
	if n <= 1 {
		return c.fetch(ctx, func(msg kafka.Message) bool {
			return c.send(ctx, c.md.Decode(ctx, msg))
		})
	}
	ins := make([]chan kafka.Message, n)
	var wg sync.WaitGroup
	for i := range ins {
		ins[i] = make(chan kafka.Message, c.cfg.QueueMessages)
		md := c.md
		if i > 0 {
			md = c.md.sibling()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range ins[i] {
				if !c.send(ctx, md.Decode(ctx, msg)) {
					for range ins[i] { // let fetch finish
					}
					return
				}
			}
		}()
	}
	defer wg.Wait()
	defer func() {
		for _, in := range ins {
			close(in)
		}
	}()
	return c.fetch(ctx, func(msg kafka.Message) bool {
		select {
		case ins[msg.Partition%n] <- msg:
			return true
		case <-ctx.Done():
			return false
		}
	})
}

// send hands b to the next stage; false when ctx ended first.
func (c *Consumer) send(ctx context.Context, b *Batch) bool {
	select {
	case c.out <- b:
		return true
	case <-ctx.Done():
		return false
	}
}

// fetch reads messages and hands each to next until ctx ends, the reader
// is closed, or next returns false.
func (c *Consumer) fetch(ctx context.Context, next func(kafka.Message) bool) error {
	last := time.Now() // the last message, or the start
	for {
		msg, err := c.r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			// Retried every second while the brokers are away: counted,
			// and logged at most once per LogInterval.
			c.troubled.Note()
			c.md.m.KafkaError()
			c.samp.note("fetch from kafka", c.cfg.Topic+": "+scrub(err.Error(), c.md.secret))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		now := time.Now()
		if c.resumed(last, now) {
			c.log.Info("reading from Kafka again after errors", "topic", c.cfg.Topic, "without_messages_for", now.Sub(last).Round(time.Second))
		}
		last = now
		if !next(msg) {
			return nil
		}
	}
}

// resumeGap is how long messages must have stopped, with the client
// reporting errors meanwhile, for their return to be logged: the line an
// operator looks for after a broker outage.
const resumeGap = 5 * time.Second

// resumed reports whether a message fetched at now, the previous one at
// last, ends an interruption: a gap of resumeGap or more during which
// the client reported an error.
func (c *Consumer) resumed(last, now time.Time) bool {
	return now.Sub(last) >= resumeGap && c.troubled.Last().After(last)
}

// Decode turns one message into a Batch. A message it cannot decode gives
// an empty Batch (counted, logged, dead-lettered), so offsets stay in order.
func (c *MessageDecoder) Decode(ctx context.Context, msg kafka.Message) *Batch {
	c.m.Messages.Inc()
	c.m.Bytes.Add(float64(len(msg.Value)))
	c.noteLag(msg)
	b := &Batch{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset, HighWaterMark: msg.HighWaterMark}
	where := []any{"topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset}

	c.dec.SetMaxTime(c.now().Add(c.cfg.MaxClockSkew).UnixNano())
	res, err := c.dec.Decode(msg.Value)
	if err != nil {
		var de *Error
		reason := span.ReasonDecodeInternal
		if errors.As(err, &de) {
			reason = de.Reason
		}
		c.m.Errors.WithLabelValues(string(reason)).Inc()
		c.samp.report(reason, msg.Value, 1, append(where, "err", err)...)
		c.deadLetter(ctx, msg, reason)
		return b
	}
	for r, n := range res.Rejected {
		c.m.Rejected.WithLabelValues(string(r)).Add(float64(n))
		c.samp.report(r, msg.Value, n, where...)
	}
	c.m.Spans.Add(float64(len(res.Spans)))
	spans, _ := c.pool.Get().([]span.Span)
	b.Spans = append(spans[:0], res.Spans...)
	return b
}

// noteLag records how far behind the partition end this message is.
func (c *MessageDecoder) noteLag(msg kafka.Message) {
	if msg.HighWaterMark <= 0 {
		return
	}
	c.lag.mu.Lock()
	c.lag.lag[msg.Partition] = max(0, msg.HighWaterMark-msg.Offset-1)
	var total int64
	for _, l := range c.lag.lag {
		total += l
	}
	c.lag.mu.Unlock()
	c.m.Lag.Set(float64(total))
}

// deadLetter copies a skipped message to the dead-letter topic, if any.
// Failure is counted and logged; it never holds up consumption for long.
func (c *MessageDecoder) deadLetter(ctx context.Context, msg kafka.Message, reason span.Reason) {
	if c.dlq == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	dead := kafka.Message{
		Key:   msg.Key,
		Value: msg.Value,
		Headers: append(msg.Headers[:len(msg.Headers):len(msg.Headers)],
			kafka.Header{Key: "causeway.reason", Value: []byte(reason)},
			kafka.Header{Key: "causeway.source.topic", Value: []byte(msg.Topic)},
			kafka.Header{Key: "causeway.source.partition", Value: []byte(strconv.Itoa(msg.Partition))},
			kafka.Header{Key: "causeway.source.offset", Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		),
	}
	err := c.dlq.WriteMessages(ctx, dead)
	// The first write to a topic the broker creates on demand fails while
	// the topic gets a leader; so does one right after a broker restart.
	for err != nil && retryableWrite(err) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
			err = c.dlq.WriteMessages(ctx, dead)
		}
	}
	if err != nil {
		c.m.DeadLetter.WithLabelValues("failed").Inc()
		c.samp.report("dead_letter_failed", msg.Value, 1, "topic", c.cfg.DeadLetterTopic, "err", scrub(err.Error(), c.secret))
		return
	}
	c.m.DeadLetter.WithLabelValues("ok").Inc()
}

// retryableWrite reports whether a write failed because the topic or its
// leader is not known yet.
func retryableWrite(err error) bool {
	return errors.Is(err, kafka.UnknownTopicOrPartition) || errors.Is(err, kafka.LeaderNotAvailable) ||
		errors.Is(err, kafka.NotLeaderForPartition)
}

// Position is where a message was read: enough to commit its offset
// later, after the batch itself has been released.
type Position struct {
	Topic     string
	Partition int
	Offset    int64
}

// Position returns where b was read.
func (b *Batch) Position() Position {
	return Position{Topic: b.Topic, Partition: b.Partition, Offset: b.Offset}
}

// Commit marks the messages at ps, and every earlier one of their
// partitions, as done with: their offsets are committed in the background
// (every CommitInterval) and on Close. messages is how many messages that
// covers since the last Commit (for causeway_consume_commits_total). A
// caller that keeps state of its own commits only what that state has
// durably absorbed, and releases batches (Release) as soon as it has
// applied them. It blocks only while the reader's commit queue is full, or
// until ctx ends. It may be called from any goroutine.
func (c *Consumer) Commit(ctx context.Context, messages int, ps ...Position) error {
	msgs := make([]kafka.Message, len(ps))
	for i, p := range ps {
		msgs[i] = kafka.Message{Topic: p.Topic, Partition: p.Partition, Offset: p.Offset}
	}
	if err := c.r.CommitMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("commit offsets %v: %w", ps, err)
	}
	c.md.m.Commits.Add(float64(messages))
	return nil
}

// Release returns b's span slice for reuse once its spans have been
// applied; b must not be used afterwards (its Position may be kept).
func (c *Consumer) Release(b *Batch) { c.md.Release(b) }

// Release returns b's span slice for reuse; b must not be used afterwards.
func (c *MessageDecoder) Release(b *Batch) {
	if cap(b.Spans) > 0 {
		clear(b.Spans)
		c.pool.Put(b.Spans[:0]) //nolint:staticcheck // a slice header is small next to what it saves
	}
}

// Close closes the dead-letter writer, if any.
func (c *MessageDecoder) Close() error {
	if c.dlq != nil {
		return c.dlq.Close()
	}
	return nil
}

// Close stops reading, commits what Commit has marked, and leaves the group.
// It is safe to call more than once.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = errors.Join(c.r.Close(), c.md.Close())
	})
	return c.closeErr
}
