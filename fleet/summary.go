// Package fleet runs several detectors as one, through Kafka alone: the
// members of one consumer group share the span topic's partitions; each
// aggregates the partitions it owns into windows and publishes them to a
// summaries topic, each series to the partition of its shard; the members
// share those shards in a second group, each merging its shards' series
// once and publishing the merged windows to a merged topic; every member
// reads all merged windows and puts them together, so each sees the whole
// graph and computes the same baselines and incidents (shard.go); and the
// member that owns the one partition of a leader topic sends the alerts.
// Without the sharded merge every member reads and merges every
// partition's summaries itself.
//
// A partition's summaries to a shard are ordered: windows, then a
// watermark saying every window of that partition ending at or before it
// is complete. Offsets of the span topic are committed only once the
// windows holding their spans are published, so a member that takes over
// a partition resumes where its summaries stopped, and windows the previous
// owner already published are neither lost nor counted twice.
package fleet

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/fleet/fleetpb"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/sketch"
	"github.com/causeway/causeway/span"
)

// summaryFormat is the summary format this build writes and the newest it
// reads (fleetpb.Summary.format, fleet/fleetpb/summary.proto).
const summaryFormat = 1

// summary is one message of the summaries topic.
type summary struct {
	// Source and Partition name the span partition it describes.
	Source    string
	Partition int
	// Window, when set, is part or all of one of its windows; several
	// parts of one window merge.
	Window *fleetpb.Window
	// ClosedTo, when Window is nil, is the partition's watermark (Unix
	// ns): its windows ending at or before it are complete.
	ClosedTo int64
	// Member published it, for logs.
	Member string
}

func (s *summary) key() []byte { return []byte(fmt.Sprintf("%s/%d", s.Source, s.Partition)) }

func encodeSummary(s *summary) ([]byte, error) {
	b, err := proto.Marshal(&fleetpb.Summary{Format: summaryFormat, Source: s.Source, Partition: int32(s.Partition),
		Member: s.Member, Window: s.Window, ClosedToUnixNano: s.ClosedTo})
	if err != nil {
		return nil, fmt.Errorf("encode summary: %w", err)
	}
	return b, nil
}

// newerFormatError is a summary written in a format newer than this
// member reads (a member of a later version, during an upgrade): it is
// not merged, as what it holds might be misread.
type newerFormatError struct{ format uint32 }

func (e *newerFormatError) Error() string {
	return fmt.Sprintf("summary format %d is newer than this member reads (%d): written by a later version", e.format, summaryFormat)
}

var errNoFormat = errors.New("not a versioned window summary (no format): written by a member of a version before format 1, or not a summary")

func decodeSummary(b []byte) (*summary, error) {
	var m fleetpb.Summary
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode summary: %w", err)
	}
	switch {
	case m.Format == 0:
		return nil, errNoFormat
	case m.Format > summaryFormat:
		return nil, &newerFormatError{format: m.Format}
	}
	return &summary{Source: m.Source, Partition: int(m.Partition), Window: m.Window, ClosedTo: m.ClosedToUnixNano, Member: m.Member}, nil
}

// encodeWindow converts w to its summary form, edges and operations in
// key order.
func encodeWindow(w *graph.Window) (*fleetpb.Window, error) {
	out := &fleetpb.Window{StartUnixNano: w.Start.UnixNano(), EndUnixNano: w.End.UnixNano()}
	for _, k := range graph.SortedKeys(w.Edges, graph.CompareEdge) {
		e := w.Edges[k]
		lat, err := e.Latency.MarshalBinary()
		if err != nil {
			return nil, err
		}
		pe := &fleetpb.Edge{Source: k.Source, Target: k.Target, Operation: k.Operation, Requests: e.Requests, Errors: e.Errors,
			Latency: lat, GapSumMs: e.GapSum, GapCount: e.GapCount}
		for _, x := range e.Exemplars {
			pe.Exemplars = append(pe.Exemplars, &fleetpb.Exemplar{TraceId: x.TraceID[:], LatencyMs: x.LatencyMS, Error: x.Error})
		}
		out.Edges = append(out.Edges, pe)
	}
	// An operation's flags travel with it; a flag of an operation without
	// runs (none is made so, but a merged window could hold one) travels
	// as an operation without runs.
	keys := graph.SortedKeys(w.Ops, graph.CompareOp)
	flagged := map[graph.OpKey]bool{}
	for _, m := range []map[graph.OpKey]bool{w.ClientOps, w.Unanswered} {
		for k := range m {
			flagged[k] = true
		}
	}
	for k := range w.Callees {
		flagged[k] = true
	}
	for k := range flagged {
		if _, ok := w.Ops[k]; ok {
			delete(flagged, k)
		}
	}
	keys = append(keys, graph.SortedKeys(flagged, graph.CompareOp)...)
	for _, k := range keys {
		po := &fleetpb.Operation{Service: k.Service, Operation: k.Operation, Client: w.ClientOps[k], Callee: w.Callees[k], Unanswered: w.Unanswered[k]}
		if o, ok := w.Ops[k]; ok {
			var err error
			po.Requests, po.Errors = o.Requests, o.Errors
			if po.Duration, err = o.Duration.MarshalBinary(); err != nil {
				return nil, err
			}
			if po.SelfTime, err = o.SelfTime.MarshalBinary(); err != nil {
				return nil, err
			}
		}
		out.Operations = append(out.Operations, po)
	}
	for _, name := range graph.SortedKeys(w.Nodes, strings.Compare) {
		n := w.Nodes[name]
		out.Nodes = append(out.Nodes, &fleetpb.Node{Name: n.Name, Kind: string(n.Kind), System: n.System})
	}
	return out, nil
}

