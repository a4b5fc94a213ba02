// Package grafanads is Causeway's Grafana data source backend. It answers
// Grafana's queries by reading the detector's REST API: the incidents, the
// ranked suspects of an incident, the service graph as Node Graph frames
// with the culprit highlighted, an edge's latency against its learned
// baseline band, and incidents as annotations.
package grafanads

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// PluginID is the plugin's id in plugin.json.
const PluginID = "causeway-rootcause-datasource"

// Query types, as the query editor sets them in queryType.
const (
	QueryIncidents   = "incidents"
	QuerySuspects    = "suspects"
	QueryGraph       = "graph"
	QueryBaseline    = "baseline"
	QueryAnnotations = "annotations"
)

// QueryTypes lists every query type.
var QueryTypes = []string{QueryIncidents, QuerySuspects, QueryGraph, QueryBaseline, QueryAnnotations}

// Query is the JSON model of one query; which fields count depends on the
// query type.
type Query struct {
	QueryType string `json:"queryType"`
	// IncidentID chooses an incident (suspects, graph, baseline); empty
	// means the latest open one.
	IncidentID string `json:"incidentId"`
	// Service narrows incidents, annotations and the graph to one service.
	Service string `json:"service"`
	// State narrows incidents and annotations to "open" or "resolved".
	State string `json:"state"`
	// Edge is SOURCE->TARGET for a baseline query; empty means the edges
	// into the incident's suspects.
	Edge string `json:"edge"`
	// Operation narrows a baseline to one callee operation.
	Operation string `json:"operation"`
	// Feature is the baseline feature drawn (default p50).
	Feature string `json:"feature"`
}

// Datasource is one configured data source instance. It is safe for
// concurrent use.
type Datasource struct {
	client *Client
	hc     *http.Client
	log    log.Logger
}

var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// NewDatasource is the instance factory Grafana's instance manager calls
// when a data source is created or its settings change.
func NewDatasource(_ context.Context, s backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	return New(s, backend.Logger)
}

// New returns a data source for the given settings, logging to l.
func New(s backend.DataSourceInstanceSettings, l log.Logger) (*Datasource, error) {
	set, err := LoadSettings(s)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: set.Timeout}
	c, err := NewClient(set.URL, set.APIToken, hc)
	if err != nil {
		return nil, err
	}
	return &Datasource{client: c, hc: hc, log: l}, nil
}

// Dispose closes idle connections to the detector; Grafana calls it when the
// settings change.
func (d *Datasource) Dispose() { d.hc.CloseIdleConnections() }

// QueryData answers each query on its own: one response per RefID, an
// error in one does not fail the others.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	for _, q := range req.Queries {
		resp.Responses[q.RefID] = d.query(ctx, q)
	}
	return resp, nil
}

// query answers one query, turning errors into a response that says where
// they came from.
func (d *Datasource) query(ctx context.Context, dq backend.DataQuery) backend.DataResponse {
	var q Query
	if err := json.Unmarshal(dq.JSON, &q); err != nil {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, "query JSON: "+err.Error())
	}
	if dq.QueryType != "" {
		q.QueryType = dq.QueryType
	}
	var (
		frames data.Frames
		err    error
	)
	switch q.QueryType {
	case QueryIncidents:
		frames, err = d.incidents(ctx, q, dq.TimeRange)
	case QuerySuspects:
		frames, err = d.suspects(ctx, q)
	case QueryGraph:
		frames, err = d.graph(ctx, q)
	case QueryBaseline:
		frames, err = d.baseline(ctx, q)
	case QueryAnnotations:
		frames, err = d.annotations(ctx, q, dq.TimeRange)
	default:
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream,
			fmt.Sprintf("unknown query type %q: want one of %s", q.QueryType, strings.Join(QueryTypes, ", ")))
	}
	if err != nil {
		status, source := classify(err)
		d.log.Debug("query failed", "refId", dq.RefID, "queryType", q.QueryType, "source", source, "error", err.Error())
		return backend.ErrDataResponseWithSource(status, source, q.QueryType+": "+err.Error())
	}
	return backend.DataResponse{Frames: frames}
}

// queryError is a query that cannot be answered as asked.
type queryError struct{ msg string }

func (e *queryError) Error() string { return e.msg }

