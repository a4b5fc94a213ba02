// Package sim simulates the traffic of a small microservice shop and emits
// its OpenTelemetry spans as OTLP protobuf, the way an OpenTelemetry
// Collector's kafka exporter publishes them. It backs `make run` and the
// accuracy scenarios: the shop runs normally, then injected faults (a slow
// service, failing calls, a slow database, a slow network edge, a dead
// callee) change its spans the way a real incident would.
//
// The shop is Online-Boutique-like: a frontend calling about ten gRPC
// services, a Redis cart cache, a PostgreSQL catalog database, a Kafka queue
// of orders read by an instrumented consumer, and an external payment API
// (see Services and Edges). User requests arrive as a Poisson process whose
// rate follows a compressed day (peak and off-peak a few minutes apart) with
// slow noise; latencies are log-normal per operation and rise a little with
// load. An optional batch job (Config.Batch) adds a recurring, legitimate
// pattern: runs at a fixed period that call the catalog and slow it down.
//
// Everything is a function of Config: the same Config gives byte-identical
// output, and event time comes from the simulation, never the wall clock.
// Each trace draws from its own random stream, so a fault changes the
// traces it touches and nothing else: runs with and without a fault see the
// same requests arrive at the same times.
package sim

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Config describes a simulation. The zero value is usable: it simulates 50
// requests per second from 2025-01-01T00:00:00Z with no faults.
type Config struct {
	// Seed selects the random streams.
	Seed int64
	// Start is the simulated time of the beginning. Zero means
	// 2025-01-01T00:00:00Z.
	Start time.Time
	// Rate is the mean number of user requests (traces) per simulated
	// second. Zero means 50, about 900 spans per second.
	Rate float64
	// Period is the length of one compressed day, in simulated time. Zero
	// means 6 minutes: peak and off-peak are 3 minutes apart.
	Period time.Duration
	// DayStart is the time of day of the compressed day at Start. The
	// request rate peaks at 14:00 and bottoms out at 02:00.
	DayStart time.Duration
	// Swing is the relative amplitude of the daily curve, in [0, 1). Zero
	// means 0.5: the peak rate is three times the off-peak rate.
	Swing float64
	// Steady turns off the daily curve and the noise: requests arrive at
	// a constant mean Rate.
	Steady bool
	// Faults are injected in addition to normal behaviour.
	Faults []Fault
	// Batch, if not nil, adds a periodic batch job (see BatchJob).
	Batch *BatchJob
	// ByTrace gives one message per trace, keyed by its hex trace id, as
	// the Collector's kafka exporter does with partition_traces_by_id.
	// Otherwise messages are batches of many traces with an empty key.
	ByTrace bool
	// MaxBatchSpans bounds the spans of one batch message. Zero means 1000
	// (about 300 KB).
	MaxBatchSpans int
	// Interval is the simulated time one Run step covers, like the
	// Collector's batch timeout. Zero means 200ms.
	Interval time.Duration
}

// Defaults for zero Config fields.
const (
	DefaultRate          = 50
	DefaultPeriod        = 6 * time.Minute
	DefaultSwing         = 0.5
	DefaultMaxBatchSpans = 1000
	DefaultInterval      = 200 * time.Millisecond
)

// Default returns the scenario behind `make run`: 50 requests per second
// from 08:00 of the compressed day (rising towards the 14:00 peak, 90 s
// later), trace-keyed messages, and paymentservice 200 ms slower from 40 s
// to 3 min 40 s, so a detector sees normal traffic first, then an incident
// whose cause is paymentservice, then recovery. Set Start to the wall clock
// to line the spans up with now.
func Default() Config {
	return Config{
		Seed:     1,
		Start:    time.Date(2025, 1, 1, 8, 0, 0, 0, time.UTC),
		Rate:     DefaultRate,
		DayStart: 8 * time.Hour,
		ByTrace:  true,
		Faults: []Fault{{
			Kind: Latency, Target: "paymentservice", Delay: 200 * time.Millisecond,
			Start: 40 * time.Second, Duration: 3 * time.Minute,
		}},
	}
}