// nodeKinds are the node kinds a summary may name; another is read as
// NodeExternal (a kind a later version added).
var nodeKinds = map[string]graph.NodeKind{
	string(graph.NodeService): graph.NodeService, string(graph.NodeDatabase): graph.NodeDatabase,
	string(graph.NodeCache): graph.NodeCache, string(graph.NodeQueue): graph.NodeQueue, string(graph.NodeExternal): graph.NodeExternal,
}

// decodeWindow converts a summary's window back; a malformed one (a
// sketch that does not decode, a trace id of the wrong length) is an
// error, never merged in part.
func decodeWindow(p *fleetpb.Window) (*graph.Window, error) {
	if p.EndUnixNano <= p.StartUnixNano {
		return nil, fmt.Errorf("decode window: ends (%d) before it starts (%d)", p.EndUnixNano, p.StartUnixNano)
	}
	w := graph.NewWindow(time.Unix(0, p.StartUnixNano).UTC(), time.Unix(0, p.EndUnixNano).UTC())
	lat := func(b []byte) (*sketch.Latency, error) {
		l := sketch.NewLatency()
		if len(b) == 0 {
			return l, nil
		}
		if err := l.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("decode window: %w", err)
		}
		return l, nil
	}
	for _, e := range p.Edges {
		l, err := lat(e.Latency)
		if err != nil {
			return nil, err
		}
		st := &graph.EdgeStats{Requests: e.Requests, Errors: e.Errors, Latency: l, GapSum: e.GapSumMs, GapCount: e.GapCount}
		for _, x := range e.Exemplars {
			var id span.TraceID
			if len(x.TraceId) != len(id) {
				return nil, fmt.Errorf("decode window: exemplar trace id of %d bytes", len(x.TraceId))
			}
			copy(id[:], x.TraceId)
			st.Exemplars = append(st.Exemplars, graph.Exemplar{TraceID: id, LatencyMS: x.LatencyMs, Error: x.Error})
		}
		k := graph.EdgeKey{Source: e.Source, Target: e.Target, Operation: e.Operation}
		if o, ok := w.Edges[k]; ok {
			o.Merge(st)
		} else {
			w.Edges[k] = st
		}
	}
	for _, o := range p.Operations {
		k := graph.OpKey{Service: o.Service, Operation: o.Operation}
		if o.Requests > 0 || len(o.Duration) > 0 || len(o.SelfTime) > 0 {
			d, err := lat(o.Duration)
			if err != nil {
				return nil, err
			}
			self, err := lat(o.SelfTime)
			if err != nil {
				return nil, err
			}
			st := &graph.OpStats{Requests: o.Requests, Errors: o.Errors, Duration: d, SelfTime: self}
			if prev, ok := w.Ops[k]; ok {
				prev.Merge(st)
			} else {
				w.Ops[k] = st
			}
		}
		if o.Client {
			w.ClientOps[k] = true
		}
		if o.Unanswered {
			w.Unanswered[k] = true
		}
		if o.Callee != "" && w.Callees[k] == "" {
			w.Callees[k] = o.Callee
		}
	}
	for _, n := range p.Nodes {
		kind, ok := nodeKinds[n.Kind]
		if !ok {
			kind = graph.NodeExternal
		}
		w.Nodes[n.Name] = graph.Node{Name: n.Name, Kind: kind, System: n.System}
	}
	return w, nil
}

// splitWindow cuts w into parts that each encode to about maxBytes or less
// (a part holds whole edges and operations, each with its flags), so that
// no message exceeds the broker's limit however large the graph.
func splitWindow(w *graph.Window, maxBytes int) ([]*fleetpb.Window, error) {
	whole, err := encodeWindow(w)
	if err != nil {
		return nil, err
	}
	size := proto.Size(whole)
	if size <= maxBytes {
		return []*fleetpb.Window{whole}, nil
	}
	parts := size/maxBytes + 1
	chunks := make([]*fleetpb.Window, parts)
	for i := range chunks {
		chunks[i] = &fleetpb.Window{StartUnixNano: whole.StartUnixNano, EndUnixNano: whole.EndUnixNano}
	}
	i := 0
	for _, e := range whole.Edges {
		chunks[i%parts].Edges = append(chunks[i%parts].Edges, e)
		i++
	}
	for _, o := range whole.Operations {
		chunks[i%parts].Operations = append(chunks[i%parts].Operations, o)
		i++
	}
	chunks[0].Nodes = whole.Nodes
	return chunks, nil
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
	m.hear(s.Partition)
	if s.Window == nil {
		if s.ClosedTo > m.closedTo[s.Partition] {
			m.closedTo[s.Partition] = s.ClosedTo
			m.flush()
		}
		return nil
	}
	w, err := decodeWindow(s.Window)
	if err != nil {
		return err
	}
	m.addWindow(s.Source, s.Partition, w)
	return nil
}

// addWindow merges w, part or all of a window of partition p, as add does
// a decoded summary's; it takes w over. The caller has heard p.
func (m *merger) addWindow(source string, p int, w *graph.Window) {
	end := w.End.UnixNano()
	if repeat := end <= m.closedTo[p]; repeat || end <= m.emitted {
		if m.onLate != nil {
			m.onLate(source, p, w.Start, repeat)
		}
		return
	}
	if o, ok := m.open[w.Start.UnixNano()]; ok {
		o.Merge(w)
	} else {
		m.open[w.Start.UnixNano()] = w
	}
}

// hear notes a summary of partition p read: the partition is alive.
func (m *merger) hear(p int) { m.heard[p] = m.now() }

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
