package consume

import (
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/span"
)

// Metrics are the consumer's Prometheus collectors.
type Metrics struct {
	Messages   prometheus.Counter
	Spans      prometheus.Counter
	Bytes      prometheus.Counter
	Errors     *prometheus.CounterVec // messages rejected whole, by reason
	Rejected   *prometheus.CounterVec // spans rejected, by reason
	DeadLetter *prometheus.CounterVec // dead-letter copies, by result
	Lag        *LagGauge
	Commits    prometheus.Counter
	// KafkaErrors are the errors the Kafka client reported while it
	// retried on its own (dial, group join, fetch, commit): a broker
	// outage or a network partition shows here, not as a stopped detector.
	KafkaErrors prometheus.Counter
}

// NewMetrics creates the consumer's collectors and registers them with reg
// (nil registers nothing).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_consume_messages_total", Help: "Messages read (Kafka or replay input).",
		}),
		Spans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_spans_total", Help: "Usable spans decoded and handed to the graph.",
		}),
		Bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_consume_bytes_total", Help: "Bytes of message values read.",
		}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_consume_errors_total", Help: "Messages skipped whole because they could not be decoded, by reason.",
		}, []string{"reason"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_spans_rejected_total", Help: "Spans skipped because they were unusable, by reason.",
		}, []string{"reason"}),
		DeadLetter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_consume_dead_letter_total", Help: "Bad messages copied to the dead-letter topic, by result (ok, failed).",
		}, []string{"result"}),
		Lag: &LagGauge{desc: prometheus.NewDesc("causeway_consume_lag_messages",
			"Messages between the last one read and the partition end, as last reported by the reader; absent while the Kafka client has reported errors since (a broker away: the lag is unknown).", nil, nil)},
		Commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_consume_commits_total", Help: "Messages whose offsets were committed after their spans were applied.",
		}),
		KafkaErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_consume_kafka_errors_total", Help: "Errors the Kafka client reported and retried (broker unreachable, group rejoin, failed commit); it keeps rising during a broker outage.",
		}),
	}
	for _, r := range []span.Reason{span.ReasonNotProtobuf, span.ReasonTruncated, span.ReasonBadJSON, span.ReasonOversize, span.ReasonTooManySpans} {
		m.Errors.WithLabelValues(string(r)) // export zeros, so alerts on rate() work from the start
	}
	for _, r := range []span.Reason{span.ReasonNoService, span.ReasonBadID, span.ReasonBadTimestamp, span.ReasonTooLong, span.ReasonLongName} {
		m.Rejected.WithLabelValues(string(r))
	}
	if reg != nil {
		reg.MustRegister(m.Messages, m.Spans, m.Bytes, m.Errors, m.Rejected, m.DeadLetter, m.Lag, m.Commits, m.KafkaErrors)
	}
	return m
}

// sampler logs each reason at most once per interval, with a sample of the
// input and how many occurrences went unlogged since the last line.
type sampler struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	last map[span.Reason]time.Time
	hush map[span.Reason]int
}

func newSampler(log *slog.Logger, interval time.Duration, now func() time.Time) *sampler {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return &sampler{log: log, interval: interval, now: now,
		last: make(map[span.Reason]time.Time), hush: make(map[span.Reason]int)}
}

// sampleBytes is how much of a bad message a log line shows.
const sampleBytes = 64

// allow reports whether a line for key may be logged now, and how many
// occurrences were suppressed since the last one; n occurrences are noted.
func (s *sampler) allow(key span.Reason, n int) (suppressed int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if t, seen := s.last[key]; seen && now.Sub(t) < s.interval {
		s.hush[key] += n
		return 0, false
	}
	suppressed = s.hush[key]
	s.last[key], s.hush[key] = now, 0
	return suppressed, true
}

// report logs n occurrences of reason unless a line for it was logged
// within the interval, with a hex sample of the message; attrs give the
// context (topic, partition, offset, error).
func (s *sampler) report(reason span.Reason, msg []byte, n int, attrs ...any) {
	suppressed, ok := s.allow(reason, n)
	if !ok {
		return
	}
	sample := msg
	if len(sample) > sampleBytes {
		sample = sample[:sampleBytes]
	}
	attrs = append(attrs, "reason", string(reason), "count", n,
		"suppressed_since_last_log", suppressed, "sample_hex", hex.EncodeToString(sample), "size", len(msg))
	s.log.Warn("skipping bad input", attrs...)
}

// note logs a free-form problem under key at most once per interval.
func (s *sampler) note(key, detail string) {
	if suppressed, ok := s.allow(span.Reason(key), 1); ok {
		s.log.Warn(key, "detail", detail, "suppressed_since_last_log", suppressed)
	}
}

// KafkaError records an error the Kafka client reported and retried: it
// is counted, and the lag is unknown until the next message says it.
func (m *Metrics) KafkaError() {
	m.KafkaErrors.Inc()
	m.Lag.mu.Lock()
	m.Lag.seq++
	m.Lag.errSeq = m.Lag.seq
	m.Lag.mu.Unlock()
}

// LagGauge is the consumer lag as last reported by the reader. While the
// Kafka client has reported an error since that report (a broker away, a
// group rejoining), the true lag is unknown, growing as producers write:
// the series is then not exported, rather than showing a stale value.
type LagGauge struct {
	desc *prometheus.Desc

	mu          sync.Mutex
	v           float64
	seq         int64 // counts reports and client errors, in order
	set, errSeq int64 // the last report's and the last error's place in it
}

// Set records the lag now.
func (g *LagGauge) Set(v float64) {
	g.mu.Lock()
	g.seq++
	g.v, g.set = v, g.seq
	g.mu.Unlock()
}

func (g *LagGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *LagGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	v, known := g.v, g.set >= g.errSeq
	g.mu.Unlock()
	if known {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v)
	}
}