// classify gives the status and source of a query's error: the detector's
// answers and its absence are downstream, a malformed query is the user's
// (also downstream, as Grafana counts it), anything else is the plugin's.
func classify(err error) (backend.Status, backend.ErrorSource) {
	var (
		api *APIError
		te  *transportError
		qe  *queryError
	)
	switch {
	case errors.As(err, &qe):
		return backend.StatusBadRequest, backend.ErrorSourceDownstream
	case errors.As(err, &api):
		switch {
		case api.Status == http.StatusNotFound:
			return backend.StatusNotFound, backend.ErrorSourceDownstream
		case api.Status == http.StatusUnauthorized:
			return backend.StatusUnauthorized, backend.ErrorSourceDownstream
		case api.Status == http.StatusForbidden:
			return backend.StatusForbidden, backend.ErrorSourceDownstream
		case api.Status/100 == 4:
			return backend.StatusBadRequest, backend.ErrorSourceDownstream
		}
		return backend.StatusBadGateway, backend.ErrorSourceDownstream
	case errors.As(err, &te):
		if te.timeout {
			return backend.StatusTimeout, backend.ErrorSourceDownstream
		}
		return backend.StatusBadGateway, backend.ErrorSourceDownstream
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return backend.StatusTimeout, backend.ErrorSourceDownstream
	}
	return backend.StatusInternal, backend.ErrorSourcePlugin
}

func (d *Datasource) incidents(ctx context.Context, q Query, tr backend.TimeRange) (data.Frames, error) {
	list, err := d.listIncidents(ctx, q, tr)
	if err != nil {
		return nil, err
	}
	return data.Frames{IncidentsFrame(list)}, nil
}

func (d *Datasource) annotations(ctx context.Context, q Query, tr backend.TimeRange) (data.Frames, error) {
	list, err := d.listIncidents(ctx, q, tr)
	if err != nil {
		return nil, err
	}
	return data.Frames{AnnotationsFrame(list)}, nil
}

// listIncidents fetches the incidents overlapping the time range, narrowed
// by the query's state and service.
func (d *Datasource) listIncidents(ctx context.Context, q Query, tr backend.TimeRange) ([]Incident, error) {
	if q.State != "" && q.State != "open" && q.State != "resolved" {
		return nil, &queryError{fmt.Sprintf("state %q: want open, resolved or empty", q.State)}
	}
	list, err := d.client.Incidents(ctx, q.State, tr.From, tr.To)
	if err != nil {
		return nil, err
	}
	if q.Service == "" {
		return list, nil
	}
	var out []Incident
	for _, inc := range list {
		if slices.Contains(inc.Services, q.Service) || slices.ContainsFunc(inc.Suspects, func(s Suspect) bool { return s.Service == q.Service }) {
			out = append(out, inc)
		}
	}
	return out, nil
}

// chosenIncident is the query's incident, or else the latest open one, or
// (when fallback is set and none is open) the latest of all. It returns nil
// when there is none.
func (d *Datasource) chosenIncident(ctx context.Context, id string, fallback bool) (*Incident, error) {
	if id != "" {
		return d.client.Incident(ctx, id)
	}
	state := "open"
	if fallback {
		state = ""
	}
	list, err := d.client.Incidents(ctx, state, timeZero, timeZero)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].State == "open" {
			return &list[i], nil
		}
	}
	if fallback && len(list) > 0 {
		return &list[0], nil
	}
	return nil, nil
}

func (d *Datasource) suspects(ctx context.Context, q Query) (data.Frames, error) {
	inc, err := d.chosenIncident(ctx, q.IncidentID, true)
	if err != nil {
		return nil, err
	}
	return data.Frames{SuspectsFrame(inc)}, nil
}

func (d *Datasource) graph(ctx context.Context, q Query) (data.Frames, error) {
	g, err := d.client.Graph(ctx)
	if err != nil {
		return nil, err
	}
	inc, err := d.chosenIncident(ctx, q.IncidentID, false)
	if err != nil {
		return nil, err
	}
	nodes, edges := GraphFrames(g, inc, q.Service)
	return data.Frames{nodes, edges}, nil
}

