package main

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/internal/metrictest"
	"github.com/causeway/causeway/internal/syncbuf"
	"github.com/causeway/causeway/pipeline"
	"github.com/causeway/causeway/statefs"
)

// TestStateDiskFaults runs the embedded demo with a state directory on a
// disk that first fills up (ENOSPC), then fails (EIO), then is slow, and
// then works again. While checkpoints cannot be written the detector keeps
// consuming and serving, counts the failures, logs one error (not one per
// attempt), and commits no offsets, so what it applied meanwhile stays
// uncommitted (a crash would read it again); slow writes hold up neither
// consumption nor the API. Once the disk works the next checkpoint holds
// everything and the offsets are committed. Committed offsets never run
// ahead of the checkpoint on disk.
func TestStateDiskFaults(t *testing.T) {
	cfg := defaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Demo.Speed, cfg.Demo.History = 20, 2*time.Minute
	cfg.StateDir = t.TempDir()
	cfg.SnapshotInterval = 50 * time.Millisecond
	cfg.Kafka.CommitInterval = 10 * time.Millisecond
	logs := &syncbuf.Buffer{}
	disk := &statefs.Faulty{}
	windows := make(chan *graph.Window, 1)
	m := &Main{Config: cfg, FS: disk, Log: slog.New(slog.NewTextHandler(logs, nil)), OnWindow: func(w *graph.Window) {
		select {
		case windows <- w:
		default:
		}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	addr := m.Addr(ctx)
	if addr == "" {
		t.Fatalf("detector did not start: %v", <-done)
	}
	reg := func() *prometheus.Registry { return m.reg }
	checkpoints := func(result string) float64 {
		return metrictest.Value(t, reg(), "causeway_checkpoints_total", "result", result)
	}
	commits := func() float64 { return metrictest.Value(t, reg(), "causeway_consume_commits_total") }
	read := func() float64 { return metrictest.Value(t, reg(), "causeway_consume_messages_total") }
	// until waits, window by window (the detector's own clock), for cond.
	until := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-windows:
			case err := <-done:
				t.Fatalf("detector stopped waiting for %s: %v", what, err)
			case <-ctx.Done():
				t.Fatalf("%s: not before the deadline (checkpoints ok %v, failed %v, busy %v; %v messages read, %v committed)", what,
					checkpoints("ok"), checkpoints("failed"), checkpoints("busy"), read(), commits())
			}
		}
	}
	// Committed offsets never run ahead of the checkpoint on disk: the
	// demo's partitions start at 0, so the checkpoint's next offsets add
	// up to the messages it holds.
	durable := func() {
		t.Helper()
		c := commits()
		cp, err := pipeline.ReadCheckpoint(filepath.Join(cfg.StateDir, pipeline.CheckpointFile))
		if err != nil || cp == nil {
			t.Fatalf("checkpoint: %v", err)
		}
		var held int64
		for _, next := range cp.Next {
			held += next
		}
		if c > float64(held) {
			t.Errorf("%v messages committed, the checkpoint on disk holds %d", c, held)
		}
	}
	healthy := func() {
		t.Helper()
		for _, path := range []string{"/healthz", "/readyz", "/api/v1/graph"} {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %s", path, resp.Status)
			}
		}
	}

	until("a first checkpoint", func() bool { return checkpoints("ok") >= 1 && commits() > 0 })
	durable()

	for _, fault := range []error{statefs.ErrNoSpace, statefs.ErrIO} {
		failedBefore := checkpoints("failed")
		disk.Fail(fault)
		// Writes already under way finish; from the second failure on, no
		// offset is committed.
		until("checkpoints failing", func() bool { return checkpoints("failed") >= failedBefore+2 })
		stuck, readAt := commits(), read()
		until("consuming on", func() bool { return read() > readAt+100 && checkpoints("failed") >= failedBefore+5 })
		if c := commits(); c != stuck {
			t.Errorf("%v: %v messages committed while no checkpoint could be written", fault, c-stuck)
		}
		uncommitted := metrictest.Value(t, reg(), "causeway_checkpoint_uncommitted_messages")
		if uncommitted < 100 {
			t.Errorf("%v: uncommitted messages %v, want the ones read since the disk failed", fault, uncommitted)
		}
		healthy()
		durable()

		okBefore := checkpoints("ok")
		healed := time.Now()
		disk.Fail(nil)
		until("a checkpoint after the disk healed", func() bool { return checkpoints("ok") > okBefore && commits() > stuck })
		t.Logf("%v: %v checkpoints failed, %v messages applied meanwhile and left uncommitted; committed again %v after the disk healed (snapshot_interval %v)",
			fault, checkpoints("failed")-failedBefore, uncommitted, time.Since(healed).Round(time.Millisecond), cfg.SnapshotInterval)
		durable()
		if c, r := commits(), read(); c < readAt {
			t.Errorf("%v: after recovery %v committed, %v had been read before", fault, c, r)
		}
	}
	if n := strings.Count(logs.String(), `msg="write checkpoint failed"`); n != 2 {
		t.Errorf("%d first-failure errors logged for two outages, want 2 (one each):\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), `msg="write checkpoint works again"`); n != 2 {
		t.Errorf("%d recoveries logged, want 2", n)
	}
	if n := strings.Count(logs.String(), "disk_full=true"); n != 1 {
		t.Errorf("%d errors logged as a full disk, want 1", n)
	}

	// A slow disk: the writer waits; checkpoints due meanwhile are skipped
	// (counted), consumption and the API go on.
	release := disk.Slow()
	busy, readAt := checkpoints("busy"), read()
	until("checkpoints skipped while one is slow", func() bool { return checkpoints("busy") >= busy+3 && read() > readAt+100 })
	healthy()
	okBefore := checkpoints("ok")
	t.Logf("slow disk: %v checkpoints skipped while one write was held, %v messages read meanwhile", checkpoints("busy")-busy, read()-readAt)
	release()
	until("the slow checkpoint written", func() bool { return checkpoints("ok") > okBefore })
	durable()

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("detector stopped with %v", err)
	}
	if f := disk.Failed(); f < 10 {
		t.Errorf("only %d writes failed", f)
	}
}
