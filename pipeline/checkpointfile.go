package pipeline

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/incident"
)

// A checkpoint is everything the detector has derived from the messages
// before some offset of each partition, in one file written atomically:
// the baselines, the graph's open windows and pending traces, and the
// incidents. The protocol (docs/operations.md, "Crash safety"):
//
//  1. on the graph's goroutine, between two messages, the state is
//     serialised together with the next offset of every partition;
//  2. a writer goroutine makes the alert outbox and ledger durable, writes
//     the checkpoint file (temporary file, fsync, rename, directory fsync);
//  3. only then are those offsets committed to Kafka.
//
// After a crash the detector loads the checkpoint and reads from the
// committed offsets; messages below the checkpoint's own offsets (the
// commit had not happened yet) are skipped, so each message is applied to
// the state exactly once. The same holds for messages a consumer-group
// rebalance hands out again while the detector runs: every message below
// the next offset the state expects of its partition is skipped.
//
// The file is gzip of: in version 2, the header (the CheckpointData
// without its three sections) as one gob value, then each section as its
// length (uvarint) and its bytes, so that writing copies no section and
// never holds the whole encoding in memory; in version 1 (still read),
// everything as one gob value.
const (
	checkpointMagic   = "causeway-checkpoint"
	checkpointVersion = 2
)

// Files a Checkpointer writes in the state directory.
const (
	// CheckpointFile holds the whole state with the offsets it covers.
	CheckpointFile = "checkpoint.snap"
	// BaselineFile holds the baselines alone, as `detector replay
	// --state-dir` and older builds read them.
	BaselineFile = "baselines.snap"
)

// CheckpointData is the content of a checkpoint file.
type CheckpointData struct {
	Magic   string
	Version int
	Seq     int64
	At      time.Time // wall clock
	Topic   string
	Group   string
	// Next is, per partition, the offset of the first message the state
	// has not seen.
	Next      map[int]int64
	Baselines []byte // baselines.Baselines.Save
	Graph     []byte // graph.Aggregator.SaveState
	Incidents []byte // incident.Manager.SaveState
}

// State is what a checkpoint captures and restores: everything derived
// from the stream.
type State struct {
	Graph     *graph.Aggregator
	Baselines *baselines.Baselines
	Incidents *incident.Manager
}

// capture serialises the state; call it on the graph's goroutine.
func (p State) capture(cp *CheckpointData) error {
	// The graph first: with several workers it waits until every window
	// closed so far has been scored and its incidents updated.
	var b, g, i bytes.Buffer
	if err := p.Graph.SaveState(&g); err != nil {
		return err
	}
	if err := p.Baselines.Save(&b); err != nil {
		return err
	}
	if err := p.Incidents.SaveState(&i); err != nil {
		return err
	}
	cp.Baselines, cp.Graph, cp.Incidents = b.Bytes(), g.Bytes(), i.Bytes()
	return nil
}

// restore loads a checkpoint's state, without the graph's unless
// withGraph; it changes nothing on error, except that the baselines may be
// loaded when a later part fails.
func (p State) restore(cp *CheckpointData, withGraph bool) error {
	if err := p.Baselines.Load(bytes.NewReader(cp.Baselines)); err != nil {
		return err
	}
	if withGraph {
		if err := p.Graph.LoadState(bytes.NewReader(cp.Graph)); err != nil {
			return err
		}
	}
	return p.Incidents.LoadState(bytes.NewReader(cp.Incidents))
}

// writeCheckpoint streams cp to w in the current format.
func writeCheckpoint(w io.Writer, cp *CheckpointData) error {
	z, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	head := *cp
	head.Baselines, head.Graph, head.Incidents = nil, nil, nil
	if err := gob.NewEncoder(z).Encode(&head); err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	for _, section := range [][]byte{cp.Baselines, cp.Graph, cp.Incidents} {
		if _, err := z.Write(binary.AppendUvarint(nil, uint64(len(section)))); err != nil {
			return fmt.Errorf("encode checkpoint: %w", err)
		}
		if _, err := z.Write(section); err != nil {
			return fmt.Errorf("encode checkpoint: %w", err)
		}
	}
	if err := z.Close(); err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	return nil
}

// ReadCheckpoint reads the checkpoint at path; nil, nil when there is none.
func ReadCheckpoint(path string) (*CheckpointData, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	// gob reads exactly its value from a ByteReader, so the sections
	// after it are read from the same one.
	br := bufio.NewReader(z)
	var cp CheckpointData
	if err := gob.NewDecoder(br).Decode(&cp); err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	switch {
	case cp.Magic != checkpointMagic:
		return nil, fmt.Errorf("read checkpoint %s: not a checkpoint", path)
	case cp.Version == 1: // the sections came with the header
	case cp.Version == checkpointVersion:
		for _, section := range []*[]byte{&cp.Baselines, &cp.Graph, &cp.Incidents} {
			if *section, err = readSection(br); err != nil {
				return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
			}
		}
	default:
		return nil, fmt.Errorf("read checkpoint %s: version %d, this build reads %d", path, cp.Version, checkpointVersion)
	}
	if _, err := io.Copy(io.Discard, br); err != nil { // checks the gzip trailer
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	return &cp, nil
}

// readSection reads a section's length and bytes. A length beyond what
// one section may hold is a damaged file, not an allocation to attempt.
func readSection(br *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("section length: %w", err)
	}
	if n > maxSection {
		return nil, fmt.Errorf("section of %d bytes: more than a checkpoint holds", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, fmt.Errorf("section: %w", err)
	}
	return b, nil
}

// maxSection bounds a section read back: far above any state the caps
// allow, far below what a damaged length could ask for.
const maxSection = 16 << 30
