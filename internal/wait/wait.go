// Package wait polls a condition in tests, for what has nothing to block
// on (another process, a metric, a broker): every interval until it holds,
// failing the test once limit has passed.
package wait

import (
	"testing"
	"time"
)

// For polls cond every interval until it holds; past limit it fails the
// test, naming what was awaited.
func For(t testing.TB, limit, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	Report(t, limit, interval, what, func() (bool, string) { return cond(), "" })
}

// Report is For with a condition that also says what it last saw, which
// the failure quotes.
func Report(t testing.TB, limit, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if last != "" {
				t.Fatalf("%s: not within %v (last: %s)", what, limit, last)
			}
			t.Fatalf("%s: not within %v", what, limit)
		}
		<-tick.C
	}
}
