package baselines

import (
	"compress/gzip"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/baseline"
	"github.com/causeway/causeway/model/sketch"
)

// The baseline snapshot format: gzip of a gob stream holding a header and
// then every series. The header's version changes whenever the encoding
// does; its feature names must match the running code's, else the
// snapshot describes other vectors and is refused.
//
// Version 3 replaces the exceedance references with the sequential
// check's state (a version 2 reference seeds it).
// Version 2 adds, after the series, what a restart needs to score the
// next windows exactly as an uninterrupted run would: the exceedance
// reference sketches and the windows pooled for quiet series. Version 1
// snapshots are still read (those start empty).
const (
	snapshotMagic   = "causeway-baselines"
	snapshotVersion = 3
)

type snapshotHeader struct {
	Magic      string
	Version    int
	EdgeFeats  []string
	OpFeats    []string
	Edges, Ops int
	Windows    int64
	// Window is the length of the windows the baselines learned from;
	// zero in snapshots written before it was recorded.
	Window time.Duration
}

// OtherWindowError is Load's error for a snapshot learned from windows of
// another length: its features (rates, quantiles per window) and every
// horizon counted in windows mean something else, so it cannot be used.
type OtherWindowError struct {
	Snapshot, Running time.Duration
}

func (e *OtherWindowError) Error() string {
	return fmt.Sprintf("load baselines: learned from %v windows, this detector uses %v", e.Snapshot, e.Running)
}

type edgeState struct {
	Key   graph.EdgeKey
	State baseline.State
}

type opState struct {
	Key   graph.OpKey
	State baseline.State
}

// scratchState is the rest of what Observe keeps between windows.
type scratchState struct {
	RefEdges    []refState[graph.EdgeKey]
	RefOps      []refState[graph.OpKey]
	SeqEdges    []seqState[graph.EdgeKey]
	SeqOps      []seqState[graph.OpKey]
	SeqOpDur    []seqState[graph.OpKey]
	SeqServices []svcState // absent before services were pooled
	First       int64      // Baselines.first
	SparseEdges []sparseState[graph.EdgeKey, *graph.EdgeStats]
	SparseOps   []sparseState[graph.OpKey, *graph.OpStats]
}

type refState[K comparable] struct {
	Key    K
	Sketch *sketch.Latency
}

type seqState[K comparable] struct {
	Key    K
	Series *seqSeries
}

func saveSeq[K comparable](m map[K]*seqSeries, cmp func(a, b K) int) []seqState[K] {
	out := make([]seqState[K], 0, len(m))
	for _, k := range graph.SortedKeys(m, cmp) {
		out = append(out, seqState[K]{Key: k, Series: m[k]})
	}
	return out
}

type svcState struct {
	Key    string
	Series *seqService
}

func saveServices(m map[string]*seqService) []svcState {
	out := make([]svcState, 0, len(m))
	for _, k := range graph.SortedKeys(m, strings.Compare) {
		out = append(out, svcState{Key: k, Series: m[k]})
	}
	return out
}

// loadSeq rebuilds the sequential check's state; a version 2 snapshot's
// exceedance references seed it.
func loadSeq[K comparable](seq []seqState[K], refs []refState[K]) map[K]*seqSeries {
	m := make(map[K]*seqSeries, len(seq)+len(refs))
	for _, r := range refs {
		s := newSeqSeries()
		s.Ref = keptRef(r.Sketch)
		s.Calls = float32(s.Ref.Count())
		m[r.Key] = s
	}
	for _, q := range seq {
		s := q.Series
		if s == nil {
			continue
		}
		s.Ref = keptRef(s.Ref)
		if s.Pending != nil {
			s.Pending.Latency = keptRef(s.Pending.Latency)
		}
		m[q.Key] = s
	}
	return m
}

// alarmed is the set of series in a reported episode.
func alarmed[K comparable](m map[K]*seqSeries) map[K]bool {
	out := make(map[K]bool)
	for k, s := range m {
		if s.reported() {
			out[k] = true
		}
	}
	return out
}

