package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/causeway/causeway/alert"
)

// fieldError is how a configuration error starts: the field's YAML path
// (kafka.sasl.mechanism, alerts.receivers[pd].routing_key, api.tls) and a
// colon, or the file with the line of a decoding error.
var fieldError = regexp.MustCompile(`^([a-z_]+(\.[a-z_]+|\[[^\]]*\])*: |config fuzz\.yaml: )`)

// FuzzConfig decodes arbitrary YAML as a configuration file and validates
// it: neither may panic, every error names the field (or the line) it is
// about, and a secret written inline (where the configuration takes a
// secret) is never repeated. Seeds: every
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
		err := decodeAndValidate(b)
		if err == nil {
			return
		}
		if !fieldError.MatchString(err.Error()) {
			t.Fatalf("error %q names no field\nconfig:\n%s", err, b)
		}
		// The same configuration with each value written where a secret
		// goes replaced by a marker: no error may show the marker.
		if marked := markSecrets(b); marked != nil {
			if err := decodeAndValidate(marked); err != nil && strings.Contains(err.Error(), secretMarker) {
				t.Fatalf("error %q repeats an inline secret\nconfig:\n%s", err, marked)
			}
		}
	})
}

func decodeAndValidate(b []byte) error {
	cfg := defaultConfig()
	if err := cfg.decode(b, "fuzz.yaml"); err != nil {
		return err
	}
	return cfg.Validate()
}

// secretKeys are the YAML keys of the configuration's secret fields
// (alert.Secret, or a map of them), found in its types.
var secretKeys = func() map[string]bool {
	keys := map[string]bool{}
	secret := reflect.TypeFor[alert.Secret]()
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || t == secret {
			return
		}
		seen[t] = true
		for f := range t.Fields() {
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			ft := f.Type
			if ft.Kind() == reflect.Map {
				ft = ft.Elem()
			}
			if ft == secret && tag != "" {
				keys[tag] = true
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[Config]())
	return keys
}()

const secretMarker = "s3cr3t-marker"

// markSecrets returns b with every value written inline where the
// configuration takes a secret replaced by secretMarker, or nil when it
// has none (or is not YAML). A value elsewhere (a listen address that
// happens to equal a secret) is not a secret.
func markSecrets(b []byte) []byte {
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil {
		return nil
	}
	marked := 0
	var mark func(*yaml.Node)
	mark = func(n *yaml.Node) { // the values under n, not a mapping's keys
		switch n.Kind {
		case yaml.ScalarNode:
			n.Value, n.Tag, n.Style = secretMarker, "!!str", 0
			marked++
		case yaml.MappingNode:
			for i := 1; i < len(n.Content); i += 2 {
				mark(n.Content[i])
			}
		case yaml.AliasNode:
		default:
			for _, c := range n.Content {
				mark(c)
			}
		}
	}
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if secretKeys[n.Content[i].Value] {
					mark(n.Content[i+1])
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	if marked == 0 {
		return nil
	}
	out, err := yaml.Marshal(&root)
	if err != nil {
		return nil
	}
	return out
}

func TestMarkSecrets(t *testing.T) {
	for _, k := range []string{"token", "url_secret", "hmac_key", "routing_key", "secret_headers"} {
		if !secretKeys[k] {
			t.Errorf("%s not found among the secret fields %v", k, secretKeys)
		}
	}
	got := string(markSecrets([]byte("listen: not-a-secret\napi: {token: tok-1234}\nalerts: {receivers: [{name: a, secret_headers: {X-Key: hdr-5678}}]}\n")))
	if strings.Count(got, secretMarker) != 2 || strings.Contains(got, "tok-1234") || strings.Contains(got, "hdr-5678") || !strings.Contains(got, "not-a-secret") || !strings.Contains(got, "X-Key") {
		t.Errorf("marked:\n%s\nwant the token and the header's value marked, nothing else", got)
	}
	if markSecrets([]byte("listen: inline-s3cr3t0\n")) != nil {
		t.Error("a listen address taken for a secret")
	}
	// An inline token is refused without being repeated.
	if err := decodeAndValidate(markSecrets([]byte("api: {token: x}\n"))); err == nil || strings.Contains(err.Error(), secretMarker) {
		t.Errorf("inline token: %v", err)
	}
}
