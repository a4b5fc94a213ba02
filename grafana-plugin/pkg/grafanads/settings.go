package grafanads

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// DefaultTimeout bounds every request to the detector unless the data
// source sets jsonData.timeoutSeconds.
const DefaultTimeout = 10 * time.Second

// Settings are one data source instance's configuration.
type Settings struct {
	// URL is the detector's base URL: the data source's URL field, or
	// jsonData.detectorUrl when that is empty.
	URL string
	// APIToken is secureJsonData.apiToken, sent as a Bearer token.
	APIToken string
	// Timeout bounds each request to the detector.
	Timeout time.Duration
}

// jsonData is the data source's non-secret JSON configuration.
type jsonData struct {
	DetectorURL    string  `json:"detectorUrl"`
	TimeoutSeconds float64 `json:"timeoutSeconds"`
}

// LoadSettings reads and checks an instance's settings. Errors name the bad
// field and never contain the token.
func LoadSettings(s backend.DataSourceInstanceSettings) (Settings, error) {
	var jd jsonData
	if len(s.JSONData) > 0 && string(s.JSONData) != "null" {
		if err := json.Unmarshal(s.JSONData, &jd); err != nil {
			return Settings{}, fmt.Errorf("jsonData: %w", err)
		}
	}
	out := Settings{
		URL:      strings.TrimSpace(s.URL),
		APIToken: s.DecryptedSecureJSONData["apiToken"],
		Timeout:  DefaultTimeout,
	}
	if out.URL == "" {
		out.URL = strings.TrimSpace(jd.DetectorURL)
	}
	if out.URL == "" {
		return Settings{}, fmt.Errorf("url: the detector URL is not set (e.g. http://causeway:8080)")
	}
	switch {
	case jd.TimeoutSeconds < 0:
		return Settings{}, fmt.Errorf("jsonData.timeoutSeconds: %v is negative", jd.TimeoutSeconds)
	case jd.TimeoutSeconds > 0:
		out.Timeout = time.Duration(jd.TimeoutSeconds * float64(time.Second))
	}
	return out, nil
}
