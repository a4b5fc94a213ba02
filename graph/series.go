package graph

// SeriesKind says what a series is of.
type SeriesKind string

const (
	// SeriesEdge: the calls of one operation from a caller to a callee.
	SeriesEdge SeriesKind = "edge"
	// SeriesOperation: one operation of a service, as its spans show it.
	SeriesOperation SeriesKind = "operation"
)

// Series names a series the detector judges, typed, so that nothing that
// reads an anomaly or a piece of evidence (the API's clients, the Grafana
// plugin) parses a name back from text. Its String is the name people
// read: "edge SOURCE->TARGET:OPERATION" or "op SERVICE/OPERATION".
type Series struct {
	Kind SeriesKind `json:"kind"`
	// Source and Target are an edge's caller and callee (a service, or a
	// dependency node: database, cache, queue, external host).
	Source string `json:"source,omitempty"`
	Target string `json:"target,omitempty"`
	// Service is an operation's service.
	Service   string `json:"service,omitempty"`
	Operation string `json:"operation"`
}

// EdgeSeries is the series of edge k.
func EdgeSeries(k EdgeKey) Series {
	return Series{Kind: SeriesEdge, Source: k.Source, Target: k.Target, Operation: k.Operation}
}

// OpSeries is the series of operation k.
func OpSeries(k OpKey) Series {
	return Series{Kind: SeriesOperation, Service: k.Service, Operation: k.Operation}
}

func (s Series) String() string {
	if s.Kind == SeriesEdge {
		return "edge " + EdgeKey{Source: s.Source, Target: s.Target, Operation: s.Operation}.String()
	}
	return "op " + s.Service + "/" + s.Operation
}
