package main

import (
	"cmp"
	"fmt"
	"log/slog"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/span"
)

// replayFiles reads the files of `detector replay` in order into a
// pipeline.Feed, counting what it read and skipped.
type replayFiles struct {
	paths  []string
	format string // empty: from each file's name
	log    *slog.Logger

	// Written while the feed runs, read once it is done.
	messages    int64
	badMessages map[string]int
	rejected    map[string]int // spans the decoder refused, by reason
}

func newReplayFiles(paths []string, format string, log *slog.Logger) *replayFiles {
	return &replayFiles{paths: paths, format: format, log: log, badMessages: map[string]int{}, rejected: map[string]int{}}
}

// read decodes every file's messages and emits their spans. A file none
// of whose messages decode is not the spans it was meant to be (another
// format, another file): that is an error, not an empty replay.
func (r *replayFiles) read(emit func([]span.Span) []span.Span) error {
	var buf []span.Span // the next message's spans, emitted without a copy
	for _, path := range r.paths {
		enc := consume.Encoding(r.format)
		if enc == "" {
			enc = consume.GuessEncoding(path)
		}
		dec := consume.NewDecoder(enc, span.Limits{}, 0)
		var messages, good int
		var firstErr error
		err := consume.ReadFile(path, enc, func(msg []byte) error {
			r.messages++
			messages++
			res, err := dec.DecodeInto(msg, buf)
			if err != nil {
				firstErr = cmp.Or(firstErr, err)
				reason := string(reasonOf(err))
				r.badMessages[reason]++
				if r.badMessages[reason] == 1 { // once per reason; the summary has the counts
					r.log.Warn("skipping bad message", "file", path, "message", r.messages, "err", err)
				}
				return nil
			}
			good++
			for reason, n := range res.Rejected {
				r.rejected[string(reason)] += n
			}
			buf = emit(res.Spans)
			return nil
		})
		switch {
		case err != nil:
			return fmt.Errorf("replay: %w", err)
		case messages == 0:
			return fmt.Errorf("replay: %s holds no messages", path)
		case good == 0:
			return fmt.Errorf("replay: %s: none of its %d messages is %s (first error: %v); --format names the encoding", path, messages, enc, firstErr)
		}
	}
	return nil
}
