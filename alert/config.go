package alert

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the alerting part of the detector's configuration. The zero
// value sends nothing.
type Config struct {
	// ExternalURL is the detector's API as on-call reaches it, for links in
	// events. Default: the API's listen address.
	ExternalURL string `yaml:"external_url"`
	// GrafanaURL is the Causeway dashboard in Grafana; events link to it
	// with the incident selected (var-incident). Empty: no link.
	GrafanaURL string `yaml:"grafana_url"`
	// UpdateInterval is the least time between two "updated" events of an
	// incident; changes in between are sent together when it has passed.
	// Default 5m. Opened and resolved events are never held back.
	UpdateInterval time.Duration `yaml:"update_interval"`
	// MaxAge is how long an event is retried before it is given up
	// (counted and logged). Default 24h.
	MaxAge time.Duration `yaml:"max_age"`
	// QueueSize bounds each receiver's undelivered events; beyond it the
	// oldest is dropped and counted. Default 10000.
	QueueSize int `yaml:"queue_size"`
	// Timeout bounds one delivery attempt. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Backoff is the first retry delay, doubled (with jitter) up to
	// MaxBackoff. Defaults 1s and 5m.
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// ResendInterval is how often firing alerts are re-posted to
	// Alertmanager receivers, which forget an alert whose endsAt passed.
	// Default 1m.
	ResendInterval time.Duration `yaml:"resend_interval"`
	Receivers      []Receiver    `yaml:"receivers"`
}

// Receiver kinds.
const (
	KindWebhook      = "webhook"
	KindAlertmanager = "alertmanager"
	KindPagerDuty    = "pagerduty"
	KindSlack        = "slack"
)

// PagerDutyURL is the default endpoint of pagerduty receivers.
const PagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// Receiver is one destination of events.
type Receiver struct {
	// Name identifies the receiver in metrics, logs and `alert test`.
	Name string `yaml:"name"`
	// Kind is webhook, alertmanager, pagerduty or slack.
	Kind string `yaml:"kind"`
	// URL is where events go: the webhook's URL, Alertmanager's base URL
	// (…/api/v2/alerts is appended), PagerDuty's events endpoint (default
	// https://events.pagerduty.com/v2/enqueue). URLSecret replaces it when
	// the URL itself is a credential, as a Slack webhook's is.
	URL       string `yaml:"url"`
	URLSecret Secret `yaml:"url_secret"`
	// Headers are added to every request; SecretHeaders too, with values
	// read from the environment or a file (an Authorization header, say).
	Headers       map[string]string `yaml:"headers"`
	SecretHeaders map[string]Secret `yaml:"secret_headers"`
	// HMACKey (webhook) signs each request: the X-Causeway-Signature
	// header holds "t=<unix seconds>,v1=<hex HMAC-SHA256 of t + "." + body>".
	HMACKey Secret `yaml:"hmac_key"`
	// RoutingKey (pagerduty) is the integration's routing key.
	RoutingKey Secret `yaml:"routing_key"`
	// Match routes events: every key must match one of its values.
	// Keys: severity (warning, critical), service (any of the incident's
	// services), suspect (the top suspect), suspect_kind (latency,
	// errors, network, dependency, unreachable). No Match: every event.
	// Once an incident has been sent to a receiver, its later events
	// follow it there, so an opened alert is always resolved.
	Match map[string][]string `yaml:"match"`
}

// Secret is a credential read from the environment or a file, never
// written inline in the configuration, and never printed: String and the
// JSON and YAML encodings of a Secret hide its value.
type Secret struct {
	Env  string `yaml:"env" json:"env,omitempty"`
	File string `yaml:"file" json:"file,omitempty"`

	value string
}

// UnmarshalYAML reads {env: NAME} or {file: PATH}. A value written inline
// is refused without being repeated in the error.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a secret is read from {env: NAME} or {file: PATH}, never written inline", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Value != "env" && k.Value != "file":
			return fmt.Errorf("line %d: secret: unknown key %q (env or file)", k.Line, k.Value)
		case v.Kind != yaml.ScalarNode:
			return fmt.Errorf("line %d: secret: %s must be a name", v.Line, k.Value)
		case k.Value == "env":
			s.Env = v.Value
		default:
			s.File = v.Value
		}
	}
	return nil
}

