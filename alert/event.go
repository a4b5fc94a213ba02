// Package alert tells on-call about incidents: it turns each incident change
// into an event (opened, updated, resolved), routes it to receivers by its
// labels, writes it to a durable outbox before anything is sent, and delivers
// it from one send loop per receiver with retries, in order per incident.
//
// Receivers are a generic JSON webhook (optionally HMAC-signed), the
// Alertmanager v2 API, PagerDuty Events v2 and Slack incoming webhooks.
package alert

import (
	"cmp"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/rank"
	"github.com/causeway/causeway/incident"
)

// PayloadVersion is the version of the generic webhook's JSON; it changes
// only when a field changes meaning or goes away.
const PayloadVersion = "1"

// Kind of event.
type Kind string

// Kinds of event.
const (
	Opened   Kind = "opened"
	Updated  Kind = "updated"
	Resolved Kind = "resolved"
	// Test is sent by `detector alert test`; it belongs to no incident.
	Test Kind = "test"
)

// Event is one thing on-call hears about an incident. Its ID is stable: the
// same incident revision and kind always give the same ID, across restarts,
// so a receiver can drop the duplicates that at-least-once delivery brings.
type Event struct {
	Version    string            `json:"version"`
	ID         string            `json:"event_id"`
	Kind       Kind              `json:"kind"`
	IncidentID string            `json:"incident_id"`
	State      incident.State    `json:"state"`
	Revision   int               `json:"revision"`
	Severity   incident.Severity `json:"severity"`
	Time       time.Time         `json:"time"` // when the change happened (event time)
	OpenedAt   time.Time         `json:"opened_at"`
	ResolvedAt *time.Time        `json:"resolved_at,omitempty"`
	MergedInto string            `json:"merged_into,omitempty"`
	Title      string            `json:"title"`
	Services   []string          `json:"services"`
	Suspects   []Suspect         `json:"suspects"` // best first, at most MaxSuspects
	// Previous is what the last event about this incident said, when this
	// one changes the top suspect or the severity.
	Previous *Previous `json:"previous,omitempty"`
	Links    Links     `json:"links"`
}

// MaxSuspects is how many suspects an event carries.
const MaxSuspects = 3

// Suspect is a ranked root-cause candidate with its evidence in sentences.
type Suspect struct {
	Rank      int              `json:"rank"`
	Service   string           `json:"service"`
	Operation string           `json:"operation,omitempty"`
	Kind      rank.SuspectKind `json:"kind"`
	NodeKind  graph.NodeKind   `json:"node_kind,omitempty"`
	Caller    string           `json:"caller,omitempty"` // a network suspect's other end, when one caller's calls show it
	Score     float64          `json:"score"`
	Summary   string           `json:"summary"`
	Evidence  []string         `json:"evidence"`
	Exemplars []string         `json:"exemplar_trace_ids,omitempty"`
}

// Previous is the earlier top suspect and severity of an updated incident.
type Previous struct {
	Severity   incident.Severity `json:"severity"`
	TopSuspect string            `json:"top_suspect,omitempty"`
}

// Links point at the incident in the REST API and in Grafana.
type Links struct {
	Incident string `json:"incident,omitempty"`
	Suspects string `json:"suspects,omitempty"`
	Grafana  string `json:"grafana,omitempty"`
}

// TopSuspect is the first suspect's service, "" when there is none.
func (e *Event) TopSuspect() string {
	if len(e.Suspects) == 0 {
		return ""
	}
	return e.Suspects[0].Service
}

// Labels are what routes match on: severity, the top suspect and its kind.
func (e *Event) Labels() map[string]string {
	l := map[string]string{"severity": string(e.Severity)}
	if len(e.Suspects) > 0 {
		l["suspect"], l["suspect_kind"] = e.Suspects[0].Service, string(e.Suspects[0].Kind)
	}
	return l
}

// eventID is stable for an incident revision and kind.
func eventID(incidentID string, kind Kind, revision int) string {
	if kind == Resolved {
		return incidentID + "/resolved"
	}
	return fmt.Sprintf("%s/r%d", incidentID, revision)
}

