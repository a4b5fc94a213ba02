// Package fleet runs several detectors as one, through Kafka alone: the
// members of one consumer group share the span topic's partitions; each
// aggregates the partitions it owns into windows and publishes them, per
// source partition, to a summaries topic; every member reads all summaries
// and merges them, so each sees the whole graph and computes the same
// baselines and incidents; and the member that owns the one partition of a
// leader topic sends the alerts.
//
// A partition's summaries are ordered (they share a key): windows, then a
// watermark saying every window of that partition ending at or before it
// is complete. Offsets of the span topic are committed only once the
// windows holding their spans are published, so a member that takes over
// a partition resumes where its summaries stopped, and windows the previous
// owner already published are neither lost nor counted twice.
package fleet

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"time"

	"github.com/causeway/causeway/graph"
)

// summary is one message of the summaries topic.
type summary struct {
	// Source and Partition name the span partition it describes.
	Source    string
	Partition int
	// Window, when set, is part or all of one of its windows (encoded
	// graph.Window); several parts of one window merge.
	Window []byte
	// ClosedTo, when Window is empty, is the partition's watermark (Unix
	// ns): its windows ending at or before it are complete.
	ClosedTo int64
	// Member published it, for logs.
	Member string
}

func (s *summary) key() []byte { return []byte(fmt.Sprintf("%s/%d", s.Source, s.Partition)) }

func encodeSummary(s *summary) ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(s); err != nil {
		return nil, fmt.Errorf("encode summary: %w", err)
	}
	return b.Bytes(), nil
}

func decodeSummary(b []byte) (*summary, error) {
	var s summary
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decode summary: %w", err)
	}
	return &s, nil
}

// splitWindow cuts w into parts that each encode to about maxBytes or less
// (a part holds whole edges and operations), so that no message exceeds the
// broker's limit however large the graph.
func splitWindow(w *graph.Window, maxBytes int) ([][]byte, error) {
	whole, err := graph.EncodeWindow(w)
	if err != nil {
		return nil, err
	}
	if len(whole) <= maxBytes {
		return [][]byte{whole}, nil
	}
	parts := len(whole)/maxBytes + 1
	chunks := make([]*graph.Window, parts)
	for i := range chunks {
		chunks[i] = graph.NewWindow(w.Start, w.End)
	}
	i := 0
	for k, e := range w.Edges {
		chunks[i%parts].Edges[k] = e
		i++
	}
	for k, o := range w.Ops {
		chunks[i%parts].Ops[k] = o
		i++
	}
	for k, n := range w.Nodes {
		chunks[0].Nodes[k] = n
	}
	for k, c := range w.ClientOps {
		chunks[0].ClientOps[k] = c
	}
	for k, c := range w.Callees {
		chunks[0].Callees[k] = c
	}
	for k, u := range w.Unanswered {
		chunks[0].Unanswered[k] = u
	}
	out := make([][]byte, 0, parts)
	for _, c := range chunks {
		b, err := graph.EncodeWindow(c)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// merger folds the summaries of every span partition into whole windows and
// hands each on once all partitions have closed it. It is driven by one
// goroutine.
type merger struct {
	partitions int           // of the span topic
	maxWait    time.Duration // wall-clock time a window waits for a silent partition
	now        func() time.Time
	emit       func(*graph.Window)
	// onLate sees a window part dropped: repeat when its partition had
	// already closed that window (a new owner re-reading spans, expected),
	// otherwise late (the merger stopped waiting for the partition: its
	// calls are missing from the fleet's window).
	onLate func(source string, partition int, start time.Time, repeat bool)

	started  time.Time
	closedTo map[int]int64           // per span partition
	heard    map[int]time.Time       // when each partition's last summary was read
	open     map[int64]*graph.Window // by start, not yet handed on
	emitted  int64                   // windows ending at or before this were handed on
}

func newMerger(partitions int, maxWait time.Duration, now func() time.Time, emit func(*graph.Window)) *merger {
	return &merger{partitions: partitions, maxWait: maxWait, now: now, emit: emit, started: now(),
		closedTo: map[int]int64{}, heard: map[int]time.Time{}, open: map[int64]*graph.Window{}}
}

// add applies one summary and hands on the windows it completes. A window
// part for a window its partition has already closed is a repeat (a new
// owner re-reading spans) and is dropped, as is one for a window already
// handed on.
func (m *merger) add(s *summary) error {
	m.heard[s.Partition] = m.now()
	if len(s.Window) == 0 {
		if s.ClosedTo > m.closedTo[s.Partition] {
			m.closedTo[s.Partition] = s.ClosedTo
			m.flush()
		}
		return nil
	}
	w, err := graph.DecodeWindow(s.Window)
	if err != nil {
		return err
	}
	end := w.End.UnixNano()
	if repeat := end <= m.closedTo[s.Partition]; repeat || end <= m.emitted {
		if m.onLate != nil {
			m.onLate(s.Source, s.Partition, w.Start, repeat)
		}
		return nil
	}
	if o, ok := m.open[w.Start.UnixNano()]; ok {
		o.Merge(w)
	} else {
		m.open[w.Start.UnixNano()] = w
	}
	return nil
}

// complete is the watermark of the whole topic: the least of the
// partitions', leaving out a partition nothing was heard from for maxWait
// (its owner died and no other took it over yet, or it has no owner). A
// partition behind the others but publishing is waited for, however far
// behind: it is catching up.
func (m *merger) complete() int64 {
	now := m.now()
	lo, hi, waiting := int64(1<<62), int64(0), 0
	for p := range m.partitions {
		c := m.closedTo[p] // 0 for a partition never heard from
		hi = max(hi, c)
		last, ok := m.heard[p]
		if !ok {
			last = m.started
		}
		if m.maxWait > 0 && now.Sub(last) > m.maxWait {
			continue
		}
		lo, waiting = min(lo, c), waiting+1
	}
	if waiting == 0 {
		return hi
	}
	return lo
}

// flush hands on, oldest first, every open window the watermark has passed.
func (m *merger) flush() {
	done := m.complete()
	for {
		start, found := int64(0), false
		for s, w := range m.open {
			if w.End.UnixNano() <= done && (!found || s < start) {
				start, found = s, true
			}
		}
		if !found {
			break
		}
		w := m.open[start]
		delete(m.open, start)
		m.emitted = max(m.emitted, w.End.UnixNano())
		m.emit(w)
	}
	m.emitted = max(m.emitted, done)
}