type sparseState[K comparable, S any] struct {
	Key     K
	Stats   S
	Start   time.Time
	Windows int
}

func saveRefs[K comparable](m map[K]*sketch.Latency, cmp func(a, b K) int) []refState[K] {
	out := make([]refState[K], 0, len(m))
	for _, k := range graph.SortedKeys(m, cmp) {
		out = append(out, refState[K]{Key: k, Sketch: m[k]})
	}
	return out
}

func saveSparse[K comparable, S any](m map[K]*sparse[S], cmp func(a, b K) int) []sparseState[K, S] {
	out := make([]sparseState[K, S], 0, len(m))
	for _, k := range graph.SortedKeys(m, cmp) {
		sp := m[k]
		out = append(out, sparseState[K, S]{Key: k, Stats: sp.stats, Start: sp.start, Windows: sp.windows})
	}
	return out
}

func names(fs []baseline.Feature) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}

// Save writes every baseline to w.
func (bs *Baselines) Save(w io.Writer) error {
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	z := gzip.NewWriter(w)
	enc := gob.NewEncoder(z)
	h := snapshotHeader{Magic: snapshotMagic, Version: snapshotVersion, EdgeFeats: names(bs.edgeCfg.Features),
		OpFeats: names(bs.opCfg.Features), Edges: len(bs.edges), Ops: len(bs.ops), Windows: bs.windows, Window: bs.window}
	if err := enc.Encode(h); err != nil {
		return fmt.Errorf("save baselines: %w", err)
	}
	for _, k := range graph.SortedKeys(bs.edges, graph.CompareEdge) {
		if err := enc.Encode(edgeState{Key: k, State: bs.edges[k].b.State()}); err != nil {
			return fmt.Errorf("save baselines: %w", err)
		}
	}
	for _, k := range graph.SortedKeys(bs.ops, graph.CompareOp) {
		if err := enc.Encode(opState{Key: k, State: bs.ops[k].b.State()}); err != nil {
			return fmt.Errorf("save baselines: %w", err)
		}
	}
	scratch := scratchState{First: bs.first, SeqEdges: saveSeq(bs.seqEdges, graph.CompareEdge), SeqOps: saveSeq(bs.seqOps, graph.CompareOp), SeqOpDur: saveSeq(bs.seqOpDur, graph.CompareOp), SeqServices: saveServices(bs.seqSvc),
		SparseEdges: saveSparse(bs.sparseEdges, graph.CompareEdge), SparseOps: saveSparse(bs.sparseOps, graph.CompareOp)}
	if err := enc.Encode(scratch); err != nil {
		return fmt.Errorf("save baselines: %w", err)
	}
	if err := z.Close(); err != nil {
		return fmt.Errorf("save baselines: %w", err)
	}
	return nil
}

