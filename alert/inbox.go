package alert

import (
	"sync"
	"time"

	"github.com/causeway/causeway/incident"
)

// InboxSize is how many windows' changes Offer queues for the notifier's
// goroutine before it makes the caller wait: about ten minutes of 10 s
// windows of a disk too slow to keep up, after which the graph waits for
// it rather than lose an event.
const InboxSize = 64

// inbox holds the changes Offer queued, in window order, until the
// notifier's goroutine (Run), or Sync, observes them.
type inbox struct {
	ch   chan offered
	wake chan struct{} // holds one wake-up for Run's drain loop
	mu   sync.Mutex    // one drain at a time: windows are observed in order
}

type offered struct {
	at      time.Time
	changes []incident.Change
}

func newInbox() *inbox {
	return &inbox{ch: make(chan offered, InboxSize), wake: make(chan struct{}, 1)}
}

// Offer hands a window's incident changes to the notifier: they become
// events on its own goroutine (Run), so writing the outbox, which syncs
// to disk, never holds up the caller (the graph) unless InboxSize windows
// are already waiting; then the caller waits, counted, and nothing is
// dropped. at is the window's end, as for Observe.
func (n *Notifier) Offer(at time.Time, changes []incident.Change) {
	if len(n.senders) == 0 {
		return
	}
	o := offered{at: at, changes: changes}
	select {
	case n.in.ch <- o:
	default:
		n.m.inboxFull.Inc()
		n.in.ch <- o
	}
	select {
	case n.in.wake <- struct{}{}:
	default:
	}
}

// drain observes every window queued so far, in order.
func (n *Notifier) drain() {
	n.in.mu.Lock()
	defer n.in.mu.Unlock()
	for {
		select {
		case o := <-n.in.ch:
			n.Observe(o.at, o.changes)
		default:
			return
		}
	}
}
