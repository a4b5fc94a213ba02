package grafanads

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

var timeZero time.Time

// Node Graph colours: the culprit, other anomalous or suspected nodes, and
// the rest. Names for arc__ field config, hex for the color field.
const (
	culpritColor   = "red"
	anomalousColor = "orange"
	normalColor    = "green"
	culpritHex     = "#F2495C"
	anomalousHex   = "#FF9830"
	normalHex      = "#73BF69"
)

// IncidentsFrame is the incidents table, newest first, as the detector
// lists them.
func IncidentsFrame(list []Incident) *data.Frame {
	var (
		ids, states, services, top, kinds, summaries []string
		opened, updated                              []time.Time
		resolved                                     []*time.Time
		scores                                       []*float64
		anomalies, revisions                         []int64
	)
	for _, inc := range list {
		ids = append(ids, inc.ID)
		states = append(states, inc.State)
		opened = append(opened, inc.OpenedAt)
		updated = append(updated, inc.UpdatedAt)
		resolved = append(resolved, inc.ResolvedAt)
		services = append(services, strings.Join(inc.Services, ", "))
		anomalies = append(anomalies, int64(len(inc.Anomalies)))
		revisions = append(revisions, inc.Revision)
		if len(inc.Suspects) > 0 {
			s := inc.Suspects[0]
			top = append(top, s.Service)
			kinds = append(kinds, s.Kind)
			scores = append(scores, &s.Score)
			summaries = append(summaries, s.Summary)
		} else {
			top = append(top, "")
			kinds = append(kinds, "")
			scores = append(scores, nil)
			summaries = append(summaries, "")
		}
	}
	f := data.NewFrame("incidents",
		data.NewField("id", nil, nonNil(ids)),
		data.NewField("state", nil, nonNil(states)),
		data.NewField("opened", nil, nonNil(opened)),
		data.NewField("updated", nil, nonNil(updated)),
		data.NewField("resolved", nil, nonNil(resolved)),
		data.NewField("services", nil, nonNil(services)),
		data.NewField("top suspect", nil, nonNil(top)),
		data.NewField("kind", nil, nonNil(kinds)),
		data.NewField("score", nil, nonNil(scores)).SetConfig(&data.FieldConfig{Decimals: decimals(3)}),
		data.NewField("summary", nil, nonNil(summaries)),
		data.NewField("anomalies", nil, nonNil(anomalies)),
		data.NewField("revision", nil, nonNil(revisions)),
	)
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return f
}

// AnnotationsFrame is one annotation per incident: a region from its
// opening to its resolution (or last update while open), titled with the
// incident and its top suspect, tagged with its state and services.
func AnnotationsFrame(list []Incident) *data.Frame {
	var (
		starts, ends             []time.Time
		titles, texts, tags, ids []string
	)
	for _, inc := range list {
		starts = append(starts, inc.OpenedAt)
		end := inc.UpdatedAt
		if inc.ResolvedAt != nil {
			end = *inc.ResolvedAt
		}
		ends = append(ends, end)
		title := "Incident " + inc.ID + " (" + inc.State + ")"
		text := "no suspect yet"
		if len(inc.Suspects) > 0 {
			title += ": " + inc.Suspects[0].Service
			text = inc.Suspects[0].Summary
		}
		titles = append(titles, title)
		texts = append(texts, text)
		tags = append(tags, strings.Join(append([]string{"causeway", inc.State}, inc.Services...), ","))
		ids = append(ids, inc.ID)
	}
	f := data.NewFrame("annotations",
		data.NewField("time", nil, nonNil(starts)),
		data.NewField("timeEnd", nil, nonNil(ends)),
		data.NewField("title", nil, nonNil(titles)),
		data.NewField("text", nil, nonNil(texts)),
		data.NewField("tags", nil, nonNil(tags)),
		data.NewField("id", nil, nonNil(ids)),
	)
	return f
}