// baseline draws the query's edge, or the edges into the suspects of the
// chosen incident (at most maxSuspectEdges of them).
func (d *Datasource) baseline(ctx context.Context, q Query) (data.Frames, error) {
	feature := q.Feature
	if feature == "" {
		feature = "p50"
	}
	if q.Edge != "" {
		src, dst, ok := strings.Cut(q.Edge, "->")
		if !ok || src == "" || dst == "" {
			return nil, &queryError{fmt.Sprintf("edge %q: want SOURCE->TARGET, e.g. frontend->cartservice", q.Edge)}
		}
		b, err := d.client.Baseline(ctx, src, dst, q.Operation)
		if err != nil {
			return nil, err
		}
		return BaselineFrames(b, feature)
	}
	inc, err := d.chosenIncident(ctx, q.IncidentID, false)
	if err != nil {
		return nil, err
	}
	if inc == nil {
		f := data.NewFrame("baseline")
		f.AppendNotices(data.Notice{Severity: data.NoticeSeverityInfo, Text: "no open incident: choose an edge to see its baseline"})
		return data.Frames{f}, nil
	}
	var frames data.Frames
	for _, e := range SuspectEdges(inc, maxSuspectEdges) {
		b, err := d.client.Baseline(ctx, e.Source, e.Target, e.Operation)
		var api *APIError
		if errors.As(err, &api) && api.Status == http.StatusNotFound {
			continue // not learned yet; the other suspects still count
		}
		if err != nil {
			return nil, err
		}
		fs, err := BaselineFrames(b, feature)
		if err != nil {
			return nil, err
		}
		frames = append(frames, fs...)
	}
	if len(frames) == 0 {
		f := data.NewFrame("baseline")
		f.AppendNotices(data.Notice{Severity: data.NoticeSeverityInfo, Text: "no learned baseline for the edges into incident " + inc.ID + "'s suspects"})
		frames = append(frames, f)
	}
	return frames, nil
}

// maxSuspectEdges bounds the requests one baseline query makes.
const maxSuspectEdges = 5

// CheckHealth reports whether the detector answers, with a short summary of
// what it sees.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	fail := func(err error) *backend.CheckHealthResult {
		msg := "Causeway detector at " + d.client.URL() + ": " + err.Error()
		var api *APIError
		if errors.As(err, &api) && api.Status == http.StatusUnauthorized {
			// The client's errors never hold the token.
			msg = "Causeway detector at " + d.client.URL() + ": authentication failed (HTTP 401): the detector refused the API token; " +
				"set the data source's API token to the detector's api.token. The detector said: " + api.Message
		}
		return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: msg}
	}
	if err := d.client.Healthz(ctx); err != nil {
		return fail(err), nil
	}
	g, err := d.client.Graph(ctx)
	if err != nil {
		return fail(err), nil
	}
	open, err := d.client.Incidents(ctx, "open", timeZero, timeZero)
	if err != nil {
		return fail(err), nil
	}
	return &backend.CheckHealthResult{
		Status: backend.HealthStatusOk,
		Message: fmt.Sprintf("Causeway detector at %s is up: %d nodes, %d edges, %d open incidents",
			d.client.URL(), len(g.Nodes), len(g.Edges), len(open)),
	}, nil
}

// Option is one choice the query editor offers.
type Option struct {
	Value       string `json:"value"`
	Label       string `json:"label"`
	Description string `json:"description,omitempty"`
}

// CallResource serves the query editor's pickers: GET incidents, services
// and edges, each a JSON array of options.
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	var (
		opts []Option
		err  error
	)
	switch strings.Trim(req.Path, "/") {
	case "incidents":
		var list []Incident
		list, err = d.client.Incidents(ctx, "", timeZero, timeZero)
		opts = IncidentOptions(list)
	case "services", "edges":
		var g *Graph
		g, err = d.client.Graph(ctx)
		if err == nil {
			opts = GraphOptions(g, strings.Trim(req.Path, "/"))
		}
	default:
		return sendJSON(sender, http.StatusNotFound, map[string]string{"error": "no resource " + req.Path + "; want incidents, services or edges"})
	}
	if err != nil {
		status := http.StatusBadGateway
		var api *APIError
		if errors.As(err, &api) && api.Status/100 == 4 {
			status = api.Status
		}
		return sendJSON(sender, status, map[string]string{"error": err.Error()})
	}
	if opts == nil {
		opts = []Option{}
	}
	return sendJSON(sender, http.StatusOK, opts)
}

func sendJSON(sender backend.CallResourceResponseSender, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode resource answer: %w", err)
	}
	return sender.Send(&backend.CallResourceResponse{
		Status:  status,
		Headers: map[string][]string{"Content-Type": {"application/json"}},
		Body:    body,
	})
}
