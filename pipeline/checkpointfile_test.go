package pipeline

import (
	"bytes"
	"compress/gzip"
	"encoding/gob"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/statefs"
)

func testCheckpoint(section int) *CheckpointData {
	r := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.IntN(16)) // compressible, as encoded state is
		}
		return b
	}
	return &CheckpointData{Magic: checkpointMagic, Version: checkpointVersion, Seq: 7, At: time.Unix(1_700_000_000, 0).UTC(),
		Topic: "otlp_spans", Group: "causeway", Next: map[int]int64{0: 12, 3: 40},
		Baselines: fill(section), Graph: fill(2 * section), Incidents: fill(section / 2)}
}

// TestCheckpointFile: a checkpoint streamed to disk reads back as it was;
// one written by an older build in version 1 (the whole state in one gob
// value) is still read; a truncated file is an error, not a short state.
func TestCheckpointFile(t *testing.T) {
	dir := t.TempDir()
	want := testCheckpoint(1 << 16)
	path := filepath.Join(dir, CheckpointFile)
	if err := statefs.WriteStream(statefs.OS{}, path, func(w io.Writer) error { return writeCheckpoint(w, want) }); err != nil {
		t.Fatal(err)
	}
	check := func(what string, got *CheckpointData, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got.Seq != want.Seq || got.Next[3] != 40 || !bytes.Equal(got.Baselines, want.Baselines) ||
			!bytes.Equal(got.Graph, want.Graph) || !bytes.Equal(got.Incidents, want.Incidents) {
			t.Errorf("%s: read back differs", what)
		}
	}
	got, err := ReadCheckpoint(path)
	check("version 2", got, err)

	old := *want
	old.Version = 1
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf)
	if err := gob.NewEncoder(z).Encode(&old); err != nil {
		t.Fatal(err)
	}
	z.Close()
	v1 := filepath.Join(dir, "v1.snap")
	if err := os.WriteFile(v1, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = ReadCheckpoint(v1)
	check("version 1", got, err)

	whole, _ := os.ReadFile(path)
	cut := filepath.Join(dir, "cut.snap")
	if err := os.WriteFile(cut, whole[:len(whole)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCheckpoint(cut); err == nil || !strings.Contains(err.Error(), "read checkpoint") {
		t.Errorf("truncated checkpoint: %v, want an error", err)
	}
}

// BenchmarkCheckpointWrite: what writing a checkpoint of 56 MB of encoded
// state allocates, streamed to the file (statefs.OS) and gathered in
// memory first (an FS that only takes whole files, as every write was
// before). B/op is the memory a checkpoint adds on top of the state.
func BenchmarkCheckpointWrite(b *testing.B) {
	cp := testCheckpoint(16 << 20)
	for _, bc := range []struct {
		name string
		fs   statefs.FS
	}{{"streamed", statefs.OS{}}, {"gathered", wholeFileFS{}}} {
		b.Run(bc.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), CheckpointFile)
			b.ReportAllocs()
			for b.Loop() {
				if err := statefs.WriteStream(bc.fs, path, func(w io.Writer) error { return writeCheckpoint(w, cp) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// wholeFileFS writes whole files only (no WriteStream).
type wholeFileFS struct{}

func (wholeFileFS) WriteFile(path string, data []byte) error {
	return statefs.OS{}.WriteFile(path, data)
}