// SuspectsFrame is the ranked suspects of inc, best first, with their
// evidence; nil means there is no incident.
func SuspectsFrame(inc *Incident) *data.Frame {
	var (
		ranks                                                   []int64
		services, ops, kinds, nodeKinds, callers, sums, ev, exs []string
		scores                                                  []float64
	)
	if inc != nil {
		for i, s := range inc.Suspects {
			ranks = append(ranks, int64(i+1))
			services = append(services, s.Service)
			ops = append(ops, s.Operation)
			kinds = append(kinds, s.Kind)
			nodeKinds = append(nodeKinds, s.NodeKind)
			callers = append(callers, s.Caller)
			scores = append(scores, s.Score)
			sums = append(sums, s.Summary)
			ev = append(ev, evidenceText(s.Evidence))
			exs = append(exs, firstExemplar(s.Evidence))
		}
	}
	f := data.NewFrame("suspects",
		data.NewField("rank", nil, nonNil(ranks)),
		data.NewField("service", nil, nonNil(services)),
		data.NewField("operation", nil, nonNil(ops)),
		data.NewField("kind", nil, nonNil(kinds)),
		data.NewField("node kind", nil, nonNil(nodeKinds)),
		data.NewField("caller", nil, nonNil(callers)),
		data.NewField("score", nil, nonNil(scores)).SetConfig(&data.FieldConfig{Decimals: decimals(3)}),
		data.NewField("summary", nil, nonNil(sums)),
		data.NewField("evidence", nil, nonNil(ev)),
		data.NewField("exemplar trace", nil, nonNil(exs)),
	)
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	switch {
	case inc == nil:
		f.AppendNotices(data.Notice{Severity: data.NoticeSeverityInfo, Text: "no incidents"})
	default:
		f.Meta.Custom = map[string]string{"incident": inc.ID, "state": inc.State}
		if inc.State != "open" {
			f.AppendNotices(data.Notice{Severity: data.NoticeSeverityInfo, Text: "incident " + inc.ID + " is " + inc.State})
		}
	}
	return f
}

// evidenceText reads one suspect's evidence as a line, each in the
// detector's words: "self time 202 ms vs 0.861 ms normally (30.0 spreads,
// 4 windows); 6 of 7 calls over 1m0s above the usual p99 (p50 224 ms vs
// 25.5 ms normally) (10.3 spreads, 4 windows)". Evidence from a detector
// that sends no words is read from its numbers.
func evidenceText(ev []Evidence) string {
	parts := make([]string, 0, len(ev))
	for _, e := range ev {
		text := e.Text
		if text == "" {
			text = fmt.Sprintf("%s %s %s vs %s %s", e.Feature, number(e.Current), e.Unit, number(e.Baseline), e.Unit)
		}
		parts = append(parts, fmt.Sprintf("%s (%.1f spreads, %d windows)", text, e.Spreads, e.Windows))
	}
	return strings.Join(parts, "; ")
}

func firstExemplar(ev []Evidence) string {
	for _, e := range ev {
		if len(e.Exemplars) > 0 {
			return e.Exemplars[0]
		}
	}
	return ""
}

