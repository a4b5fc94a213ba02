package pipeline

import (
	"testing"
	"time"
)

// TestIdleClock: event time moves with the wall clock only after idle of
// silence with every partition caught up and the Kafka client healthy.
func TestIdleClock(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	const idle = 30 * time.Second
	never := time.Time{}

	c := NewIdleClock(idle, t0)
	if c.Advance(at(29), never) || !c.Advance(at(30), never) {
		t.Error("no message at all: want to advance from idle after the start, not before")
	}

	// A backlog: the last message read was not its partition's newest.
	c = NewIdleClock(idle, t0)
	c.Heard(0, true, at(1))
	c.Heard(1, false, at(2))
	if c.Advance(at(100), never) {
		t.Error("advanced while partition 1 still has messages to read")
	}
	c.Heard(1, true, at(101))
	if c.Advance(at(130), never) || !c.Advance(at(131), never) {
		t.Error("caught up: want to advance idle after the last message")
	}

	// The client reported an error (a broker away): idle counts from it.
	if c.Advance(at(200), at(180)) || !c.Advance(at(210), at(180)) {
		t.Error("want to wait idle after the last Kafka error")
	}

	// A partition left behind and then silent (taken by another member)
	// no longer holds event time once forgotten.
	c = NewIdleClock(idle, t0)
	c.Heard(2, false, at(1))
	c.Forget(2)
	if !c.Advance(at(31), never) {
		t.Error("a forgotten partition still holds event time")
	}

	if NewIdleClock(0, t0).Advance(at(1e6), never) {
		t.Error("idle 0 must never advance")
	}
}
