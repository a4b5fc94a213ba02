package sim

import (
	"math"
	"time"
)

// BatchJob is a recurring, legitimate batch job: a service, batchjob, that
// runs for Duration every Every, the first run starting Offset after
// Config.Start. While a run lasts, job requests arrive as a Poisson process
// at Rate per second, each a trace whose root is an internal span "reindex"
// in batchjob that calls productcatalogservice's
// hipstershop.ProductCatalogService/ListProducts (gRPC), which queries
// catalog-db.
//
// The extra load slows that path: every trace that starts during a run,
// user requests included, sees the self time of productcatalogservice's
// operations and its catalog-db calls 1+Slowdown times as long. Nothing off
// the path changes, and user requests arrive as they would without the job
// (job requests draw from their own random streams).
//
// The zero value is usable: a 3-minute run every 30 minutes from Start,
// 10 job requests per second, 40% slower on the path while it runs.
type BatchJob struct {
	// Every is the time from the start of one run to the start of the
	// next. Zero means 30 minutes.
	Every time.Duration
	// Duration is how long each run lasts; it must be shorter than Every.
	// Zero means 3 minutes.
	Duration time.Duration
	// Offset is the start of the first run, from Config.Start.
	Offset time.Duration
	// Rate is the mean number of job requests (traces) per second while a
	// run lasts. Zero means 10.
	Rate float64
	// Slowdown is the relative rise of productcatalogservice self time and
	// catalog-db call latency while a run lasts. Zero means 0.4 (40%).
	Slowdown float64
}

// Defaults for zero BatchJob fields.
const (
	DefaultBatchEvery    = 30 * time.Minute
	DefaultBatchDuration = 3 * time.Minute
	DefaultBatchRate     = 10
	DefaultBatchSlowdown = 0.4
)

func (b BatchJob) withDefaults() BatchJob {
	if b.Every == 0 {
		b.Every = DefaultBatchEvery
	}
	if b.Duration == 0 {
		b.Duration = DefaultBatchDuration
	}
	if b.Rate == 0 {
		b.Rate = DefaultBatchRate
	}
	if b.Slowdown == 0 {
		b.Slowdown = DefaultBatchSlowdown
	}
	return b
}

func (b BatchJob) validate() error {
	switch {
	case b.Every < 0:
		return bad("Batch.Every", "must be positive, have %v", b.Every)
	case b.Duration < 0:
		return bad("Batch.Duration", "must be positive, have %v", b.Duration)
	case b.Every <= b.Duration:
		return bad("Batch.Every", "must exceed Batch.Duration (%v), have %v", b.Duration, b.Every)
	case b.Offset < 0:
		return bad("Batch.Offset", "%v is negative", b.Offset)
	case math.IsNaN(b.Rate) || math.IsInf(b.Rate, 0) || b.Rate < 0:
		return bad("Batch.Rate", "must be a positive number of requests per second, have %v", b.Rate)
	case math.IsNaN(b.Slowdown) || math.IsInf(b.Slowdown, 0) || b.Slowdown < 0:
		return bad("Batch.Slowdown", "must be a positive fraction, have %v", b.Slowdown)
	}
	return nil
}

// schedule is a batch job's runs in Unix nanoseconds: [first+k*every,
// first+k*every+dur) for k ≥ 0.
type schedule struct{ first, every, dur int64 }

// active reports whether a run is under way at t.
func (sc schedule) active(t int64) bool {
	return t >= sc.first && (t-sc.first)%sc.every < sc.dur
}

// run returns the run under way at t, or else the next one.
func (sc schedule) run(t int64) (from, to int64) {
	from = sc.first
	if t > from {
		from += (t - from) / sc.every * sc.every
	}
	if t >= from+sc.dur {
		from += sc.every
	}
	return from, from + sc.dur
}

// job is the state of a running batch job.
type job struct {
	runs schedule
	rate float64 // requests per second while a run lasts
	busy float64 // latency multiplier on the job's path while a run lasts
	next int64   // start of the next job request
	n    uint64  // job requests generated
	arr  rng
}

func newJob(b BatchJob, seed, start int64) *job {
	j := &job{
		runs: schedule{first: start + int64(b.Offset), every: int64(b.Every), dur: int64(b.Duration)},
		rate: b.Rate,
		busy: 1 + b.Slowdown,
		arr:  newRNG(seed, streamJobArrivals),
	}
	j.next = j.after(start)
	return j
}

// after draws the start of the job request that follows t: an exponential
// gap counted in run time only, so the time between runs is skipped.
func (j *job) after(t int64) int64 {
	gap := int64(min(j.arr.Exp()/j.rate*1e9, 1e18))
	gap = max(gap, 1)
	from, to := j.runs.run(t)
	t = max(t, from)
	if gap < to-t {
		return t + gap
	}
	gap -= to - t
	// The gap ends k whole runs after this one's next.
	k := gap / j.runs.dur
	if k > (math.MaxInt64-max(from, 0))/j.runs.every-2 {
		return math.MaxInt64 // beyond any simulation
	}
	return from + (k+1)*j.runs.every + gap%j.runs.dur
}

// busyAt returns the latency multiplier on the job's path for a trace
// starting at t: 1 outside runs and without a job.
func (j *job) busyAt(t int64) float64 {
	if j != nil && j.runs.active(t) {
		return j.busy
	}
	return 1
}

// BatchRunning reports whether a run of Config.Batch is under way at
// simulated time t; it is always false without a batch job. Runs follow
// the schedule alone, whatever Steady and the daily curve do.
func (s *Sim) BatchRunning(t time.Time) bool {
	return s.job != nil && s.job.runs.active(t.UnixNano())
}