// number prints v with three significant digits, without an exponent.
func number(v float64) string {
	if math.Abs(v) >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// GraphFrames are the service graph as Grafana's Node Graph reads it: a
// "nodes" frame and an "edges" frame. Nodes are coloured by their anomaly
// score in inc (nil: no incident); the top suspect is the culprit, drawn in
// its own colour. A non-empty service keeps that service and its direct
// neighbours.
func GraphFrames(g *Graph, inc *Incident, service string) (*data.Frame, *data.Frame) {
	an := scoreIncident(g, inc)

	keepEdge := func(e Edge) bool { return service == "" || e.Source == service || e.Target == service }
	keepNode := map[string]bool{service: true}
	for _, e := range g.Edges {
		if keepEdge(e) {
			keepNode[e.Source], keepNode[e.Target] = true, true
		}
	}

	var (
		ids, titles, subtitles, colors, summaries []string
		mains, seconds, errRates                  []*float64
		arcCulprit, arcAnomalous, arcNormal       []float64
		scores                                    []float64
		ranks                                     []*int64
	)
	for _, n := range g.Nodes {
		if service != "" && !keepNode[n.ID] {
			continue
		}
		ids = append(ids, n.ID)
		titles = append(titles, n.ID)
		sub := n.Kind
		if n.System != "" {
			sub += " (" + n.System + ")"
		}
		subtitles = append(subtitles, sub)
		p99, rate, errRate := statsOf(n.Current)
		mains, seconds, errRates = append(mains, p99), append(seconds, rate), append(errRates, errRate)

		frac := an.nodeFraction(n.ID)
		rank, suspected := an.rank[n.ID]
		switch {
		case suspected && rank == 1:
			arcCulprit, arcAnomalous, arcNormal = append(arcCulprit, 1), append(arcAnomalous, 0), append(arcNormal, 0)
			colors = append(colors, culpritHex)
		case frac > 0:
			arcCulprit, arcAnomalous, arcNormal = append(arcCulprit, 0), append(arcAnomalous, frac), append(arcNormal, round3(1-frac))
			colors = append(colors, anomalousHex)
		default:
			arcCulprit, arcAnomalous, arcNormal = append(arcCulprit, 0), append(arcAnomalous, 0), append(arcNormal, 1)
			colors = append(colors, normalHex)
		}
		scores = append(scores, round3(an.node[n.ID]))
		if suspected {
			r := int64(rank)
			ranks = append(ranks, &r)
			summaries = append(summaries, an.summary[n.ID])
		} else {
			ranks = append(ranks, nil)
			summaries = append(summaries, "")
		}
	}
	nodes := data.NewFrame("nodes",
		data.NewField("id", nil, nonNil(ids)),
		data.NewField("title", nil, nonNil(titles)),
		data.NewField("subtitle", nil, nonNil(subtitles)),
		data.NewField("mainstat", nil, nonNil(mains)).SetConfig(&data.FieldConfig{DisplayName: "p99", Unit: "ms", Decimals: decimals(1)}),
		data.NewField("secondarystat", nil, nonNil(seconds)).SetConfig(&data.FieldConfig{DisplayName: "rate", Unit: "reqps", Decimals: decimals(1)}),
		data.NewField("arc__culprit", nil, nonNil(arcCulprit)).SetConfig(arcConfig("culprit", culpritColor)),
		data.NewField("arc__anomalous", nil, nonNil(arcAnomalous)).SetConfig(arcConfig("anomalous", anomalousColor)),
		data.NewField("arc__normal", nil, nonNil(arcNormal)).SetConfig(arcConfig("normal", normalColor)),
		data.NewField("color", nil, nonNil(colors)),
		data.NewField("detail__anomaly_score", nil, nonNil(scores)).SetConfig(&data.FieldConfig{DisplayName: "anomaly score (spreads)"}),
		data.NewField("detail__suspect_rank", nil, nonNil(ranks)).SetConfig(&data.FieldConfig{DisplayName: "suspect rank"}),
		data.NewField("detail__suspect", nil, nonNil(summaries)).SetConfig(&data.FieldConfig{DisplayName: "why"}),
		data.NewField("detail__error_rate", nil, nonNil(errRates)).SetConfig(&data.FieldConfig{DisplayName: "error rate", Unit: "percentunit"}),
	)
	nodes.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeNodeGraph}
	if inc != nil {
		nodes.Meta.Custom = map[string]string{"incident": inc.ID}
	}
	if service != "" && !an.known[service] {
		nodes.AppendNotices(data.Notice{Severity: data.NoticeSeverityWarning, Text: "service " + service + " is not in the graph"})
	}

	var (
		eids, srcs, dsts, ecolors, eops []string
		emains, eseconds, eerrs         []*float64
		escores                         []float64
	)
	for _, e := range g.Edges {
		if !keepEdge(e) {
			continue
		}
		id := e.Source + "->" + e.Target
		eids, srcs, dsts = append(eids, id), append(srcs, e.Source), append(dsts, e.Target)
		p99, rate, errRate := statsOf(e.Current)
		emains, eseconds, eerrs = append(emains, p99), append(eseconds, rate), append(eerrs, errRate)
		s := an.edge[id]
		escores = append(escores, round3(s))
		eops = append(eops, an.edgeOp[id])
		if s > 0 {
			ecolors = append(ecolors, anomalousHex)
		} else {
			ecolors = append(ecolors, normalHex)
		}
	}
	edges := data.NewFrame("edges",
		data.NewField("id", nil, nonNil(eids)),
		data.NewField("source", nil, nonNil(srcs)),
		data.NewField("target", nil, nonNil(dsts)),
		data.NewField("mainstat", nil, nonNil(emains)).SetConfig(&data.FieldConfig{DisplayName: "p99", Unit: "ms", Decimals: decimals(1)}),
		data.NewField("secondarystat", nil, nonNil(eseconds)).SetConfig(&data.FieldConfig{DisplayName: "rate", Unit: "reqps", Decimals: decimals(1)}),
		data.NewField("color", nil, nonNil(ecolors)),
		data.NewField("detail__anomaly_score", nil, nonNil(escores)).SetConfig(&data.FieldConfig{DisplayName: "anomaly score (spreads)"}),
		data.NewField("detail__anomalous_operation", nil, nonNil(eops)).SetConfig(&data.FieldConfig{DisplayName: "anomalous operation"}),
		data.NewField("detail__error_rate", nil, nonNil(eerrs)).SetConfig(&data.FieldConfig{DisplayName: "error rate", Unit: "percentunit"}),
	)
	edges.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeNodeGraph}
	return nodes, edges
}