func (c Config) withDefaults() Config {
	if c.Start.IsZero() {
		c.Start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Period == 0 {
		c.Period = DefaultPeriod
	}
	if c.Swing == 0 {
		c.Swing = DefaultSwing
	}
	if c.MaxBatchSpans == 0 {
		c.MaxBatchSpans = DefaultMaxBatchSpans
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Batch != nil {
		b := c.Batch.withDefaults()
		c.Batch = &b
	}
	return c
}

func (c Config) validate() error {
	switch {
	case math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0:
		return bad("Rate", "must be a positive number of requests per second, have %v", c.Rate)
	case c.Period < 0:
		return bad("Period", "must be positive, have %v", c.Period)
	case math.IsNaN(c.Swing) || c.Swing < 0 || c.Swing >= 1:
		return bad("Swing", "must be in [0, 1), have %v", c.Swing)
	case c.MaxBatchSpans < 0:
		return bad("MaxBatchSpans", "must be positive, have %d", c.MaxBatchSpans)
	case c.Interval < 0:
		return bad("Interval", "must be positive, have %v", c.Interval)
	case c.Batch != nil:
		return c.Batch.validate()
	}
	return nil
}

// Message is one Kafka message as the Collector's kafka exporter writes it
// with encoding otlp_proto.
type Message struct {
	// Key is the lowercase hex trace id with Config.ByTrace, else nil.
	Key []byte
	// Value is an OTLP ExportTraceServiceRequest in protobuf.
	Value []byte
	// Time is the simulated time the exporter sent it: the end of the step.
	Time time.Time
}

// Sim is a running simulation. It is not safe for concurrent use.
type Sim struct {
	cfg   Config
	m     *model
	start int64 // Config.Start, Unix nanoseconds
	now   int64 // traffic has been generated up to here
	next  int64 // start of the next user request
	seq   uint64
	arr   rng
	g     gen
	job   *job // nil without Config.Batch

	out  []rec    // scratch: records emitted by the current step
	keys []endKey // scratch: for sorting by end time
	idx  []int32  // scratch: emitted records in end order
	rank []int32  // scratch: trace rank per record
}

// New validates cfg and returns a simulation positioned at cfg.Start.
// Errors name the bad field, such as Faults[0].Target or Batch.Every.
func New(cfg Config) (*Sim, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new simulator: %w", err)
	}
	cfg.Faults = slices.Clone(cfg.Faults)
	s := &Sim{
		cfg:   cfg,
		m:     newShop(cfg.Seed, cfg.Batch != nil),
		start: cfg.Start.UnixNano(),
		arr:   newRNG(cfg.Seed, streamArrivals),
	}
	for i, f := range cfg.Faults {
		if err := f.apply(s.m, s.start); err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				fe.field = fmt.Sprintf("Faults[%d].%s", i, fe.field)
			}
			return nil, fmt.Errorf("new simulator: %w", err)
		}
	}
	if cfg.Batch != nil {
		s.job = newJob(*cfg.Batch, cfg.Seed, s.start)
	}
	s.now = s.start
	s.next = s.start + s.gap(s.start)
	return s, nil
}

// Now returns the simulated time up to which traffic has been generated.
func (s *Sim) Now() time.Time { return time.Unix(0, s.now).UTC() }

// RateAt returns the mean user request rate (per second) at simulated time
// t. Job requests of Config.Batch come on top.
func (s *Sim) RateAt(t time.Time) float64 { return s.rateAt(t.UnixNano()) }

// noiseKnot is the spacing of the slow rate noise.
const noiseKnot = 20 * time.Second

func (s *Sim) rateAt(t int64) float64 {
	c := &s.cfg
	if c.Steady {
		return c.Rate
	}
	el := float64(t - s.start)
	const day = float64(24 * time.Hour)
	tod := float64(c.DayStart) + el*day/float64(c.Period)
	curve := 1 + c.Swing*math.Cos(2*math.Pi*(tod-float64(14*time.Hour))/day)
	// Noise: normal values at knots 20 s apart (12% standard deviation of
	// the log rate), linearly interpolated, so the rate wobbles smoothly.
	k := math.Floor(el / float64(noiseKnot))
	frac := el/float64(noiseKnot) - k
	n0, n1 := s.knot(int64(k)), s.knot(int64(k)+1)
	return c.Rate * curve * math.Exp(n0+(n1-n0)*frac)
}

func (s *Sim) knot(k int64) float64 {
	r := newRNG(s.cfg.Seed, streamNoise+uint64(k))
	return 0.12 * r.Normal()
}

// gap draws the time to the next request after t.
func (s *Sim) gap(t int64) int64 {
	return max(1, int64(s.arr.Exp()/s.rateAt(t)*1e9))
}

// loadAt returns the latency multiplier of the request rate at t.
func (s *Sim) loadAt(t int64) float64 {
	return max(0.5, 1+loadEffect*(s.rateAt(t)/s.cfg.Rate-1))
}

// endKey sorts records by end time, then generation order.
type endKey struct {
	end int64
	i   int32
}

// advance generates every request starting before now+d and returns the
// records of the spans that end before then, with their indexes in end
// order. Spans still running stay pending for a later step, as a
// Collector's batch holds only finished spans.
func (s *Sim) advance(d time.Duration) ([]rec, []int32) {
	end := s.now + int64(max(d, 0))
	for s.next < end {
		s.g.traceOf(s.m, s.cfg.Seed, s.seq, s.next, s.loadAt(s.next), s.job.busyAt(s.next), nil)
		s.seq++
		s.next += s.gap(s.next)
	}
	for j := s.job; j != nil && j.next < end; j.next = j.after(j.next) {
		s.g.traceOf(s.m, s.cfg.Seed, streamJobs+j.n, j.next, s.loadAt(j.next), j.busy, s.m.job)
		j.n++
	}
	s.now = end
	// Split finished from running spans; both keep generation order, so the
	// output stays deterministic. keep never overtakes the range loop.
	out, keep := s.out[:0], s.g.recs[:0]
	for _, r := range s.g.recs {
		if r.end < end {
			out = append(out, r)
		} else {
			keep = append(keep, r)
		}
	}
	s.g.recs, s.out = keep, out
	keys := s.keys[:0]
	for i := range out {
		keys = append(keys, endKey{out[i].end, int32(i)})
	}
	slices.SortFunc(keys, func(a, b endKey) int {
		return cmp.Or(cmp.Compare(a.end, b.end), cmp.Compare(a.i, b.i))
	})
	idx := s.idx[:0]
	for _, k := range keys {
		idx = append(idx, k.i)
	}
	s.idx, s.keys = idx, keys
	return out, idx
}

