package deploy

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// parseDockerfile splits a Dockerfile into instructions, dropping comments
// and joining lines that end in a backslash.
func parseDockerfile(src string) []instruction {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(src, "\n") {
		trim := strings.TrimSpace(line)
		if cur.Len() == 0 && (trim == "" || strings.HasPrefix(trim, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trim, "\\") {
			cur.WriteString(strings.TrimSuffix(trim, "\\") + " ")
			continue
		}
		cur.WriteString(trim)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args), start})
		cur.Reset()
	}
	return out
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	checkDockerfile(t, parseDockerfile(string(b)))
}

func checkDockerfile(t reporter, ins []instruction) {
	t.Helper()
	var froms []instruction
	stages := map[string]bool{}
	var user, entrypoint string
	var exposed, staticBuild bool
	var copies []instruction
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in)
			f := strings.Fields(in.args)
			if why := imagePinned(f[0]); why != "" && !stages[f[0]] && f[0] != "scratch" {
				t.Errorf("line %d: FROM %s is not pinned: %s", in.line, f[0], why)
			}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stages[f[2]] = true
			}
			user = "" // USER applies per stage
		case "RUN":
			if strings.Contains(in.args, "go build") {
				staticBuild = strings.Contains(in.args, "-trimpath") && strings.Contains(in.args, "-s -w") &&
					(strings.Contains(in.args, "CGO_ENABLED=0") || envSet(ins, "CGO_ENABLED=0"))
			}
		case "USER":
			user = in.args
		case "EXPOSE":
			exposed = exposed || strings.Contains(" "+in.args+" ", " 8080 ") || strings.HasPrefix(in.args, "8080")
		case "ENTRYPOINT":
			entrypoint = in.args
		case "COPY":
			copies = append(copies, in)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("%d FROM lines: want a multi-stage build", len(froms))
	}
	if !strings.HasPrefix(froms[0].args, "golang:1.26") {
		t.Errorf("build stage is %q, want golang:1.26.x", froms[0].args)
	}
	final := strings.Fields(froms[len(froms)-1].args)[0]
	if final != "scratch" && !strings.HasPrefix(final, "gcr.io/distroless/static") {
		t.Errorf("final stage is %s, want distroless static or scratch (nothing but the binary)", final)
	}
	if !staticBuild {
		t.Errorf("no `go build` with CGO_ENABLED=0, -trimpath and -ldflags='-s -w'")
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || uid == "root" {
		t.Errorf("final stage USER is %q, want a non-root uid (65532)", user)
	}
	if !exposed {
		t.Errorf("8080 is not EXPOSEd")
	}
	if !strings.HasPrefix(entrypoint, "[") || !strings.Contains(entrypoint, `"run"`) ||
		!strings.Contains(entrypoint, `"--config", "/etc/causeway/causeway.yaml"`) {
		t.Errorf("ENTRYPOINT %s: want exec form running `detector run --config /etc/causeway/causeway.yaml`", entrypoint)
	}
	// Files copied from the build context exist and are not ignored.
	ignore := readDockerignore(t)
	for _, c := range copies {
		if strings.Contains(c.args, "--from=") {
			continue
		}
		f := strings.Fields(c.args)
		for _, src := range f[:len(f)-1] {
			if strings.HasPrefix(src, "--") || src == "." {
				continue
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("line %d: COPY %s: %v", c.line, src, err)
			}
			if dockerignored(ignore, src) {
				t.Errorf("line %d: COPY %s is excluded by .dockerignore", c.line, src)
			}
		}
	}
}

func envSet(ins []instruction, kv string) bool {
	for _, in := range ins {
		if in.cmd == "ENV" && strings.Contains(" "+in.args+" ", " "+kv+" ") {
			return true
		}
	}
	return false
}

func TestDockerfileChecksFail(t *testing.T) {
	// Moving tags, a cgo build, a root final stage without EXPOSE and a
	// shell-form entrypoint: each is reported.
	bad := parseDockerfile("FROM golang:latest AS build\nRUN go build -o /detector ./cmd/detector\n" +
		"FROM debian\nCOPY --from=build /detector /detector\nENTRYPOINT /detector\n")
	r := &recorder{}
	runChecks(r, func(rep reporter) { checkDockerfile(rep, bad) })
	all := strings.Join(r.msgs, "\n")
	for _, want := range []string{"golang:latest is not pinned", "debian is not pinned", "final stage is debian",
		"no `go build`", "USER", "EXPOSE", "ENTRYPOINT", "want golang:1.26"} {
		if !strings.Contains(all, want) {
			t.Errorf("no failure mentions %q; got:\n%s", want, all)
		}
	}
}

func readDockerignore(t reporter) []string {
	t.Helper()
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatalf("%v", err)
	}
	var pats []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			pats = append(pats, l)
		}
	}
	return pats
}

// dockerignored reports whether .dockerignore patterns exclude rel (a
// slash-separated path relative to the context): the last pattern that
// matches the path or one of its parent directories decides, "!" patterns
// include. It covers the pattern forms the repository uses: names, paths,
// "*" globs and a leading "**/".
func dockerignored(pats []string, rel string) bool {
	rel = path.Clean(rel)
	excluded := false
	for _, p := range pats {
		neg := strings.HasPrefix(p, "!")
		p = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))
		if matchesPathOrParent(p, rel) {
			excluded = !neg
		}
	}
	return excluded
}

func matchesPathOrParent(pat, rel string) bool {
	parts := strings.Split(rel, "/")
	for i := len(parts); i > 0; i-- {
		cand := strings.Join(parts[:i], "/")
		if rest, ok := strings.CutPrefix(pat, "**/"); ok {
			cp := strings.Split(cand, "/")
			for j := range cp {
				if ok, _ := path.Match(rest, strings.Join(cp[j:], "/")); ok {
					return true
				}
			}
			continue
		}
		if ok, _ := path.Match(pat, cand); ok {
			return true
		}
	}
	return false
}

// TestDockerignoreKeepsTheBuild checks that .dockerignore keeps every
// source the detector's build needs (its packages and embedded files,
// go.mod, go.sum) and excludes what must stay out.
func TestDockerignoreKeepsTheBuild(t *testing.T) {
	pats := readDockerignore(t)
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}", "./cmd/detector")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	need := []string{"go.mod", "go.sum", "deploy/docker/causeway.yaml"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		rel, err := filepath.Rel(root, f[0])
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module dependency, fetched by go mod download
		}
		need = append(need, filepath.ToSlash(rel))
		for _, e := range f[1:] {
			need = append(need, filepath.ToSlash(filepath.Join(rel, e)))
		}
	}
	if len(need) < 8 {
		t.Fatalf("go list found only %v", need)
	}
	for _, p := range need {
		if dockerignored(pats, p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
	for _, p := range []string{".git", "bin/detector", "detector", "grafana-plugin/node_modules", "deploy/kubernetes/base/causeway.yaml"} {
		if !dockerignored(pats, p) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
}

func TestDockerignoreMatching(t *testing.T) {
	pats := []string{".git", "**/node_modules", "deploy", "!deploy/docker/causeway.yaml", "*.test"}
	for p, want := range map[string]bool{
		".git/config": true, "a/b/node_modules/x": true, "node_modules": true, "deploy/compose/compose.yaml": true,
		"deploy/docker/causeway.yaml": false, "graph/join.go": false, "x.test": true, "cmd/detector": false,
	} {
		if got := dockerignored(pats, p); got != want {
			t.Errorf("dockerignored(%s) = %v, want %v", p, got, want)
		}
	}
}