func arcConfig(name, color string) *data.FieldConfig {
	return &data.FieldConfig{DisplayName: name, Color: map[string]any{"mode": "fixed", "fixedColor": color}}
}

// statsOf reads the Node Graph stats of a window: p99, rate and error rate,
// nil when the node or edge had no calls in the last window.
func statsOf(s *Stats) (p99, rate, errRate *float64) {
	if s == nil {
		return nil, nil, nil
	}
	return &s.P99, &s.RatePerS, &s.ErrorRate
}

// incidentScores is what an incident says about the graph: anomaly scores
// per node and per edge, and suspect ranks per node.
type incidentScores struct {
	node    map[string]float64 // node id -> highest anomaly score of its operations
	edge    map[string]float64 // "src->dst" -> highest anomaly score of its operations
	edgeOp  map[string]string  // "src->dst" -> the operation with that score
	rank    map[string]int     // node id -> best suspect rank, 1 = the culprit
	summary map[string]string  // node id -> that suspect's summary
	known   map[string]bool    // node ids in the graph
	max     float64            // highest node score
}

// scoreIncident attributes inc's anomalies to the nodes and edges of g.
func scoreIncident(g *Graph, inc *Incident) incidentScores {
	s := incidentScores{
		node: map[string]float64{}, edge: map[string]float64{}, edgeOp: map[string]string{},
		rank: map[string]int{}, summary: map[string]string{}, known: map[string]bool{},
	}
	for _, n := range g.Nodes {
		s.known[n.ID] = true
	}
	if inc == nil {
		return s
	}
	for _, a := range inc.Anomalies {
		switch id := a.SeriesID; id.Kind {
		case "operation":
			s.node[id.Service] = max(s.node[id.Service], a.Score)
		case "edge":
			e := id.Source + "->" + id.Target
			if a.Score > s.edge[e] {
				s.edge[e], s.edgeOp[e] = a.Score, id.Operation
			}
		}
	}
	for _, v := range s.node {
		s.max = max(s.max, v)
	}
	for i, sus := range inc.Suspects {
		if _, seen := s.rank[sus.Service]; !seen {
			s.rank[sus.Service] = i + 1
			s.summary[sus.Service] = sus.Summary
		}
	}
	return s
}

// nodeFraction is how much of a node's arc is anomalous: its score against
// the incident's highest, and at least half for a suspect.
func (s incidentScores) nodeFraction(id string) float64 {
	f := 0.0
	if s.max > 0 {
		f = s.node[id] / s.max
	}
	if _, ok := s.rank[id]; ok {
		f = max(f, 0.5)
	}
	return round3(f)
}

// SuspectEdge is a call edge into a suspect, with the operation that was
// anomalous on it.
type SuspectEdge struct{ Source, Target, Operation string }

// SuspectEdges lists, best suspect first, the most anomalous edge into each
// suspect of inc (or the edge from its caller), at most limit of them.
func SuspectEdges(inc *Incident, limit int) []SuspectEdge {
	var out []SuspectEdge
	seen := map[string]bool{}
	for _, sus := range inc.Suspects {
		if len(out) == limit {
			break
		}
		best, bestScore := SuspectEdge{}, -1.0
		for _, a := range inc.Anomalies {
			if id := a.SeriesID; id.Kind == "edge" && id.Target == sus.Service && a.Score > bestScore {
				best, bestScore = SuspectEdge{id.Source, id.Target, id.Operation}, a.Score
			}
		}
		if bestScore < 0 && sus.Caller != "" {
			best, bestScore = SuspectEdge{sus.Caller, sus.Service, sus.Operation}, 0
		}
		key := best.Source + "->" + best.Target + ":" + best.Operation
		if bestScore < 0 || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, best)
	}
	return out
}

