package fleet

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	owned     prometheus.Gauge
	workers   prometheus.Gauge
	shards    prometheus.Gauge
	shardWins prometheus.Counter
	leader    prometheus.Gauge
	published prometheus.Counter
	merged    prometheus.Counter
	lateParts prometheus.Counter
	repeated  prometheus.Counter
	rekeyed   prometheus.Counter
	repeats   prometheus.Counter
	dropped   prometheus.Counter
	acks      prometheus.Counter
	errors    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		owned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_fleet_partitions_owned",
			Help: "Span partitions the group assigned to this member."}),
		workers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_fleet_partition_workers",
			Help: "Partition workers running (owned partitions being read)."}),
		shards: prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_fleet_shards_owned",
			Help: "Shards (windows-topic partitions) this member merges for the fleet (cluster.merge: sharded)."}),
		shardWins: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_fleet_shard_windows_published_total",
			Help: "Merged shard windows this member published to the merged topic (cluster.merge: sharded)."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_fleet_leader",
			Help: "1 while this member sends the fleet's alerts."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_fleet_windows_published_total",
			Help: "Per-partition windows this member published to the summaries topic."}),
		merged: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_fleet_windows_merged_total",
			Help: "Whole-fleet windows merged from the summaries and analysed."}),
		lateParts: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_fleet_late_summaries_total",
			Help: "Window summaries dropped because the fleet had stopped waiting for their partition (max_window_wait): calls missing from merged windows."}),
		repeated: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_fleet_repeated_summaries_total",
			Help: "Window summaries dropped as repeats of windows their partition had already closed (a new owner re-reading spans; expected after a hand-over)."}),
		rekeyed: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_fleet_rekeyed_spans_total",
			Help: "Spans re-keyed by trace id for the partition workers."}),
		repeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_fleet_rekey_repeats_total",
			Help: "Re-keyed span messages a partition worker had applied already and skipped: written again after a re-key hand-over or a retried write (expected then; nothing is counted twice)."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_fleet_rekey_dropped_spans_total",
			Help: "Spans the re-key stage could not write: a part of a span message larger than the re-key topic takes (its max.message.bytes)."}),
		acks: prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_fleet_deliveries_heard_total",
			Help: "Alert deliveries read from the leader topic (recorded by any leader, this member included): events no later leader sends again."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_fleet_errors_total",
			Help: "Fleet errors by stage: publish, summary, encode, ack, rekey."}, []string{"stage"}),
	}
	if reg != nil {
		reg.MustRegister(m.owned, m.workers, m.shards, m.shardWins, m.leader, m.published, m.merged, m.lateParts, m.repeated, m.rekeyed, m.repeats, m.dropped, m.acks, m.errors)
	}
	return m
}
