package grafanads

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The detector's REST API as this plugin reads it. These types are the
// plugin's own copy of the wire format (described by the detector's
// /api/v1/openapi.json): the plugin talks to the detector only over HTTP and
// imports none of its packages. Fields the plugin does not use are left out.

// Stats are one node's or edge's call statistics over a window.
type Stats struct {
	Requests  int64    `json:"requests"`
	Errors    int64    `json:"errors"`
	ErrorRate float64  `json:"error_rate"`
	RatePerS  float64  `json:"rate_per_s"`
	P50       float64  `json:"p50_ms"`
	P90       float64  `json:"p90_ms"`
	P99       float64  `json:"p99_ms"`
	Mean      float64  `json:"mean_ms"`
	Exemplars []string `json:"exemplar_trace_ids"`
}

// Node is a service or a virtual node (database, cache, queue, external host).
type Node struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	System  string `json:"system"`
	Current *Stats `json:"current"`
	Total   *Stats `json:"total"`
}

// Edge is a service-level call edge.
type Edge struct {
	Source     string `json:"source"`
	Target     string `json:"target"`
	TargetKind string `json:"target_kind"`
	Current    *Stats `json:"current"`
	Total      *Stats `json:"total"`
}

// Graph is the answer of GET /api/v1/graph.
type Graph struct {
	WindowStart *time.Time `json:"window_start"`
	WindowEnd   *time.Time `json:"window_end"`
	Nodes       []Node     `json:"nodes"`
	Edges       []Edge     `json:"edges"`
}

// Evidence is one measured reason behind a suspect.
type Evidence struct {
	Series   string  `json:"series"`
	SeriesID Series  `json:"series_id"`
	Feature  string  `json:"feature"`
	Current  float64 `json:"current"`
	Baseline float64 `json:"baseline"`
	Unit     string  `json:"unit"`
	Spreads  float64 `json:"spreads"`
	Windows  int64   `json:"windows"`
	// Calls, Hits, Over and HorizonS: evidence accumulated over windows
	// (Hits of Calls calls over HorizonS seconds beyond the usual Over
	// quantile, or failed); Text says the evidence in words. Detectors
	// before 2026-12 send neither.
	Calls     int64    `json:"calls"`
	Hits      int64    `json:"hits"`
	Over      string   `json:"over"`
	HorizonS  float64  `json:"horizon_s"`
	Text      string   `json:"text"`
	Exemplars []string `json:"exemplar_trace_ids"`
}

// Suspect is one ranked root-cause candidate of an incident.
type Suspect struct {
	Service   string     `json:"service"`
	Operation string     `json:"operation"`
	Kind      string     `json:"kind"`
	NodeKind  string     `json:"node_kind"`
	Caller    string     `json:"caller"`
	Score     float64    `json:"score"`
	Summary   string     `json:"summary"`
	Evidence  []Evidence `json:"evidence"`
}

// Series names a series typed: an edge (Source, Target, Operation) or an
// operation of a Service.
type Series struct {
	Kind      string `json:"kind"` // "edge" or "operation"
	Source    string `json:"source"`
	Target    string `json:"target"`
	Service   string `json:"service"`
	Operation string `json:"operation"`
}

// Anomaly is one anomalous series grouped into an incident: Series is its
// name for people ("op SERVICE/OPERATION", "edge SOURCE->TARGET:OPERATION"),
// SeriesID the same typed, which is what the plugin reads.
type Anomaly struct {
	Series      string    `json:"series"`
	SeriesID    Series    `json:"series_id"`
	Score       float64   `json:"score"`
	Windows     int64     `json:"windows"`
	FirstAt     time.Time `json:"first_at"`
	LastAt      time.Time `json:"last_at"`
	Explanation string    `json:"explanation"`
}

