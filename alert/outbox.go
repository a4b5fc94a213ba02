package alert

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/causeway/causeway/statefs"
)

// delivery is one event on its way to one receiver, as kept in the outbox.
type delivery struct {
	Seq        uint64    `json:"seq"`
	EnqueuedAt time.Time `json:"enqueued_at"` // wall clock
	Event      Event     `json:"event"`
	unsaved    bool      // its file could not be written: in memory only, until sync
}

// queue is one receiver's undelivered events, oldest first: a directory
// of one file per delivery (written, synced and renamed into place before
// the event can be sent; removed once it is delivered or given up) and the
// same deliveries in memory. One send loop takes from it; any goroutine may
// add to it.
type queue struct {
	dir  string
	fs   statefs.FS
	max  int
	mu   sync.Mutex
	list []*delivery
	next uint64
	wake chan struct{} // a token when the list may have grown
}

const deliverySuffix = ".json"

// openQueue loads the deliveries left in dir by an earlier run.
func openQueue(dir string, fs statefs.FS, limit int) (*queue, []error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("open outbox: %w", err)
	}
	q := &queue{dir: dir, fs: statefs.Or(fs), max: limit, wake: make(chan struct{}, 1), next: 1}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("open outbox: %w", err)
	}
	var bad []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") { // a write cut short by a crash
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, deliverySuffix), 10, 64)
		if err != nil || !strings.HasSuffix(name, deliverySuffix) {
			continue
		}
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		var d delivery
		if err == nil {
			err = json.Unmarshal(b, &d)
		}
		if err != nil {
			// Keep it for a person to look at, out of the way of the loop.
			_ = os.Rename(path, path+".unreadable")
			bad = append(bad, fmt.Errorf("outbox %s: %w", path, err))
			continue
		}
		d.Seq = seq
		q.list = append(q.list, &d)
		q.next = max(q.next, seq+1)
	}
	slices.SortFunc(q.list, func(a, b *delivery) int { return compareSeq(a.Seq, b.Seq) })
	return q, bad, nil
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (q *queue) path(seq uint64) string {
	return filepath.Join(q.dir, fmt.Sprintf("%020d%s", seq, deliverySuffix))
}

// add writes the event to disk, then queues it. It returns the deliveries
// dropped to stay within the bound (oldest first), and the error of the
// write, in which case the event is queued in memory only (and written by
// the next sync that works).
func (q *queue) add(e Event, now time.Time) (dropped []*delivery, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := &delivery{Seq: q.next, EnqueuedAt: now, Event: e}
	q.next++
	err = writeFileSync(q.fs, q.path(d.Seq), d)
	d.unsaved = err != nil
	if err == nil {
		_ = q.syncLocked() // the disk works again: write what it refused before
	}
	q.list = append(q.list, d)
	for q.max > 0 && len(q.list) > q.max {
		dropped = append(dropped, q.list[0])
		_ = os.Remove(q.path(q.list[0].Seq))
		q.list = q.list[1:]
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return dropped, err
}

// head is the oldest undelivered event, nil when there is none.
func (q *queue) head() *delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.list) == 0 {
		return nil
	}
	return q.list[0]
}

// done removes d, delivered or given up. It is a no-op when d was dropped
// meanwhile.
func (q *queue) done(d *delivery) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.list, d)
	if i < 0 {
		return nil
	}
	q.list = slices.Delete(q.list, i, i+1)
	if err := os.Remove(q.path(d.Seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// remove drops the waiting event with this id, if any.
func (q *queue) remove(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.IndexFunc(q.list, func(d *delivery) bool { return d.Event.ID == id })
	if i < 0 {
		return
	}
	_ = os.Remove(q.path(q.list[i].Seq))
	q.list = slices.Delete(q.list, i, i+1)
}

// has reports whether an event with this id is waiting.
func (q *queue) has(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.ContainsFunc(q.list, func(d *delivery) bool { return d.Event.ID == id })
}

// stats returns the number of waiting events and the oldest's enqueue time.
func (q *queue) stats() (n int, oldest time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.list) > 0 {
		oldest = q.list[0].EnqueuedAt
	}
	return len(q.list), oldest
}

// sync writes the waiting deliveries whose files could not be written
// before, and returns the first error; nil when every waiting delivery is
// on disk.
func (q *queue) sync() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.syncLocked()
}

func (q *queue) syncLocked() error {
	for _, d := range q.list {
		if !d.unsaved {
			continue
		}
		if err := writeFileSync(q.fs, q.path(d.Seq), d); err != nil {
			return err
		}
		d.unsaved = false
	}
	return nil
}

// writeFileSync writes v as JSON to path atomically and durably: a
// temporary file in the same directory, synced, renamed into place, and the
// directory synced so the rename survives a crash.
func writeFileSync(fs statefs.FS, path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fs.WriteFile(path, b)
}
