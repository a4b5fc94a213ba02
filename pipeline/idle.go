// Package pipeline holds what every stream driver shares: how a detector
// reading partitions moves event time on when traffic stops (IdleClock),
// whether it reads one topic alone or a partition of a fleet.
package pipeline

import "time"

// IdleClock decides when the wall clock may move event time on: only once
// traffic has really stopped, never while data that exists is still to be
// read. A backlog (a restart, a new group reading from the earliest
// offset, a catch-up after an outage) is then read in event time, as the
// live stream was, instead of being thrown away as too late. It moves
// event time only when, for idle:
//   - no message has arrived,
//   - the Kafka client has reported no error (a broker away, a group
//     rejoining: what a Collector buffers meanwhile is still to come), and
//   - every partition heard from was caught up at its last message (it
//     was its partition's newest).
//
// Before any message, it waits idle from its start too.
type IdleClock struct {
	idle   time.Duration
	last   time.Time    // the last message, or the start
	behind map[int]bool // partitions whose last message was not their newest
}

// NewIdleClock returns a clock that moves event time on after idle (0:
// never), counting from start until the first message.
func NewIdleClock(idle time.Duration, start time.Time) *IdleClock {
	return &IdleClock{idle: idle, last: start, behind: map[int]bool{}}
}

// Heard records a message of partition p; newest: it was p's newest.
func (c *IdleClock) Heard(p int, newest bool, now time.Time) {
	c.last = now
	if newest {
		delete(c.behind, p)
	} else {
		c.behind[p] = true
	}
}

// Forget drops partition p, silent for long: taken by another member of
// the group, or behind a broker that is away (which the client reports).
func (c *IdleClock) Forget(p int) { delete(c.behind, p) }

// Advance reports whether event time may move to now less idle, given
// when the Kafka client last reported an error.
func (c *IdleClock) Advance(now, lastError time.Time) bool {
	if c.idle <= 0 || len(c.behind) > 0 {
		return false
	}
	quietSince := c.last
	if lastError.After(quietSince) {
		quietSince = lastError
	}
	return now.Sub(quietSince) >= c.idle
}
