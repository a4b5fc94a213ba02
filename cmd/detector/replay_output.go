package main

import (
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/incident"
)

// ReplayOutput is the document `detector replay --out` writes; docs/replay.md
// describes it field by field.
type ReplayOutput struct {
	Graph     *graph.Snapshot     `json:"graph"`
	Incidents []incident.Incident `json:"incidents"`
	Stats     ReplayStats         `json:"stats"`
}

// ReplayStats says what the replay read and what it skipped.
type ReplayStats struct {
	Files          int            `json:"files"`
	Messages       int64          `json:"messages"`
	Spans          int64          `json:"spans"`
	BadMessages    map[string]int `json:"bad_messages"`
	RejectedSpans  map[string]int `json:"rejected_spans"`
	Windows        int            `json:"windows"`
	FirstWindow    time.Time      `json:"first_window_start"`
	LastWindow     time.Time      `json:"last_window_end"`
	ElapsedSeconds float64        `json:"elapsed_seconds"`
	// Episodes lists every anomalous episode opened on an edge or an
	// operation, in event-time order.
	Episodes []Episode `json:"anomaly_episodes"`
}

// Episode is an edge or operation leaving its baseline.
type Episode struct {
	Opened      time.Time `json:"opened_at"`
	Edge        string    `json:"edge,omitempty"`
	Operation   string    `json:"operation,omitempty"`
	Score       float64   `json:"score"`
	Explanation string    `json:"explanation"`
}

func episodeOf(w *graph.Window, f baselines.Finding) Episode {
	e := Episode{Opened: w.End, Score: f.Score.Value, Explanation: f.Score.Explanation}
	if f.Edge != nil {
		e.Edge = f.Edge.String()
	} else {
		e.Operation = f.Op.Service + "/" + f.Op.Operation
	}
	return e
}
