package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/span"
)

// fileSource reads the files of `detector replay` as a pipeline.Source:
// their messages in order, as one partition, with nothing to commit and
// no wall clock (event time moves by the spans alone).
type fileSource struct {
	paths  []string
	format string // empty: from each file's name
	log    *slog.Logger
	out    chan *consume.Batch
	pool   sync.Pool

	// Written by run, read once Batches is closed.
	messages    int64
	badMessages map[string]int
	rejected    map[string]int // spans the decoder refused, by reason
	err         error          // why reading stopped early
}

func newFileSource(paths []string, format string, log *slog.Logger) *fileSource {
	return &fileSource{paths: paths, format: format, log: log, out: make(chan *consume.Batch, 64),
		badMessages: map[string]int{}, rejected: map[string]int{}}
}

// run reads every file, then closes Batches.
func (s *fileSource) run() {
	defer close(s.out)
	var offset int64
	for _, path := range s.paths {
		enc := consume.Encoding(s.format)
		if enc == "" {
			enc = consume.GuessEncoding(path)
		}
		dec := consume.NewDecoder(enc, span.Limits{}, 0)
		var messages, good int
		var firstErr error
		err := consume.ReadFile(path, enc, func(msg []byte) error {
			s.messages++
			messages++
			res, err := dec.Decode(msg)
			if err != nil {
				firstErr = cmp.Or(firstErr, err)
				reason := string(reasonOf(err))
				s.badMessages[reason]++
				if s.badMessages[reason] == 1 { // once per reason; the summary has the counts
					s.log.Warn("skipping bad message", "file", path, "message", s.messages, "err", err)
				}
				return nil
			}
			good++
			for r, n := range res.Rejected {
				s.rejected[string(r)] += n
			}
			// The decoder reuses its spans: the batch gets a copy.
			spans, _ := s.pool.Get().([]span.Span)
			s.out <- &consume.Batch{Offset: offset, Spans: append(spans[:0], res.Spans...)}
			offset++
			return nil
		})
		// A file none of whose messages decode is not the spans it was
		// meant to be (another format, another file): say so, do not
		// report an empty replay as a success.
		switch {
		case err != nil:
			s.err = fmt.Errorf("replay: %w", err)
		case messages == 0:
			s.err = fmt.Errorf("replay: %s holds no messages", path)
		case good == 0:
			s.err = fmt.Errorf("replay: %s: none of its %d messages is %s (first error: %v); --format names the encoding", path, messages, enc, firstErr)
		}
		if s.err != nil {
			return
		}
	}
}

func (s *fileSource) Batches() <-chan *consume.Batch { return s.out }

func (s *fileSource) Release(b *consume.Batch) {
	clear(b.Spans)
	s.pool.Put(b.Spans[:0]) //nolint:staticcheck // a slice header is small next to what it saves
}

// Partitions: none to wait for; the one stream is the watermark.
func (s *fileSource) Partitions(context.Context) ([]int, error) { return nil, nil }

func (s *fileSource) LastError() time.Time { return time.Time{} }

func (s *fileSource) CaughtUp(context.Context, map[int]int64) (bool, error) { return false, nil }

func (s *fileSource) Commit(context.Context, int, ...consume.Position) error { return nil }
