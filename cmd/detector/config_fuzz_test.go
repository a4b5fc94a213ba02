package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fieldError is how a configuration error starts: the field's YAML path
// (kafka.sasl.mechanism, alerts.receivers[pd].routing_key, api.tls) and a
// colon, or the file with the line of a decoding error.
var fieldError = regexp.MustCompile(`^([a-z_]+(\.[a-z_]+|\[[^\]]*\])*: |config fuzz\.yaml: )`)

// FuzzConfig decodes arbitrary YAML as a configuration file and validates
// it: neither may panic, every error names the field (or the line) it is
// about, and an inline secret is never repeated. Seeds: every
// configuration in testdata and deploy/.
func FuzzConfig(f *testing.F) {
	for _, glob := range []string{"testdata/*.yaml", "../../deploy/*/causeway.yaml", "../../deploy/kubernetes/base/causeway.yaml"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("listen: 0.0.0.0:1\napi: {token: {env: T}, tls: {cert_file: a}, max_body_bytes: -1}\n"))
	f.Add([]byte("api: {read_timeout: 0s}\ngraph: {window: -1s}\n"))
	f.Add([]byte("kafka: {brokers: [h:1], sasl: {mechanism: X}}\ncluster: {enabled: true, session_timeout: 1ms}\n"))
	f.Add([]byte("alerts: {receivers: [{name: a, kind: slack, url_secret: {env: [x]}}]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg := defaultConfig()
		err := cfg.decode(b, "fuzz.yaml")
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil {
			return
		}
		if !fieldError.MatchString(err.Error()) {
			t.Fatalf("error %q names no field\nconfig:\n%s", err, b)
		}
		if strings.Contains(err.Error(), "inline-s3cr3t") {
			t.Fatalf("error %q repeats an inline secret", err)
		}
	})
}
