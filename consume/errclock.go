package consume

import (
	"sync/atomic"
	"time"
)

// ErrorClock records when a Kafka client last reported an error: a broker
// away, a group rejoining, a fetch that failed. A stream driver waits for
// data that may still come after one. Safe for concurrent use; the zero
// value has seen none.
type ErrorClock struct{ ns atomic.Int64 }

// Note records an error now.
func (e *ErrorClock) Note() { e.ns.Store(time.Now().UnixNano()) }

// Last returns when the last error was noted, the zero time if none was.
func (e *ErrorClock) Last() time.Time {
	if ns := e.ns.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
