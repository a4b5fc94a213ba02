package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/causeway/causeway/incident"
)

// userAgent identifies the detector to receivers.
const userAgent = "causeway-detector/1"

// request builds the HTTP request that delivers e to r. now is the wall
// clock at the attempt: it dates signatures and Alertmanager's endsAt.
func (r *Receiver) request(ctx context.Context, e *Event, now time.Time, resend time.Duration) (*http.Request, error) {
	var (
		body any
		url  = r.url()
	)
	switch r.Kind {
	case KindWebhook:
		body = e
	case KindAlertmanager:
		url = strings.TrimRight(url, "/") + "/api/v2/alerts"
		body = alertmanagerAlerts(e, now, resend)
	case KindPagerDuty:
		body = pagerDutyEvent(e, r.RoutingKey.Value())
	case KindSlack:
		body = slackMessage(e)
	default:
		return nil, fmt.Errorf("unknown receiver kind %q", r.Kind)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", r.Kind, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("build request to %s", r.PublicURL()) // the URL may be the secret
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Idempotency-Key", e.ID)
	req.Header.Set("X-Causeway-Event-Id", e.ID)
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	for k, s := range r.SecretHeaders {
		req.Header.Set(k, s.Value())
	}
	if r.Kind == KindWebhook && r.HMACKey.Value() != "" {
		ts := strconv.FormatInt(now.Unix(), 10)
		req.Header.Set("X-Causeway-Timestamp", ts)
		req.Header.Set("X-Causeway-Signature", "t="+ts+",v1="+Sign([]byte(r.HMACKey.Value()), ts, b))
	}
	return req, nil
}

// Sign is the webhook signature: hex HMAC-SHA256 under key of the
// timestamp, a dot, and the body. Receivers recompute it from the
// X-Causeway-Timestamp header and the raw body, compare in constant time,
// and reject old timestamps to stop replays.
func Sign(key []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// amAlert is one alert of Alertmanager's POST /api/v2/alerts.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// AlertName is the alertname label of Causeway's alerts in Alertmanager.
const AlertName = "CausewayIncident"

func amLabels(incidentID string, severity incident.Severity, suspect string) map[string]string {
	l := map[string]string{"alertname": AlertName, "incident_id": incidentID, "severity": string(severity)}
	if suspect != "" {
		l["service"] = suspect
	}
	return l
}

// alertmanagerAlerts is the incident as Alertmanager alerts. Labels are the
// incident, its severity and its top suspect, so the team's routes can use
// them; when an update changes them, the alert under the old labels is
// resolved in the same request. A firing alert ends 4 resend intervals from
// now unless re-posted, as Prometheus does; a resolved one ends when the
// incident resolved (never after now, which would keep it firing).
func alertmanagerAlerts(e *Event, now time.Time, resend time.Duration) []amAlert {
	starts := e.OpenedAt
	if starts.After(now) { // simulated time may run ahead
		starts = now
	}
	a := amAlert{
		Labels:       amLabels(e.IncidentID, e.Severity, e.TopSuspect()),
		Annotations:  map[string]string{"summary": e.Title, "event_id": e.ID},
		StartsAt:     starts,
		EndsAt:       now.Add(4 * resend),
		GeneratorURL: e.Links.Incident,
	}
	if e.State == incident.Resolved {
		a.EndsAt = now
		if e.ResolvedAt != nil && e.ResolvedAt.Before(now) && !e.ResolvedAt.Before(starts) {
			a.EndsAt = *e.ResolvedAt
		}
	}
	if len(e.Suspects) > 0 {
		top := e.Suspects[0]
		a.Annotations["top_suspect"] = top.Service
		a.Annotations["description"] = top.Summary
		a.Annotations["evidence"] = strings.Join(top.Evidence, "\n")
		a.Annotations["suspects"] = suspectLines(e.Suspects, "\n")
	}
	if e.Links.Grafana != "" {
		a.Annotations["grafana_url"] = e.Links.Grafana
	}
	if e.MergedInto != "" {
		a.Annotations["merged_into"] = e.MergedInto
	}
	out := []amAlert{a}
	if p := e.Previous; p != nil && (p.Severity != e.Severity || p.TopSuspect != e.TopSuspect()) {
		old := a
		old.Labels = amLabels(e.IncidentID, p.Severity, p.TopSuspect)
		old.Annotations = map[string]string{"summary": "superseded by " + e.ID, "event_id": e.ID}
		old.EndsAt = now
		out = append(out, old)
	}
	return out
}

func suspectLines(ss []Suspect, sep string) string {
	var lines []string
	for _, s := range ss {
		lines = append(lines, fmt.Sprintf("%d. %s (%s, score %.2f): %s", s.Rank, s.Service, s.Kind, s.Score, s.Summary))
	}
	return strings.Join(lines, sep)
}

// pdEvent is a PagerDuty Events API v2 event.
type pdEvent struct {
	RoutingKey  string     `json:"routing_key"`
	EventAction string     `json:"event_action"` // trigger or resolve
	DedupKey    string     `json:"dedup_key"`
	Payload     *pdPayload `json:"payload,omitempty"`
	Client      string     `json:"client,omitempty"`
	ClientURL   string     `json:"client_url,omitempty"`
	Links       []pdLink   `json:"links,omitempty"`
}

type pdPayload struct {
	Summary       string    `json:"summary"`
	Source        string    `json:"source"`
	Severity      string    `json:"severity"`
	Timestamp     time.Time `json:"timestamp"`
	Component     string    `json:"component,omitempty"`
	Class         string    `json:"class,omitempty"`
	CustomDetails any       `json:"custom_details,omitempty"`
}

type pdLink struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// pagerDutyEvent triggers (opened, updated) or resolves the PagerDuty alert
// whose dedup key is the incident id: PagerDuty folds the triggers of one
// incident into one alert.
func pagerDutyEvent(e *Event, routingKey string) pdEvent {
	ev := pdEvent{RoutingKey: routingKey, DedupKey: e.IncidentID, EventAction: "trigger", Client: "Causeway", ClientURL: e.Links.Incident}
	if e.Kind == Resolved {
		ev.EventAction = "resolve"
		return ev
	}
	sev := "warning"
	if e.Severity == incident.Critical {
		sev = "critical"
	}
	summary := e.Title
	if len(summary) > 1024 { // PagerDuty's limit
		summary = summary[:1021] + "..."
	}
	p := &pdPayload{Summary: summary, Source: "causeway", Severity: sev, Timestamp: e.Time,
		CustomDetails: map[string]any{"event_id": e.ID, "revision": e.Revision, "services": e.Services, "suspects": e.Suspects}}
	if len(e.Suspects) > 0 {
		p.Component, p.Class = e.Suspects[0].Service, string(e.Suspects[0].Kind)
	}
	ev.Payload = p
	if e.Links.Incident != "" {
		ev.Links = append(ev.Links, pdLink{Href: e.Links.Suspects, Text: "Ranked suspects"})
	}
	if e.Links.Grafana != "" {
		ev.Links = append(ev.Links, pdLink{Href: e.Links.Grafana, Text: "Grafana"})
	}
	return ev
}

// slackMessage is a message for a Slack incoming webhook: a header, the
// facts, the ranked suspects with their evidence, and links.
func slackMessage(e *Event) map[string]any {
	icon := map[Kind]string{Opened: ":rotating_light:", Updated: ":warning:", Resolved: ":white_check_mark:", Test: ":test_tube:"}[e.Kind]
	text := fmt.Sprintf("%s %s", icon, e.Title)
	blocks := []map[string]any{
		{"type": "header", "text": map[string]any{"type": "plain_text", "text": truncate(e.Title, 150)}},
		{"type": "section", "fields": []map[string]any{
			mrkdwn("*Incident*\n" + e.IncidentID), mrkdwn("*State*\n" + string(e.Kind)),
			mrkdwn("*Severity*\n" + string(e.Severity)), mrkdwn("*Services*\n" + truncate(strings.Join(e.Services, ", "), 500)),
		}},
	}
	if len(e.Suspects) > 0 {
		var b strings.Builder
		b.WriteString("*Suspects*\n")
		for _, s := range e.Suspects {
			fmt.Fprintf(&b, "%d. *%s* (%s, score %.2f): %s\n", s.Rank, s.Service, s.Kind, s.Score, s.Summary)
		}
		blocks = append(blocks, map[string]any{"type": "section", "text": mrkdwn(truncate(b.String(), 3000))})
	}
	var links []string
	if e.Links.Suspects != "" {
		links = append(links, "<"+e.Links.Suspects+"|Suspects>")
	}
	if e.Links.Grafana != "" {
		links = append(links, "<"+e.Links.Grafana+"|Grafana>")
	}
	links = append(links, "event "+e.ID)
	blocks = append(blocks, map[string]any{"type": "context", "elements": []map[string]any{mrkdwn(strings.Join(links, " · "))}})
	return map[string]any{"text": text, "blocks": blocks}
}

func mrkdwn(s string) map[string]any { return map[string]any{"type": "mrkdwn", "text": s} }

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// outcome classifies a delivery attempt.
type outcome int

const (
	delivered outcome = iota
	retry             // network error, 5xx, 429: try again later
	rejected          // other 4xx and anything else: retrying will not help
)

// classify reads a response: 2xx delivered; 429 and 5xx retried, after
// Retry-After when the receiver gives one; everything else rejected.
func classify(resp *http.Response, now time.Time) (outcome, time.Duration) {
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return delivered, 0
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return retry, retryAfter(resp.Header.Get("Retry-After"), now)
	}
	return rejected, 0
}

// retryAfter parses Retry-After as seconds or an HTTP date; 0 if absent or
// unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
