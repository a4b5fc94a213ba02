package wait

import (
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records a failure instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
	panic(r)
}

func TestFor(t *testing.T) {
	n := 0
	For(t, time.Second, time.Millisecond, "three polls", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("polled %d times, want 3", n)
	}
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != any(r) {
				panic(p)
			}
		}()
		Report(r, 20*time.Millisecond, time.Millisecond, "never", func() (bool, string) { return false, "x=1" })
	}()
	if !strings.Contains(r.failed, "last") {
		t.Errorf("a condition never met did not fail the test with what it last saw: %q", r.failed)
	}
}
