// Package incident turns anomalous series into incidents: it opens one when
// edges or operations stay anomalous, groups anomalies that are connected
// in the call graph into the same incident, re-ranks its suspects as it
// evolves, resolves it after a run of quiet windows, and keeps incidents in
// a durable store so they survive a restart.
package incident

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/graph/rank"
)

// State of an incident.
type State string

// States.
const (
	Open     State = "open"
	Resolved State = "resolved"
)

// Severity of an incident.
type Severity string

// Severities, in rising order.
const (
	// Warning: requests are slower than their baseline.
	Warning Severity = "warning"
	// Critical: requests fail or a service is unreachable, or latency is
	// far (CriticalScore spreads) beyond its baseline.
	Critical Severity = "critical"
)

// CriticalScore is the anomaly score from which a latency incident is
// critical.
const CriticalScore = 10

// Rank orders severities: a higher rank is worse.
func (s Severity) Rank() int {
	switch s {
	case Warning:
		return 1
	case Critical:
		return 2
	}
	return 0
}

// Incident is one problem as on-call sees it.
type Incident struct {
	ID         string         `json:"id"`
	State      State          `json:"state"`
	OpenedAt   time.Time      `json:"opened_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
	ResolvedAt *time.Time     `json:"resolved_at"`
	Services   []string       `json:"services"` // every node an anomalous series touches
	Anomalies  []Anomaly      `json:"anomalies"`
	Suspects   []rank.Suspect `json:"suspects"` // best first
	// MergedInto names the incident this one was folded into when the two
	// turned out to be one problem; such an incident is resolved.
	MergedInto string `json:"merged_into,omitempty"`
	// Severity is how bad the incident is at its worst so far; it only
	// rises.
	Severity Severity `json:"severity"`
	// Revision counts the changes that matter to on-call: opening, a new
	// top suspect, a higher severity. Alerts are sent per revision.
	Revision int `json:"revision"`
	quiet    int
	topo     *rank.Topology
	pairs    map[[2]string]bool
}

// Anomaly is one series that was anomalous in the incident, at its worst.
type Anomaly struct {
	Series      string       `json:"series"`    // for people: "edge a->b:op", "op service/op"
	SeriesID    graph.Series `json:"series_id"` // the same, typed, for programs
	Score       float64      `json:"score"`
	Windows     int          `json:"windows"`
	FirstAt     time.Time    `json:"first_at"`
	LastAt      time.Time    `json:"last_at"`
	Explanation string       `json:"explanation"`

	obs rank.Observation
}

// Options configure a Manager. The zero value works.
type Options struct {
	// Quiet is how many windows without an active anomaly resolve an
	// incident. Default 3.
	Quiet int
	// Keep is how many incidents are kept (oldest resolved dropped first).
	// Default 1000.
	Keep int
	// Store persists incidents; nil keeps them in memory only.
	Store *Store
}

// Manager keeps the incidents. Observe runs on the graph's goroutine; the
// read methods may be called from any goroutine.
type Manager struct {
	opt Options

	mu        sync.RWMutex
	incidents []*Incident // oldest first
	byID      map[string]*Incident
	services  map[string]bool // every instrumented service seen (to tell a dead one from a dependency)
}

// NewManager returns a manager holding the incidents in opt.Store, if any.
func NewManager(opt Options) (*Manager, error) {
	if opt.Quiet <= 0 {
		opt.Quiet = 3
	}
	if opt.Keep <= 0 {
		opt.Keep = 1000
	}
	m := &Manager{opt: opt, byID: map[string]*Incident{}, services: map[string]bool{}}
	if opt.Store != nil {
		loaded, err := opt.Store.Load()
		if err != nil {
			return nil, err
		}
		for _, inc := range loaded {
			m.incidents = append(m.incidents, inc)
			m.byID[inc.ID] = inc
		}
	}
	return m, nil
}

// Change is something that happened to an incident in a window.
type Change struct {
	Kind     ChangeKind
	Incident Incident
}

// ChangeKind is what happened to an incident in a window.
type ChangeKind string

const (
	ChangeOpened  ChangeKind = "opened"
	ChangeUpdated ChangeKind = "updated"
	// ChangeResolved: the incident's services were quiet long enough, or
	// it was merged into another.
	ChangeResolved ChangeKind = "resolved"
)

func seriesName(f baselines.Finding) string { return baselines.SeriesOf(f).String() }

func touches(f baselines.Finding) []string {
	if f.Edge != nil {
		return []string{f.Edge.Source, f.Edge.Target}
	}
	return []string{f.Op.Service}
}

// Observe takes the findings of a closed window and returns what changed.
func (m *Manager) Observe(w *graph.Window, findings []baselines.Finding) ([]Change, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range w.Ops {
		m.services[k.Service] = true
	}
	active := findings[:0:0]
	for _, f := range findings {
		if f.Score.Active {
			active = append(active, f)
		}
	}
	// Group the active series into connected components of services: the
	// services a series touches belong together, and so do two anomalous
	// services that call one another in this window (a slow service and
	// its slow caller are one problem even when no edge baseline fired).
	uf := unionFind{}
	anomalous := map[string]bool{}
	for _, f := range active {
		ts := touches(f)
		for _, t := range ts[1:] {
			uf.union(ts[0], t)
		}
		uf.find(ts[0])
		for _, t := range ts {
			anomalous[t] = true
		}
	}
	for k := range w.Edges {
		if anomalous[k.Source] && anomalous[k.Target] {
			uf.union(k.Source, k.Target)
		}
	}
	groups := map[string][]baselines.Finding{}
	for _, f := range active {
		root := uf.find(touches(f)[0])
		groups[root] = append(groups[root], f)
	}
	// Supporting evidence (a series half way to significance) joins the
	// group it touches or calls, and opens none of its own.
	for _, f := range findings {
		if !f.Score.Supporting {
			continue
		}
		if root, ok := m.joins(w, uf, anomalous, touches(f)); ok {
			groups[root] = append(groups[root], f)
		}
	}
	var changes []Change
	touched := map[*Incident]bool{}
	for _, root := range sortedRoots(groups) {
		g := groups[root]
		services := map[string]bool{}
		for _, f := range g {
			for _, s := range touches(f) {
				services[s] = true
			}
		}
		inc, merged := m.matchOpen(services)
		for _, old := range merged {
			changes = append(changes, Change{Kind: ChangeResolved, Incident: old.copy()})
		}
		kind := ChangeUpdated
		if inc == nil {
			inc = &Incident{ID: m.newID(w.End, g), State: Open, OpenedAt: w.End}
			m.incidents = append(m.incidents, inc)
			m.byID[inc.ID] = inc
			kind = ChangeOpened
		}
		touched[inc] = true
		inc.quiet = 0
		if inc.topo == nil {
			inc.topo, inc.pairs = rank.NewTopology(), map[[2]string]bool{}
		}
		inc.topo.Add(w, inc.pairs)
		inc.UpdatedAt = w.End
		for s := range services {
			if !slices.Contains(inc.Services, s) {
				inc.Services = append(inc.Services, s)
			}
		}
		slices.Sort(inc.Services)
		for _, f := range g {
			inc.absorb(w, f, m.services)
		}
		before, severity := inc.top(), inc.Severity
		inc.rank()
		if s := inc.severity(); s.Rank() > inc.Severity.Rank() {
			inc.Severity = s
		}
		if kind == "opened" || inc.top() != before || inc.Severity != severity {
			inc.Revision++
			changes = append(changes, Change{Kind: kind, Incident: inc.copy()})
		}
	}
	for _, inc := range m.incidents {
		if inc.State != Open || touched[inc] {
			continue
		}
		inc.quiet++
		if inc.quiet >= m.opt.Quiet {
			t := w.End
			inc.State, inc.ResolvedAt, inc.UpdatedAt = Resolved, &t, t
			changes = append(changes, Change{Kind: ChangeResolved, Incident: inc.copy()})
		}
	}
	m.trim()
	if len(changes) > 0 && m.opt.Store != nil {
		if err := m.opt.Store.Save(m.incidents); err != nil {
			return changes, err
		}
	}
	return changes, nil
}

// joins returns the group a supporting series touching services ts
// belongs to: one of ts is anomalous, or calls or is called by an
// anomalous service in window w.
func (m *Manager) joins(w *graph.Window, uf unionFind, anomalous map[string]bool, ts []string) (string, bool) {
	for _, t := range ts {
		if anomalous[t] {
			return uf.find(t), true
		}
	}
	best := ""
	for k := range w.Edges {
		for _, t := range ts {
			var other string
			switch t {
			case k.Source:
				other = k.Target
			case k.Target:
				other = k.Source
			default:
				continue
			}
			if anomalous[other] {
				if r := uf.find(other); best == "" || r < best {
					best = r
				}
			}
		}
	}
	return best, best != ""
}

// absorb records a finding in the incident, keeping each series at its worst.
func (inc *Incident) absorb(w *graph.Window, f baselines.Finding, known map[string]bool) {
	name := seriesName(f)
	var exemplars []string
	nk := graph.NodeService
	if f.Edge != nil {
		if st := w.Edges[*f.Edge]; st != nil {
			for _, x := range st.Exemplars {
				exemplars = append(exemplars, x.TraceID.String())
			}
		}
		if n, ok := w.Nodes[f.Edge.Target]; ok {
			nk = n.Kind
		}
		if nk != graph.NodeService && known[f.Edge.Target] {
			nk = graph.NodeService // a service named by its failing callers' attributes
		}
	}
	var client bool
	var callee string // only when every call of the window was answered: an unanswered call's wait is no gap
	if f.Op != nil {
		exemplars = callExemplars(w, *f.Op)
		client = w.ClientOps[*f.Op]
		if !w.Unanswered[*f.Op] {
			callee = w.Callees[*f.Op]
		}
	}
	for i := range inc.Anomalies {
		a := &inc.Anomalies[i]
		if a.Series != name {
			continue
		}
		a.Windows++
		a.LastAt = w.End
		a.obs.Windows = a.Windows
		if f.Score.Value >= a.Score {
			// A window without calls does not say whether the operation
			// is a client call: what an earlier one said stands.
			client = client || a.obs.ClientOp
			callee = cmp.Or(callee, a.obs.Callee)
			a.Score, a.Explanation = f.Score.Value, f.Score.Explanation
			a.obs = rank.Observation{Finding: f, Windows: a.Windows, Exemplars: exemplars, NodeKind: nk, ClientOp: client, Callee: callee}
		}
		return
	}
	inc.Anomalies = append(inc.Anomalies, Anomaly{Series: name, SeriesID: baselines.SeriesOf(f), Score: f.Score.Value, Windows: 1, FirstAt: w.End,
		LastAt: w.End, Explanation: f.Score.Explanation,
		obs: rank.Observation{Finding: f, Windows: 1, Exemplars: exemplars, NodeKind: nk, ClientOp: client, Callee: callee}})
}

// top names the top suspect and its kind, "" when there is none.
func (inc *Incident) top() string {
	if len(inc.Suspects) == 0 {
		return ""
	}
	return inc.Suspects[0].Service + "/" + string(inc.Suspects[0].Kind)
}

// severity is what the incident's anomalies and suspects say now.
func (inc *Incident) severity() Severity {
	for _, s := range inc.Suspects {
		if s.Kind == rank.SuspectErrors || s.Kind == rank.SuspectDown {
			return Critical
		}
	}
	for _, a := range inc.Anomalies {
		if a.Score >= CriticalScore {
			return Critical
		}
	}
	return Warning
}

func (inc *Incident) rank() {
	obs := make([]rank.Observation, 0, len(inc.Anomalies))
	for _, a := range inc.Anomalies {
		obs = append(obs, a.obs)
	}
	inc.Suspects = rank.Rank(obs, inc.topo)
	if inc.Suspects == nil {
		inc.Suspects = []rank.Suspect{} // an empty list, not null, in JSON
	}
	slices.SortFunc(inc.Anomalies, func(a, b Anomaly) int { return cmp.Compare(b.Score, a.Score) })
}

// matchOpen returns the oldest open incident sharing a service with the
// group, merging any other open ones that also do into it; those are
// resolved, with MergedInto naming the one they joined.
func (m *Manager) matchOpen(services map[string]bool) (match *Incident, merged []*Incident) {
	for _, inc := range m.incidents {
		if inc.State != Open {
			continue
		}
		shares := false
		for _, s := range inc.Services {
			if services[s] {
				shares = true
				break
			}
		}
		if !shares {
			continue
		}
		if match == nil {
			match = inc
			continue
		}
		// A later incident joined by this group: fold it into the first.
		for _, a := range inc.Anomalies {
			match.Anomalies = append(match.Anomalies, a)
		}
		for _, s := range inc.Services {
			if !slices.Contains(match.Services, s) {
				match.Services = append(match.Services, s)
			}
		}
		t := inc.UpdatedAt
		inc.State, inc.ResolvedAt, inc.MergedInto = Resolved, &t, match.ID
		merged = append(merged, inc)
	}
	return match, merged
}

func (m *Manager) newID(at time.Time, g []baselines.Finding) string {
	h := fnv.New32a()
	for _, f := range g {
		h.Write([]byte(seriesName(f)))
	}
	id := fmt.Sprintf("inc-%s-%04x", at.UTC().Format("20060102T150405Z"), h.Sum32()&0xffff)
	for n := 2; m.byID[id] != nil; n++ {
		id = fmt.Sprintf("inc-%s-%04x-%d", at.UTC().Format("20060102T150405Z"), h.Sum32()&0xffff, n)
	}
	return id
}

// trim drops the oldest resolved incidents beyond Keep.
func (m *Manager) trim() {
	for len(m.incidents) > m.opt.Keep {
		i := slices.IndexFunc(m.incidents, func(inc *Incident) bool { return inc.State == Resolved })
		if i < 0 {
			return
		}
		delete(m.byID, m.incidents[i].ID)
		m.incidents = slices.Delete(m.incidents, i, i+1)
	}
}

func (inc *Incident) copy() Incident {
	c := *inc
	c.Services = slices.Clone(inc.Services)
	c.Anomalies = slices.Clone(inc.Anomalies)
	c.Suspects = slices.Clone(inc.Suspects)
	return c
}

// Flush waits until the incidents saved so far are written to the
// store, if there is one.
func (m *Manager) Flush() {
	if m.opt.Store != nil {
		m.opt.Store.Flush()
	}
}

// List returns incidents, newest first, filtered by state ("" for any) and
// by having been open at some time in [since, until] (zero: unbounded).
func (m *Manager) List(state State, since, until time.Time) []Incident {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Incident
	for i := len(m.incidents) - 1; i >= 0; i-- {
		inc := m.incidents[i]
		if state != "" && inc.State != state {
			continue
		}
		if !until.IsZero() && inc.OpenedAt.After(until) {
			continue
		}
		if !since.IsZero() && inc.ResolvedAt != nil && inc.ResolvedAt.Before(since) {
			continue
		}
		out = append(out, inc.copy())
	}
	return out
}

// Get returns one incident.
func (m *Manager) Get(id string) (Incident, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	inc, ok := m.byID[id]
	if !ok {
		return Incident{}, false
	}
	return inc.copy(), true
}

func sortedRoots(g map[string][]baselines.Finding) []string {
	roots := make([]string, 0, len(g))
	for r := range g {
		roots = append(roots, r)
	}
	slices.Sort(roots)
	return roots
}

type unionFind map[string]string

func (u unionFind) find(x string) string {
	p, ok := u[x]
	if !ok {
		u[x] = x
		return x
	}
	if p == x {
		return x
	}
	r := u.find(p)
	u[x] = r
	return r
}

func (u unionFind) union(a, b string) {
	ra, rb := u.find(a), u.find(b)
	if ra != rb {
		if ra < rb {
			u[rb] = ra
		} else {
			u[ra] = rb
		}
	}
}

// callExemplars are the exemplar trace ids of the calls into op in w, from
// its callers in name order (the same every run).
func callExemplars(w *graph.Window, op graph.OpKey) []string {
	var into []graph.EdgeKey
	for k := range w.Edges {
		if k.Target == op.Service && k.Operation == op.Operation {
			into = append(into, k)
		}
	}
	slices.SortFunc(into, func(a, b graph.EdgeKey) int { return strings.Compare(a.Source, b.Source) })
	var out []string
	for _, k := range into {
		for _, x := range w.Edges[k].Exemplars {
			if len(out) == graph.MaxExemplars { // as many as an edge's window keeps
				return out
			}
			out = append(out, x.TraceID.String())
		}
	}
	return out
}