// Step advances the simulation by d and returns the spans that ended in
// that time, grouped by resource and instrumentation scope as SDKs send
// them. TracesData is wire-identical to the ExportTraceServiceRequest the
// Collector exports (this package does not import the gRPC collector
// package and its dependencies). Spans still running at the end of the step
// come in later steps, so a trace may straddle two. The result shares resources, scopes, attributes
// and statuses with the simulation and later results: treat it as read-only.
func (s *Sim) Step(d time.Duration) *tracepb.TracesData {
	recs, idx := s.advance(d)
	sortGroups(recs, idx, s.m.groups())
	return buildTraces(recs, idx)
}

// Messages advances the simulation by d and returns the spans that ended in
// that time as Kafka messages (see Config.ByTrace and MaxBatchSpans), in
// the order the exporter would send them. The caller owns the result.
func (s *Sim) Messages(d time.Duration) []Message {
	recs, idx := s.advance(d)
	if len(recs) == 0 {
		return nil
	}
	// Cut idx into messages, then size and encode them into one buffer.
	var parts [][]int32
	if !s.cfg.ByTrace {
		for i := 0; i < len(idx); i += s.cfg.MaxBatchSpans {
			part := idx[i:min(i+s.cfg.MaxBatchSpans, len(idx))]
			sortGroups(recs, part, s.m.groups())
			parts = append(parts, part)
		}
	} else {
		// One message per trace, in the order of each trace's first span.
		ranks := make(map[uint64]int32)
		rank := slices.Grow(s.rank[:0], len(recs))[:len(recs)]
		for _, i := range idx {
			r, ok := ranks[recs[i].seq]
			if !ok {
				r = int32(len(ranks))
				ranks[recs[i].seq] = r
			}
			rank[i] = r
		}
		s.rank = rank
		sortGroups(recs, idx, s.m.groups())
		countSort(idx, len(ranks), func(i int32) int { return int(rank[i]) })
		for i := 0; i < len(idx); {
			j := i + 1
			for j < len(idx) && recs[idx[j]].seq == recs[idx[i]].seq {
				j++
			}
			parts = append(parts, idx[i:j])
			i = j
		}
	}
	size := 0
	for _, part := range parts {
		size += requestSize(recs, part)
	}
	buf := make([]byte, 0, size)
	var keys []byte
	if s.cfg.ByTrace {
		keys = make([]byte, 0, 32*len(parts))
	}
	msgs := make([]Message, len(parts))
	at := s.Now()
	for i, part := range parts {
		from := len(buf)
		buf = appendRequest(buf, recs, part)
		msgs[i] = Message{Value: buf[from:len(buf):len(buf)], Time: at}
		if s.cfg.ByTrace {
			keys = hex.AppendEncode(keys, recs[part[0]].trace[:])
			msgs[i].Key = keys[32*i : 32*i+32 : 32*i+32]
		}
	}
	return msgs
}

// Run generates traffic in steps of Config.Interval and hands each step's
// messages to publish, pacing simulated time against the wall clock: speed 1
// is real time, 10 is ten times faster; 0 or +Inf means as fast as publish
// accepts. Run falls behind rather than skipping when publish is slow, and
// catches up afterwards. It blocks until ctx ends, then returns nil, or
// returns the first publish error. publish owns the messages it is given.
func (s *Sim) Run(ctx context.Context, speed float64, publish func(ctx context.Context, msgs []Message) error) error {
	if math.IsNaN(speed) || speed < 0 {
		return fmt.Errorf("run simulator: speed must be positive, have %v", speed)
	}
	step := s.cfg.Interval
	emit := func() error {
		msgs := s.Messages(step)
		if len(msgs) == 0 {
			return nil
		}
		if err := publish(ctx, msgs); err != nil && ctx.Err() == nil {
			return fmt.Errorf("publish simulated spans: %w", err)
		}
		return nil
	}
	if speed == 0 || math.IsInf(speed, 1) {
		for ctx.Err() == nil {
			if err := emit(); err != nil {
				return err
			}
		}
		return nil
	}
	tick := max(time.Duration(float64(step)/speed), 10*time.Millisecond)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	begin, base := time.Now(), s.now
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		target := base + int64(float64(time.Since(begin))*speed)
		for s.now+int64(step) <= target && ctx.Err() == nil {
			if err := emit(); err != nil {
				return err
			}
		}
	}
}
