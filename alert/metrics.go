package alert

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the notifier; every series is labelled by receiver name, a
// bounded set fixed by the configuration.
type metrics struct {
	events    *prometheus.CounterVec // kind
	sent      *prometheus.CounterVec // receiver
	failed    *prometheus.CounterVec // receiver, reason: rejected, expired, dropped
	retried   *prometheus.CounterVec // receiver, reason: network, http_5xx, http_429
	resent    *prometheus.CounterVec // receiver, result: ok, error
	held      prometheus.Counter
	outboxErr prometheus.Counter
	inboxFull prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_alert_events_total",
			Help: "Alert events created, by kind (opened, updated, resolved)."}, []string{"kind"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_alert_sent_total",
			Help: "Events delivered, by receiver."}, []string{"receiver"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_alert_failed_total",
			Help: "Events given up, by receiver and reason: rejected (4xx other than 429), expired (retried past max_age), dropped (queue full)."},
			[]string{"receiver", "reason"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_alert_retried_total",
			Help: "Delivery attempts that will be retried, by receiver and reason: network, http_5xx, http_429."},
			[]string{"receiver", "reason"}),
		resent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_alert_resent_total",
			Help: "Firing alerts re-posted to Alertmanager receivers, by result (ok, error)."}, []string{"receiver", "result"}),
		held: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_alert_updates_held_total",
			Help: "Incident updates held back by update_interval (sent together later)."}),
		inboxFull: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_alert_inbox_full_total",
			Help: "Windows whose incident changes waited for the notifier: its queue of windows was full because the outbox disk is slow."}),
		outboxErr: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_alert_outbox_errors_total",
			Help: "Outbox or ledger writes that failed; the event is still sent but would not survive a crash."}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.sent, m.failed, m.retried, m.resent, m.held, m.outboxErr, m.inboxFull)
	}
	return m
}

// queueCollector reports each receiver's queue depth and the age of its
// oldest undelivered event when scraped.
type queueCollector struct {
	n          *Notifier
	depth, age *prometheus.Desc
}

func newQueueCollector(n *Notifier) *queueCollector {
	return &queueCollector{n: n,
		depth: prometheus.NewDesc("causeway_alert_queue_depth", "Undelivered events, by receiver.", []string{"receiver"}, nil),
		age: prometheus.NewDesc("causeway_alert_oldest_undelivered_seconds",
			"Age of the oldest undelivered event, by receiver; 0 when none waits.", []string{"receiver"}, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.depth; ch <- c.age }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.n.now()
	for _, s := range c.n.senders {
		n, oldest := s.q.stats()
		age := 0.0
		if n > 0 {
			age = max(0, now.Sub(oldest).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), s.r.Name)
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age, s.r.Name)
	}
}