// newEvent describes inc for on-call. External and Grafana are the base URLs
// of the detector's API and of the Grafana dashboard ("" leaves the link out).
func newEvent(kind Kind, inc *incident.Incident, external, grafana string) Event {
	e := Event{
		Version: PayloadVersion, ID: eventID(inc.ID, kind, inc.Revision), Kind: kind,
		IncidentID: inc.ID, State: inc.State, Revision: inc.Revision, Severity: inc.Severity,
		Time: inc.UpdatedAt, OpenedAt: inc.OpenedAt, ResolvedAt: inc.ResolvedAt, MergedInto: inc.MergedInto,
		Services: inc.Services,
	}
	if e.Severity == "" {
		e.Severity = incident.Warning
	}
	for i, s := range inc.Suspects {
		if i == MaxSuspects {
			break
		}
		sus := Suspect{Rank: i + 1, Service: s.Service, Operation: s.Operation, Kind: s.Kind, NodeKind: s.NodeKind, Caller: s.Caller,
			Score: round2(s.Score), Summary: s.Summary}
		for _, ev := range s.Evidence {
			sus.Evidence = append(sus.Evidence, evidenceSentence(ev))
			for _, x := range ev.Exemplars {
				if len(sus.Exemplars) < 3 {
					sus.Exemplars = append(sus.Exemplars, x)
				}
			}
		}
		e.Suspects = append(e.Suspects, sus)
	}
	e.Title = title(&e)
	if external != "" {
		base := strings.TrimRight(external, "/") + "/api/v1/incidents/" + url.PathEscape(inc.ID)
		e.Links.Incident, e.Links.Suspects = base, base+"/suspects"
	}
	if grafana != "" {
		e.Links.Grafana = withQuery(grafana, "var-incident", inc.ID)
	}
	return e
}

// title is the one line a pager shows.
func title(e *Event) string {
	var b strings.Builder
	switch e.Kind {
	case Resolved:
		b.WriteString("Resolved: ")
	case Test:
		b.WriteString("Test: ")
	}
	if len(e.Suspects) == 0 {
		fmt.Fprintf(&b, "incident %s in %s", e.IncidentID, strings.Join(e.Services, ", "))
		return b.String()
	}
	b.WriteString(e.Suspects[0].headline())
	if n := len(e.Services) - 1; n > 0 {
		fmt.Fprintf(&b, " (%d services affected)", len(e.Services))
	}
	return b.String()
}

// headline says what a suspect is blamed for, in a few words.
func (s Suspect) headline() string {
	switch s.Kind {
	case rank.SuspectLatency:
		return s.Service + " is slow"
	case rank.SuspectErrors:
		return s.Service + " is failing"
	case rank.SuspectNetwork:
		if s.Caller != "" {
			return "the network between " + s.Caller + " and " + s.Service + " is slow"
		}
		return "the network in front of " + s.Service + " is slow"
	case rank.SuspectDependency:
		return fmt.Sprintf("%s %s is slow or failing", cmp.Or(string(s.NodeKind), "dependency"), s.Service)
	case rank.SuspectDown:
		return s.Service + " does not answer"
	}
	return s.Service + " is " + string(s.Kind)
}

// evidenceSentence is one evidence as on-call reads it: "op
// paymentservice/Charge: 5 of 6 calls over 2m0s above the usual p99 (self
// time 212 ms vs 8.1 ms normally), 31.0 spreads over 3 windows".
func evidenceSentence(ev rank.Evidence) string {
	return fmt.Sprintf("%s: %s, %.1f spreads over %d %s", ev.Series, ev.Describe(), ev.Spreads, ev.Windows, plural(ev.Windows, "window"))
}

func plural(n int, what string) string {
	if n == 1 {
		return what
	}
	return what + "s"
}

func quantity(v float64, unit string) string {
	switch unit {
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	case "%":
		return fmt.Sprintf("%.1f%%", v)
	case "":
		return fmt.Sprintf("%.3g", v)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

func withQuery(raw, key, value string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