// Incident is one incident as the detector serves it.
type Incident struct {
	ID         string     `json:"id"`
	State      string     `json:"state"`
	OpenedAt   time.Time  `json:"opened_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	ResolvedAt *time.Time `json:"resolved_at"`
	Services   []string   `json:"services"`
	Anomalies  []Anomaly  `json:"anomalies"`
	Suspects   []Suspect  `json:"suspects"`
	MergedInto string     `json:"merged_into"`
	Revision   int64      `json:"revision"`
}

// Regime is one learned normal regime of an edge operation: per feature its
// centroid and band; a nil entry means the feature is not judged.
type Regime struct {
	Name     string     `json:"name"`
	Weight   float64    `json:"weight"`
	Centroid []*float64 `json:"centroid"`
	BandLow  []*float64 `json:"band_low"`
	BandHigh []*float64 `json:"band_high"`
}

// Window is one recent window of an edge operation: per feature its value.
type Window struct {
	Start     time.Time  `json:"start"`
	Values    []*float64 `json:"values"`
	Score     float64    `json:"score"`
	Anomalous bool       `json:"anomalous"`
}

// OperationBaseline is the learned baseline of one callee operation of an
// edge.
type OperationBaseline struct {
	Operation     string   `json:"operation"`
	Features      []string `json:"features"`
	Units         []string `json:"units"`
	Regimes       []Regime `json:"regimes"`
	RecentWindows []Window `json:"recent_windows"`
}

// EdgeBaselines is the answer of GET /api/v1/edges/{src->dst}/baseline.
type EdgeBaselines struct {
	Source     string              `json:"source"`
	Target     string              `json:"target"`
	Operations []OperationBaseline `json:"operations"`
}

// APIError is an answer of the detector other than 2xx.
type APIError struct {
	Path    string // the request path, e.g. /api/v1/incidents/x
	Status  int
	Message string // the detector's "error" field, or the start of the body
}

func (e *APIError) Error() string {
	return fmt.Sprintf("detector answered %s with %d: %s", e.Path, e.Status, e.Message)
}

// Client reads the detector's REST API. It is safe for concurrent use.
// Every request carries the API token as a Bearer token; the token never
// appears in an error the client returns.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// NewClient returns a client of the detector at baseURL (http or https,
// with a host). hc must have a timeout; the client does not own it.
func NewClient(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("detector URL %q must be http(s)://host[:port][/path]", redact(baseURL, token))
	}
	return &Client{base: u, token: token, http: hc}, nil
}

// URL is the detector's base URL as configured.
func (c *Client) URL() string { return c.base.Redacted() }

// Healthz fetches /healthz and fails unless it answers 200.
func (c *Client) Healthz(ctx context.Context) error {
	return c.get(ctx, []string{"healthz"}, nil, nil)
}

// Graph fetches the current service graph.
func (c *Client) Graph(ctx context.Context) (*Graph, error) {
	var g Graph
	return &g, c.get(ctx, []string{"api", "v1", "graph"}, nil, &g)
}

// Incidents fetches incidents, newest first. state is "", "open" or
// "resolved"; zero times are unbounded.
func (c *Client) Incidents(ctx context.Context, state string, since, until time.Time) ([]Incident, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	if !until.IsZero() {
		q.Set("until", until.UTC().Format(time.RFC3339))
	}
	var out struct {
		Incidents []Incident `json:"incidents"`
	}
	err := c.get(ctx, []string{"api", "v1", "incidents"}, q, &out)
	return out.Incidents, err
}

// Incident fetches one incident.
func (c *Client) Incident(ctx context.Context, id string) (*Incident, error) {
	var inc Incident
	return &inc, c.get(ctx, []string{"api", "v1", "incidents", id}, nil, &inc)
}

// Baseline fetches the learned baselines of the edge source->target; a
// non-empty operation narrows them to that callee operation.
func (c *Client) Baseline(ctx context.Context, source, target, operation string) (*EdgeBaselines, error) {
	q := url.Values{}
	if operation != "" {
		q.Set("operation", operation)
	}
	var b EdgeBaselines
	return &b, c.get(ctx, []string{"api", "v1", "edges", source + "->" + target, "baseline"}, q, &b)
}

// get fetches the path made of segments (each escaped on its own) and
// decodes a JSON answer into out, unless out is nil.
func (c *Client) get(ctx context.Context, segments []string, q url.Values, out any) error {
	u := *c.base
	var raw strings.Builder
	for _, s := range segments {
		u.Path += "/" + s
		raw.WriteString("/" + url.PathEscape(s))
	}
	u.RawPath = c.base.EscapedPath() + raw.String()
	u.RawQuery = q.Encode()
	path := u.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("build request for %s: %s", path, redact(err.Error(), c.token))
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The error names the URL, never the headers; redact anyway in
		// case the token was pasted into the URL.
		return &transportError{msg: redact(err.Error(), c.token), timeout: isTimeout(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return &transportError{msg: "read " + path + ": " + redact(err.Error(), c.token), timeout: isTimeout(err)}
	}
	if resp.StatusCode/100 != 2 {
		return &APIError{Path: path, Status: resp.StatusCode, Message: redact(errorMessage(body), c.token)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// transportError is a request that got no HTTP answer: the detector is
// down, unreachable or too slow.
type transportError struct {
	msg     string
	timeout bool
}

func (e *transportError) Error() string { return "cannot reach the detector: " + e.msg }

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// errorMessage is the "error" field of a JSON error body, or the start of
// the body as text.
func errorMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// redact replaces every occurrence of the token in s.
func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "[redacted]")
}