// Load replaces the baselines with those read from r.
func (bs *Baselines) Load(r io.Reader) error {
	z, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("load baselines: %w", err)
	}
	dec := gob.NewDecoder(z)
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return fmt.Errorf("load baselines: header: %w", err)
	}
	switch {
	case h.Magic != snapshotMagic:
		return errors.New("load baselines: not a baseline snapshot")
	case h.Version < 1 || h.Version > snapshotVersion:
		return fmt.Errorf("load baselines: snapshot version %d, this build reads %d", h.Version, snapshotVersion)
	case !slices.Equal(h.EdgeFeats, names(bs.edgeCfg.Features)) || !slices.Equal(h.OpFeats, names(bs.opCfg.Features)):
		return errors.New("load baselines: snapshot has other features than this build")
	case h.Window != 0 && bs.window != 0 && h.Window != bs.window:
		return &OtherWindowError{Snapshot: h.Window, Running: bs.window}
	}
	edges := make(map[graph.EdgeKey]*series, h.Edges)
	for range h.Edges {
		var e edgeState
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("load baselines: edge: %w", err)
		}
		b, err := baseline.Restore(bs.edgeCfg, e.State)
		if err != nil {
			return fmt.Errorf("load baselines: edge %s: %w", e.Key, err)
		}
		edges[e.Key] = &series{b: b}
	}
	ops := make(map[graph.OpKey]*series, h.Ops)
	for range h.Ops {
		var o opState
		if err := dec.Decode(&o); err != nil {
			return fmt.Errorf("load baselines: operation: %w", err)
		}
		b, err := baseline.Restore(bs.opCfg, o.State)
		if err != nil {
			return fmt.Errorf("load baselines: operation %s/%s: %w", o.Key.Service, o.Key.Operation, err)
		}
		ops[o.Key] = &series{b: b}
	}
	var scratch scratchState
	if h.Version >= 2 {
		if err := dec.Decode(&scratch); err != nil {
			return fmt.Errorf("load baselines: references: %w", err)
		}
	}
	seqEdges, seqOps := loadSeq(scratch.SeqEdges, scratch.RefEdges), loadSeq(scratch.SeqOps, scratch.RefOps)
	sparseEdges, sparseOps := make(map[graph.EdgeKey]*sparse[*graph.EdgeStats]), make(map[graph.OpKey]*sparse[*graph.OpStats])
	for _, sp := range scratch.SparseEdges {
		st := sp.Stats
		if st == nil {
			st = graph.NewEdgeStats()
		}
		st.Latency = graph.OrEmpty(st.Latency)
		sparseEdges[sp.Key] = &sparse[*graph.EdgeStats]{stats: st, start: sp.Start, windows: sp.Windows}
	}
	for _, sp := range scratch.SparseOps {
		st := sp.Stats
		if st == nil {
			st = graph.NewOpStats()
		}
		st.Duration, st.SelfTime = graph.OrEmpty(st.Duration), graph.OrEmpty(st.SelfTime)
		sparseOps[sp.Key] = &sparse[*graph.OpStats]{stats: st, start: sp.Start, windows: sp.Windows}
	}
	bs.mu.Lock()
	bs.edges, bs.ops, bs.windows = edges, ops, h.Windows
	bs.seqEdges, bs.seqOps, bs.sparseEdges, bs.sparseOps = seqEdges, seqOps, sparseEdges, sparseOps
	bs.seqOpDur = loadSeq(scratch.SeqOpDur, nil)
	bs.alarmedEdges, bs.alarmedOps, bs.alarmedDur = alarmed(seqEdges), alarmed(seqOps), alarmed(bs.seqOpDur)
	bs.seqSvc = make(map[string]*seqService, len(scratch.SeqServices))
	for _, q := range scratch.SeqServices {
		bs.seqSvc[q.Key] = q.Series
	}
	bs.first = scratch.First
	bs.mu.Unlock()
	return nil
}

// keptRef is a decoded exceedance reference as Observe keeps them: compact,
// and empty for one gob left out.
func keptRef(l *sketch.Latency) *sketch.Latency {
	if l == nil {
		return sketch.NewCompact(exceedAccuracy)
	}
	return l.Compact()
}

// SaveFile writes the baselines to path atomically: to a temporary file in
// the same directory, synced, then renamed over path, so a crash leaves
// either the old snapshot or the new one, never half of one.
func (bs *Baselines) SaveFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save baselines: %w", err)
	}
	f, err := os.CreateTemp(dir, ".baselines-*")
	if err != nil {
		return fmt.Errorf("save baselines: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := bs.Save(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save baselines: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save baselines: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save baselines: %w", err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return nil
}

// LoadFile reads baselines saved by SaveFile. A missing file is not an
// error: there is nothing learned yet.
func (bs *Baselines) LoadFile(path string) (found bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load baselines: %w", err)
	}
	defer f.Close()
	return true, bs.Load(f)
}
