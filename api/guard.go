package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxBodyBytes bounds a request body when Options.MaxBodyBytes is
// zero. Every endpoint is a GET; a body is never needed.
const DefaultMaxBodyBytes = 1 << 20

// openPaths are served without the API token: the probes of orchestrators
// and load balancers, which cannot send one.
var openPaths = map[string]bool{"/healthz": true, "/readyz": true}

// Metrics count what the API's guard refuses. Create them once per registry
// with NewMetrics.
type Metrics struct {
	authFailures *prometheus.CounterVec
	tooLarge     prometheus.Counter
}

// NewMetrics registers the API's counters with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_api_auth_failures_total",
			Help: "API requests refused with 401 for want of the right bearer token, by reason (missing, malformed, invalid).",
		}, []string{"reason"}),
		tooLarge: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_api_request_too_large_total",
			Help: "API requests refused with 413 because their body exceeded the limit.",
		}),
	}
	for _, r := range []string{"missing", "malformed", "invalid"} {
		m.authFailures.WithLabelValues(r) // export zeros, so alerts on rate() work from start
	}
	if reg != nil {
		reg.MustRegister(m.authFailures, m.tooLarge)
	}
	return m
}

// guard wraps next with what every request goes through first: the body
// limit, then, when token is set, the bearer token check for every path but
// the probes. It adds no CORS headers: browsers may not call the API from
// other origins (Grafana calls it from its server).
func guard(next http.Handler, token string, maxBody int64, m *Metrics, log *slog.Logger) http.Handler {
	var want [sha256.Size]byte
	if token != "" {
		want = sha256.Sum256([]byte(token))
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && !openPaths[r.URL.Path] {
			if reason := checkBearer(r.Header.Get("Authorization"), want); reason != "" {
				m.authFailures.WithLabelValues(reason).Inc()
				if log != nil {
					// Never the header: it may hold a token, right or nearly so.
					log.Debug("api request refused", "reason", reason+" bearer token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
				}
				challenge := `Bearer realm="causeway"`
				if reason != "missing" {
					challenge += `, error="invalid_token"`
				}
				w.Header().Set("WWW-Authenticate", challenge)
				msg := "missing bearer token: send the header Authorization: Bearer <token> (api.token of the detector)"
				if reason != "missing" {
					msg = reason + " bearer token: the Authorization header does not carry the detector's api.token"
				}
				writeJSON(w, log, http.StatusUnauthorized, map[string]string{"error": msg})
				return
			}
		}
		if r.ContentLength > maxBody {
			m.tooLarge.Inc()
			writeJSON(w, log, http.StatusRequestEntityTooLarge, map[string]string{"error": "request body of " + strconv.FormatInt(r.ContentLength, 10) + " bytes exceeds the limit of " + strconv.FormatInt(maxBody, 10)})
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// checkBearer returns "" when header carries the token whose SHA-256 is
// want, or why not: missing, malformed or invalid. Hashing first makes the
// comparison constant-time in the token's length too.
func checkBearer(header string, want [sha256.Size]byte) string {
	if header == "" {
		return "missing"
	}
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "malformed"
	}
	cred = strings.TrimSpace(cred)
	if cred == "" {
		return "malformed"
	}
	got := sha256.Sum256([]byte(cred))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return "invalid"
	}
	return ""
}