// BaselineFrames are one time series frame per operation of b: the
// feature's value in each recent window against the band of the regime
// nearest to it, with the window's anomaly score.
func BaselineFrames(b *EdgeBaselines, feature string) (data.Frames, error) {
	var frames data.Frames
	for _, op := range b.Operations {
		fi := -1
		for i, f := range op.Features {
			if f == feature {
				fi = i
			}
		}
		if fi < 0 {
			return nil, &queryError{fmt.Sprintf("feature %q: edge %s->%s has %s", feature, b.Source, b.Target, strings.Join(op.Features, ", "))}
		}
		unit := ""
		if fi < len(op.Units) {
			unit = op.Units[fi]
		}
		var (
			times        []time.Time
			vals, lo, hi []*float64
			scores       []float64
			regimes      []string
		)
		for _, w := range op.RecentWindows {
			v := at(w.Values, fi)
			r := nearestRegime(op.Regimes, fi, v)
			times, vals, scores = append(times, w.Start), append(vals, v), append(scores, w.Score)
			if r == nil {
				lo, hi, regimes = append(lo, nil), append(hi, nil), append(regimes, "")
				continue
			}
			lo, hi, regimes = append(lo, at(r.BandLow, fi)), append(hi, at(r.BandHigh, fi)), append(regimes, r.Name)
		}
		label := b.Source + "→" + b.Target + " " + op.Operation
		cfg := func(name string) *data.FieldConfig {
			return &data.FieldConfig{DisplayNameFromDS: label + " " + name, Unit: grafanaUnit(unit)}
		}
		f := data.NewFrame(b.Source+"->"+b.Target+" "+op.Operation,
			data.NewField("time", nil, nonNil(times)),
			data.NewField(feature, nil, nonNil(vals)).SetConfig(cfg(feature)),
			data.NewField("band_low", nil, nonNil(lo)).SetConfig(cfg("band low")),
			data.NewField("band_high", nil, nonNil(hi)).SetConfig(cfg("band high")),
			data.NewField("score", nil, nonNil(scores)).SetConfig(&data.FieldConfig{DisplayNameFromDS: label + " score"}),
			data.NewField("regime", nil, nonNil(regimes)),
		)
		f.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesWide, PreferredVisualization: data.VisTypeGraph}
		frames = append(frames, f)
	}
	return frames, nil
}

// nearestRegime is the regime whose band on feature fi holds v (the
// heaviest if several do), else the one whose band is closest to v; nil
// when no regime judges the feature. A nil v takes the heaviest regime.
func nearestRegime(rs []Regime, fi int, v *float64) *Regime {
	var best *Regime
	bestDist, bestWeight := math.Inf(1), -1.0
	for i := range rs {
		r := &rs[i]
		lo, hi := at(r.BandLow, fi), at(r.BandHigh, fi)
		if lo == nil || hi == nil {
			continue
		}
		d := 0.0
		if v != nil {
			d = max(*lo-*v, *v-*hi, 0)
		}
		if d < bestDist || (d == bestDist && r.Weight > bestWeight) {
			best, bestDist, bestWeight = r, d, r.Weight
		}
	}
	return best
}

func at(vs []*float64, i int) *float64 {
	if i < len(vs) {
		return vs[i]
	}
	return nil
}

// grafanaUnit maps the detector's units to Grafana's unit ids.
func grafanaUnit(u string) string {
	switch u {
	case "ms":
		return "ms"
	case "%":
		return "percent"
	case "/s":
		return "reqps"
	}
	return u
}

// IncidentOptions are the query editor's incident choices, newest first.
func IncidentOptions(list []Incident) []Option {
	out := make([]Option, 0, len(list))
	for _, inc := range list {
		o := Option{Value: inc.ID, Label: inc.ID + " (" + inc.State + ")"}
		if len(inc.Suspects) > 0 {
			o.Label = inc.ID + " · " + inc.Suspects[0].Service + " (" + inc.State + ")"
			o.Description = inc.Suspects[0].Summary
		}
		out = append(out, o)
	}
	return out
}

// GraphOptions are the query editor's service ("services") or edge
// ("edges") choices.
func GraphOptions(g *Graph, what string) []Option {
	var out []Option
	if what == "services" {
		for _, n := range g.Nodes {
			out = append(out, Option{Value: n.ID, Label: n.ID, Description: n.Kind})
		}
		return out
	}
	for _, e := range g.Edges {
		id := e.Source + "->" + e.Target
		out = append(out, Option{Value: id, Label: id, Description: e.TargetKind})
	}
	return out
}

func decimals(n uint16) *uint16 { return &n }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// nonNil makes an empty column a zero-length slice rather than nil, so the
// field keeps its type.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