// IsSet reports whether the secret names a source.
func (s Secret) IsSet() bool { return s.Env != "" || s.File != "" }

// Value is the secret, once resolved.
func (s Secret) Value() string { return s.value }

// String names the source, never the value.
func (s Secret) String() string {
	switch {
	case s.Env != "":
		return "$" + s.Env
	case s.File != "":
		return "file " + s.File
	}
	return "unset"
}

// Resolve reads the secret from its source: the environment through
// getenv, or the file. An unset secret resolves to "".
func (s *Secret) Resolve(getenv func(string) string) error { return s.resolve(getenv) }

// resolve reads the secret from its source.
func (s *Secret) resolve(getenv func(string) string) error {
	switch {
	case s.Env != "" && s.File != "":
		return errors.New("set env or file, not both")
	case s.Env != "":
		s.value = getenv(s.Env)
		if s.value == "" {
			return fmt.Errorf("environment variable %s is empty or unset", s.Env)
		}
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return fmt.Errorf("read secret: %w", err)
		}
		s.value = strings.TrimSpace(string(b))
		if s.value == "" {
			return fmt.Errorf("secret file %s is empty", s.File)
		}
	}
	return nil
}

// WithDefaults fills in the unset durations and sizes.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.UpdateInterval, 5*time.Minute)
	def(&c.MaxAge, 24*time.Hour)
	def(&c.Timeout, 10*time.Second)
	def(&c.Backoff, time.Second)
	def(&c.MaxBackoff, 5*time.Minute)
	def(&c.ResendInterval, time.Minute)
	if c.QueueSize == 0 {
		c.QueueSize = 10000
	}
	return c
}

var matchKeys = []string{"severity", "service", "suspect", "suspect_kind"}

// Resolve validates the configuration and reads its secrets. Errors name
// the field, as alerts.receivers[NAME].FIELD, and never a secret's value.
func (c *Config) Resolve(getenv func(string) string) error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"update_interval", c.UpdateInterval}, {"max_age", c.MaxAge}, {"timeout", c.Timeout}, {"backoff", c.Backoff},
		{"max_backoff", c.MaxBackoff}, {"resend_interval", c.ResendInterval}} {
		if f.d < 0 {
			return fmt.Errorf("alerts.%s: %v must not be negative", f.name, f.d)
		}
	}
	if c.QueueSize < 0 {
		return fmt.Errorf("alerts.queue_size: %d must not be negative", c.QueueSize)
	}
	for _, u := range []struct{ name, v string }{{"external_url", c.ExternalURL}, {"grafana_url", c.GrafanaURL}} {
		if u.v != "" {
			if err := checkURL(u.v); err != nil {
				return fmt.Errorf("alerts.%s: %w", u.name, err)
			}
		}
	}
	seen := map[string]bool{}
	for i := range c.Receivers {
		r := &c.Receivers[i]
		field := fmt.Sprintf("alerts.receivers[%d]", i)
		if r.Name != "" {
			field = fmt.Sprintf("alerts.receivers[%s]", r.Name)
		}
		if err := r.resolve(getenv); err != nil {
			return fmt.Errorf("%s.%w", field, err)
		}
		if seen[r.Name] {
			return fmt.Errorf("%s.name: used twice", field)
		}
		seen[r.Name] = true
	}
	return nil
}

