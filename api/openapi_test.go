package api

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/causeway/causeway/graph/rank"
)

// TestOpenAPIMatchesHandlers: the document lists exactly the endpoints the
// handler serves, with their methods and path parameters.
func TestOpenAPIMatchesHandlers(t *testing.T) {
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	var served, documented []string
	for _, r := range routes(Options{}) {
		served = append(served, r.pattern)
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
			if len(op.Responses) == 0 {
				t.Errorf("%s %s documents no response", method, path)
			}
			// Every {param} in the path is a documented path parameter.
			for _, seg := range strings.Split(path, "/") {
				if strings.HasPrefix(seg, "{") {
					name := strings.Trim(seg, "{}")
					if !slices.ContainsFunc(op.Parameters, func(p struct {
						Name string `json:"name"`
						In   string `json:"in"`
					}) bool {
						return p.Name == name && p.In == "path"
					}) {
						t.Errorf("%s %s: path parameter %s undocumented", method, path, name)
					}
				}
			}
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	if !slices.Equal(served, documented) {
		t.Errorf("served and documented endpoints differ:\nserved     %q\ndocumented %q", served, documented)
	}
}

// TestOpenAPISecurity: the document requires the bearer scheme everywhere
// but on exactly the paths the guard leaves open, and documents the 401.
func TestOpenAPISecurity(t *testing.T) {
	var doc struct {
		Security   []map[string][]string `json:"security"`
		Components struct {
			SecuritySchemes map[string]struct{ Type, Scheme string } `json:"securitySchemes"`
		} `json:"components"`
		Paths map[string]map[string]struct {
			Security  *[]map[string][]string `json:"security"`
			Responses map[string]any         `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s.Type != "http" || s.Scheme != "bearer" || len(doc.Security) != 1 || doc.Security[0]["bearerAuth"] == nil {
		t.Fatalf("no global bearer security scheme: %+v %+v", doc.Components.SecuritySchemes, doc.Security)
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			open := op.Security != nil && len(*op.Security) == 0
			if open != openPaths[path] {
				t.Errorf("%s %s: documented open %v, served open %v", method, path, open, openPaths[path])
			}
			if _, ok := op.Responses["401"]; ok == open {
				t.Errorf("%s %s: 401 documented %v, want %v", method, path, ok, !open)
			}
		}
	}
}

// TestOpenAPISchemasMatchTypes: the suspect and evidence schemas document
// every field the API writes for them.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{"Evidence": rank.Evidence{}, "Suspect": rank.Suspect{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || tag == "-" || tag == "" {
				continue
			}
			if _, ok := doc.Components.Schemas[name].Properties[tag]; !ok {
				t.Errorf("schema %s does not document %q (%s.%s)", name, tag, typ.Name(), f.Name)
			}
		}
	}
}
