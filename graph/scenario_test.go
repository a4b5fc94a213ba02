package graph

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/span"
)

var update = flag.Bool("update", false, "rewrite golden files")

// epoch is time zero of the scenario files.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// readScenario parses the scenario text format: one span per line,
//
//	TRACE SPAN PARENT|- SERVICE NAME KIND START END [key=value ...]
//
// with START and END as durations from the scenario epoch ("10ms", "2.5s"),
// NAME with "_" standing for a space, and keys status=error, http=CODE,
// grpc=CODE or a span attribute name. A line "---" ends a message: the spans
// before it are handed to the aggregator in one Add call. "#" starts a comment.
func readScenario(t *testing.T, path string) [][]span.Span {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var msgs [][]span.Span
	var cur []span.Span
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "":
			continue
		case line == "---":
			msgs = append(msgs, cur)
			cur = nil
			continue
		}
		s, err := parseSpan(strings.Fields(line))
		if err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		cur = append(cur, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return append(msgs, cur)
}

// fill writes a readable id: the name's bytes, zero padded.
func fill(dst []byte, name string) { copy(dst, name) }

func parseSpan(f []string) (span.Span, error) {
	var s span.Span
	if len(f) < 8 {
		return s, fmt.Errorf("want at least 8 fields, got %d", len(f))
	}
	fill(s.TraceID[:], f[0])
	fill(s.SpanID[:], f[1])
	if f[2] != "-" {
		fill(s.ParentID[:], f[2])
	}
	s.Service, s.Name = f[3], strings.ReplaceAll(f[4], "_", " ")
	if f[3] == "-" {
		s.Service = ""
	}
	kinds := map[string]span.Kind{"unspecified": 0, "internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
	k, ok := kinds[f[5]]
	if !ok {
		return s, fmt.Errorf("unknown kind %q", f[5])
	}
	s.Kind = k
	st, err := time.ParseDuration(f[6])
	if err != nil {
		return s, err
	}
	en, err := time.ParseDuration(f[7])
	if err != nil {
		return s, err
	}
	s.Start, s.End = epoch+int64(st), epoch+int64(en)
	s.GRPCStatus = -1
	for _, kv := range f[8:] {
		key, val, _ := strings.Cut(kv, "=")
		switch key {
		case "status":
			s.Status = span.StatusError
		case "http", "grpc":
			c, err := strconv.Atoi(val)
			if err != nil {
				return s, err
			}
			if key == "http" {
				s.HTTPStatus = int32(c)
			} else {
				s.GRPCStatus = int32(c)
			}
		case "peer.service":
			s.PeerService = val
		case "server.address":
			s.ServerAddress = val
		case "db.system":
			s.DBSystem = val
		case "db.namespace":
			s.DBNamespace = val
		case "messaging.system":
			s.MessagingSystem = val
		case "messaging.destination.name":
			s.MessagingDest = val
		default:
			return s, fmt.Errorf("unknown key %q", key)
		}
	}
	return s, nil
}

// goldenEdge is the part of an edge a golden file pins down.
type goldenEdge struct {
	Edge      string   `json:"edge"`
	Kind      NodeKind `json:"target_kind"`
	Requests  int64    `json:"requests"`
	Errors    int64    `json:"errors"`
	P50       float64  `json:"p50_ms"`
	Gap       *float64 `json:"gap_ms,omitempty"`
	Exemplars []string `json:"exemplars,omitempty"`
}

type goldenOp struct {
	Op       string  `json:"op"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	SelfP50  float64 `json:"self_p50_ms"`
}

type golden struct {
	Edges   []goldenEdge `json:"edges"`
	Ops     []goldenOp   `json:"ops"`
	Windows int          `json:"windows"`
	Late    int          `json:"late_spans"`
}

func runScenario(t *testing.T, msgs [][]span.Span) golden {
	var g golden
	agg := New(Config{}, func(w *Window) { g.Windows++ }, nil)
	for _, m := range msgs {
		g.Late += agg.Add(m)
	}
	agg.Flush()
	snap := agg.Snapshot()
	for _, e := range snap.Edges {
		for _, op := range e.Operations {
			g.Edges = append(g.Edges, goldenEdge{
				Edge: e.Source + " -> " + e.Target + " : " + op.Name, Kind: e.TargetKind,
				Requests: op.Total.Requests, Errors: op.Total.Errors, P50: op.Total.P50,
				Gap: op.Total.GapMS, Exemplars: op.Total.Exemplars,
			})
		}
	}
	for _, n := range snap.Nodes {
		for _, op := range n.Operations {
			g.Ops = append(g.Ops, goldenOp{Op: n.Name + " : " + op.Name, Requests: op.Total.Requests,
				Errors: op.Total.Errors, SelfP50: *op.Total.SelfP50})
		}
	}
	return g
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.trace")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".trace")
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(runScenario(t, readScenario(t, path)), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			gp := strings.TrimSuffix(path, ".trace") + ".golden.json"
			if *update {
				if err := os.WriteFile(gp, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(gp)
			if err != nil {
				t.Fatalf("%v (run go test ./graph -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from %s:\n%s", name, gp, got)
			}
		})
	}
}
