package main

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// unknownField is how yaml reports a key that names no field.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)

// explainUnknownKeys rewrites yaml's "field listne not found in type
// main.Config" as what a person fixing the file needs: the key, the closest
// valid one, and the keys valid at that place. Other errors pass through.
func explainUnknownKeys(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	keys := map[string][]string{}
	yamlKeys(reflect.TypeFor[Config](), keys)
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		sm := unknownField.FindStringSubmatch(m)
		if sm == nil {
			msgs[i] = m
			continue
		}
		valid := keys[sm[3]]
		msgs[i] = fmt.Sprintf("line %s: unknown key %q", sm[1], sm[2])
		if c := closest(sm[2], valid); c != "" {
			msgs[i] += fmt.Sprintf(" (did you mean %q?)", c)
		}
		if len(valid) > 0 {
			msgs[i] += "; valid here: " + strings.Join(valid, ", ")
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// yamlKeys records, for t and every struct type within it, the keys yaml
// reads for it, sorted, under the type's name as yaml reports it.
func yamlKeys(t reflect.Type, out map[string][]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || out[t.String()] != nil {
		return
	}
	out[t.String()] = []string{} // marks it seen: types may nest themselves
	var keys []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			switch {
			case name == "-":
				continue
			case strings.Contains(opts, "inline"):
				walk(f.Type)
				continue
			case name == "":
				name = strings.ToLower(f.Name)
			}
			keys = append(keys, name)
			yamlKeys(f.Type, out)
		}
	}
	walk(t)
	slices.Sort(keys)
	out[t.String()] = keys
}

// closest is the valid key nearest to key by edit distance, if one is near
// enough to be a likely typo (at most a third of its letters off).
func closest(key string, valid []string) string {
	best, bestD := "", len(key)/3+1
	for _, v := range valid {
		if d := editDistance(key, v); d < bestD {
			best, bestD = v, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, sub)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
