package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// decodeAll decodes every YAML document in b into generic maps, skipping
// empty documents.
func decodeAll(b []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode yaml document %d: %w", len(docs)+1, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// readYAML reads the single YAML document at path.
func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := decodeAll(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(docs) != 1 {
		t.Fatalf("%s: %d YAML documents, want 1", path, len(docs))
	}
	return docs[0]
}

// get walks maps along keys and returns what it finds there, or nil.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func getMap(v any, keys ...string) map[string]any {
	m, _ := get(v, keys...).(map[string]any)
	return m
}

func getList(v any, keys ...string) []any {
	l, _ := get(v, keys...).([]any)
	return l
}

// getString returns the scalar at keys as a string ("" when missing), so
// that 8080 and "8080" compare alike.
func getString(v any, keys ...string) string {
	switch s := get(v, keys...).(type) {
	case nil:
		return ""
	case string:
		return s
	default:
		return fmt.Sprint(s)
	}
}

func stringsOf(l []any) []string {
	out := make([]string, 0, len(l))
	for _, v := range l {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// imagePinned reports why an image reference is not pinned to an explicit
// version, or "" when it is: it needs a tag other than latest, or a digest.
func imagePinned(ref string) string {
	if strings.Contains(ref, "@sha256:") {
		return ""
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	i := strings.LastIndex(name, ":")
	if i < 0 {
		return "no tag"
	}
	if tag := name[i+1:]; tag == "latest" || tag == "" {
		return "tag " + tag
	}
	return ""
}

func TestImagePinned(t *testing.T) {
	for ref, ok := range map[string]bool{
		"golang:1.26.8": true, "gcr.io/distroless/static-debian12:nonroot": true, "localhost:5000/causeway/detector:0.1": true,
		"apache/kafka": false, "grafana/grafana:latest": false, "localhost:5000/causeway/detector": false,
		"prom/alertmanager@sha256:0123": true,
	} {
		if got := imagePinned(ref) == ""; got != ok {
			t.Errorf("imagePinned(%q) pinned=%v, want %v", ref, got, ok)
		}
	}
}

// subset reports whether every key of sub has the same value in m.
func subset(sub, m map[string]any) bool {
	if len(sub) == 0 {
		return false
	}
	for k, v := range sub {
		if fmt.Sprint(m[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

func contains(l []any, s string) bool { return slices.Contains(stringsOf(l), s) }

// reporter is the part of testing.TB the structural checks use, so a test
// can run a check on bad input and see that it fails.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// recorder is a reporter that records failures; Fatalf ends the goroutine
// running the check, as testing.T's does.
type recorder struct {
	failed bool
	msgs   []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// runChecks runs check against r in its own goroutine (so Fatalf can end
// it) and waits for it.
func runChecks(r *recorder, check func(reporter)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r)
	}()
	<-done
}