func (r *Receiver) resolve(getenv func(string) string) error {
	if r.Name == "" {
		return errors.New("name: must be set")
	}
	if strings.ContainsAny(r.Name, "/\\ \t\n") {
		return fmt.Errorf("name: %q must not contain slashes or spaces", r.Name)
	}
	switch r.Kind {
	case KindWebhook, KindAlertmanager, KindPagerDuty, KindSlack:
	case "":
		return errors.New("kind: must be set (webhook, alertmanager, pagerduty or slack)")
	default:
		return fmt.Errorf("kind: %q is not webhook, alertmanager, pagerduty or slack", r.Kind)
	}
	if r.Kind == KindPagerDuty && r.URL == "" && !r.URLSecret.IsSet() {
		r.URL = PagerDutyURL
	}
	switch {
	case r.URL != "" && r.URLSecret.IsSet():
		return errors.New("url: set url or url_secret, not both")
	case r.URL == "" && !r.URLSecret.IsSet():
		return errors.New("url: must be set (or url_secret)")
	case r.URL != "":
		if err := checkURL(r.URL); err != nil {
			return fmt.Errorf("url: %w", err)
		}
	default:
		if err := r.URLSecret.resolve(getenv); err != nil {
			return fmt.Errorf("url_secret: %w", err)
		}
		if checkURL(r.URLSecret.value) != nil {
			return fmt.Errorf("url_secret: %s does not hold an http(s) URL", r.URLSecret)
		}
	}
	for k := range r.Headers {
		if !validHeader(k) {
			return fmt.Errorf("headers: %q is not a valid header name", k)
		}
	}
	for k, s := range r.SecretHeaders {
		if !validHeader(k) {
			return fmt.Errorf("secret_headers: %q is not a valid header name", k)
		}
		if !s.IsSet() {
			return fmt.Errorf("secret_headers.%s: set env or file", k)
		}
		if err := s.resolve(getenv); err != nil {
			return fmt.Errorf("secret_headers.%s: %w", k, err)
		}
		r.SecretHeaders[k] = s
	}
	if r.HMACKey.IsSet() {
		if r.Kind != KindWebhook {
			return fmt.Errorf("hmac_key: only webhook receivers sign, not %s", r.Kind)
		}
		if err := r.HMACKey.resolve(getenv); err != nil {
			return fmt.Errorf("hmac_key: %w", err)
		}
	}
	switch {
	case r.Kind == KindPagerDuty && !r.RoutingKey.IsSet():
		return errors.New("routing_key: pagerduty needs a routing key (env or file)")
	case r.Kind == KindPagerDuty:
		if err := r.RoutingKey.resolve(getenv); err != nil {
			return fmt.Errorf("routing_key: %w", err)
		}
	case r.RoutingKey.IsSet():
		return fmt.Errorf("routing_key: only pagerduty receivers take one, not %s", r.Kind)
	}
	for k, vs := range r.Match {
		if !slices.Contains(matchKeys, k) {
			return fmt.Errorf("match: unknown key %q (have %s)", k, strings.Join(matchKeys, ", "))
		}
		if len(vs) == 0 {
			return fmt.Errorf("match.%s: needs at least one value", k)
		}
	}
	return nil
}

// secrets are the receiver's secret values, for redaction.
func (r *Receiver) secrets() []string {
	var out []string
	for _, s := range []Secret{r.URLSecret, r.HMACKey, r.RoutingKey} {
		if s.value != "" {
			out = append(out, s.value)
		}
	}
	for _, s := range r.SecretHeaders {
		if s.value != "" {
			out = append(out, s.value)
		}
	}
	return out
}

// url is where requests go.
func (r *Receiver) url() string {
	if r.URLSecret.IsSet() {
		return r.URLSecret.value
	}
	return r.URL
}

// PublicURL is the receiver's address as it may be shown: a secret URL
// shows its scheme and host only.
func (r *Receiver) PublicURL() string {
	if !r.URLSecret.IsSet() {
		return r.URL
	}
	u, err := url.Parse(r.URLSecret.value)
	if err != nil {
		return "(secret)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", u.Redacted())
	}
	return nil
}

func validHeader(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return http.CanonicalHeaderKey(k) != ""
}

// matches reports whether the receiver's routes take an event with these
// labels and services.
func (r *Receiver) matches(e *Event) bool {
	labels := e.Labels()
	for k, vs := range r.Match {
		if k == "service" {
			if !slices.ContainsFunc(e.Services, func(s string) bool { return slices.Contains(vs, s) }) {
				return false
			}
			continue
		}
		if !slices.Contains(vs, labels[k]) {
			return false
		}
	}
	return true
}
