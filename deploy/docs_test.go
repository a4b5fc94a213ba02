package deploy

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
)

// TestOperationsGuideCoversConfig checks that the configuration reference
// in docs/operations.md names every key of the detector's configuration
// blocks, so a new key cannot go undocumented.
func TestOperationsGuideCoversConfig(t *testing.T) {
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var keys []string
	for k := range detectorKeys {
		keys = append(keys, k)
	}
	for prefix, v := range map[string]any{"kafka": consume.Config{}, "graph": graph.Config{}, "alerts": alert.Config{}} {
		keys = append(keys, yamlKeys(prefix, reflect.TypeOf(v))...)
	}
	for _, k := range []string{"enabled", "windows_topic", "merged_topic", "merge", "leader_topic", "rekey_topic", "max_window_wait"} {
		keys = append(keys, "cluster."+k)
	}
	for _, k := range apiKeys {
		keys = append(keys, "api."+k)
	}
	keys = append(keys, apiTokenEnv)
	for _, k := range keys {
		if !strings.Contains(doc, "`"+k) {
			t.Errorf("docs/operations.md does not document %s", k)
		}
	}
}

// yamlKeys lists prefix.tag for the YAML-tagged fields of struct type t.
func yamlKeys(prefix string, t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		out = append(out, prefix+"."+tag)
	}
	return out
}
