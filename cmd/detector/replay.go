package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"time"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/detect"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/pipeline"
	"github.com/causeway/causeway/span"
)

// replayArgs are the flags of `detector replay`.
type replayArgs struct {
	inputs     []string
	format     string
	out        string
	stateDir   string
	graph      graph.Config
	cpuProfile string
	memProfile string
}

func parseReplayFlags(args []string) (replayArgs, error) {
	var a replayArgs
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.Var(listFlag{&a.inputs}, "input", "input file: OTLP JSON lines or length-prefixed OTLP protobuf, gzip accepted (repeatable)")
	fs.StringVar(&a.format, "format", "", "otlp_json or otlp_proto (default: from the file name; .pb/.bin/.proto mean protobuf)")
	fs.StringVar(&a.out, "out", "", "write the result here as JSON (default: stdout)")
	fs.StringVar(&a.stateDir, "state-dir", "", "load baselines from this directory first and save them after: replaying normal traffic primes a detector run with the same --state-dir")
	fs.DurationVar(&a.graph.Window, "window", 0, "event-time window length (default 10s)")
	fs.DurationVar(&a.graph.TraceIdle, "trace-idle", 0, "event time a trace waits for more spans before it is joined (default 15s)")
	fs.DurationVar(&a.graph.Lateness, "lateness", 0, "how long a window stays open behind the watermark (default 5s)")
	fs.IntVar(&a.graph.Workers, "workers", 0, "goroutines joining spans and filling windows (default: the number of CPUs)")
	fs.StringVar(&a.cpuProfile, "cpuprofile", "", "write a CPU profile of the replay here (go tool pprof)")
	fs.StringVar(&a.memProfile, "memprofile", "", "write an allocation profile of the replay here (go tool pprof -sample_index=alloc_space)")
	if err := fs.Parse(args); err != nil {
		return a, err
	}
	// 0 stands for the default when the flag is absent; given, it must
	// be a real length.
	var bad error
	fs.Visit(func(f *flag.Flag) {
		switch {
		case f.Name == "window" && a.graph.Window <= 0, f.Name == "trace-idle" && a.graph.TraceIdle <= 0:
			bad = cmp.Or(bad, fmt.Errorf("replay: --%s %s: must be positive (leave it out for the default)", f.Name, f.Value))
		}
	})
	if bad != nil {
		return a, bad
	}
	a.inputs = append(a.inputs, fs.Args()...)
	if len(a.inputs) == 0 {
		return a, errors.New("replay: at least one --input is required")
	}
	if a.format != "" {
		if _, err := consume.ParseEncoding(a.format); err != nil {
			return a, fmt.Errorf("replay: --format: %w", err)
		}
	}
	return a, a.graph.Validate()
}

// replay runs recorded spans through the same decoder and graph as live
// traffic, in event time, as fast as the CPU allows. Progress goes to log.
func replay(a replayArgs, log *slog.Logger, stdout io.Writer) (err error) {
	if a.cpuProfile != "" {
		stop, err := startCPUProfile("replay: --cpuprofile", a.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if a.memProfile != "" {
		defer func() {
			f, ferr := os.Create(a.memProfile)
			if ferr == nil {
				ferr = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if ferr != nil {
				err = errors.Join(err, fmt.Errorf("replay: --memprofile: %w", ferr))
			}
		}()
	}
	start := time.Now()
	stats := ReplayStats{Files: len(a.inputs), BadMessages: map[string]int{}, RejectedSpans: map[string]int{}, Episodes: []Episode{}}
	p, err := detect.New(detect.Options{Graph: withWorkers(a.graph),
		OnWindow: func(w *graph.Window, fs []baselines.Finding, _ []incident.Change, _ error) { // no store: no error
			if stats.Windows == 0 {
				stats.FirstWindow = w.Start
			}
			stats.Windows++
			stats.LastWindow = w.End
			for _, f := range fs {
				if f.Score.Opened {
					stats.Episodes = append(stats.Episodes, episodeOf(w, f))
				}
			}
		}})
	if err != nil {
		return err
	}
	defer p.Close()

	agg, bs := p.Graph, p.Baselines
	snapshot := ""
	if a.stateDir != "" {
		snapshot = filepath.Join(a.stateDir, pipeline.BaselineFile)
		pipeline.RestoreBaselines(bs, snapshot, log)
	}

	// Files are read and decoded on their own goroutine; the driver
	// applies them on this one, the graph's.
	files := newReplayFiles(a.inputs, a.format, log)
	src := pipeline.NewFeed(files.read)
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	late := 0
	d := pipeline.NewDriver(pipeline.Options{Source: src, Graph: agg, Log: log,
		Applied: func(b *consume.Batch, tooLate int) {
			stats.Spans += int64(len(b.Spans))
			late += tooLate
			select {
			case <-progress.C:
				log.Info("replaying", "spans", stats.Spans,
					"spans_per_s", int(float64(stats.Spans)/time.Since(start).Seconds()))
			default:
			}
		}})
	_ = d.Run(context.Background())
	stats.Messages, stats.BadMessages, stats.RejectedSpans = files.messages, files.badMessages, files.rejected
	if late > 0 {
		stats.RejectedSpans[string(span.ReasonTooLate)] += late
	}
	if err := src.Err(); err != nil {
		return err
	}
	agg.Flush()
	stats.ElapsedSeconds = time.Since(start).Seconds()
	if snapshot != "" {
		if err := bs.SaveFile(snapshot); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		log.Info("baselines saved", "path", snapshot)
	}

	out := ReplayOutput{Graph: agg.Snapshot(), Incidents: p.Incidents.List("", time.Time{}, time.Time{}), Stats: stats}
	slices.Reverse(out.Incidents) // oldest first, as they happened
	if out.Incidents == nil {
		out.Incidents = []incident.Incident{}
	}
	w := stdout
	if a.out != "" {
		f, err := os.Create(a.out)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		w = f
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("replay: write output: %w", err)
	}
	log.Info("replay done", "spans", stats.Spans, "messages", stats.Messages, "windows", stats.Windows,
		"nodes", len(out.Graph.Nodes), "edges", len(out.Graph.Edges),
		"bad_messages", sortedCounts(stats.BadMessages), "rejected_spans", sortedCounts(stats.RejectedSpans),
		"seconds", fmt.Sprintf("%.2f", stats.ElapsedSeconds), "out", a.out)
	return nil
}

func reasonOf(err error) span.Reason {
	var de *consume.Error
	if errors.As(err, &de) {
		return de.Reason
	}
	return span.ReasonDecodeInternal
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("%s=%d", k, m[k])
	}
	return s
}
