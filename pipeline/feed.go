package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/span"
)

// Feed is a Source of spans a function produces on its own goroutine:
// files being replayed, the simulator. It is one partition, with nothing
// to commit and no wall clock: event time moves by the spans alone.
type Feed struct {
	out  chan *consume.Batch
	pool sync.Pool
	err  error // produce's, read once Batches is closed
}

// NewFeed starts produce, which hands each message's spans to emit and
// returns when it has no more, or cannot go on. emit takes the slice it is
// given (the caller must not touch it again) and returns an empty one, one
// the pipeline is done with when there is, to fill next: spans travel
// without a copy.
func NewFeed(produce func(emit func([]span.Span) []span.Span) error) *Feed {
	f := &Feed{out: make(chan *consume.Batch, 64)}
	go func() {
		defer close(f.out)
		var offset int64
		f.err = produce(func(spans []span.Span) []span.Span {
			f.out <- &consume.Batch{Offset: offset, Spans: spans}
			offset++
			buf, _ := f.pool.Get().([]span.Span)
			return buf
		})
	}()
	return f
}

var _ Source = (*Feed)(nil)

// Err returns why produce stopped early, once Batches is closed.
func (f *Feed) Err() error { return f.err }

func (f *Feed) Batches() <-chan *consume.Batch { return f.out }

func (f *Feed) Release(b *consume.Batch) {
	clear(b.Spans)
	f.pool.Put(b.Spans[:0]) //nolint:staticcheck // a slice header is small next to what it saves
}

// Partitions: none to wait for; the one stream is the watermark.
func (f *Feed) Partitions(context.Context) ([]int, error) { return nil, nil }

func (f *Feed) LastError() time.Time { return time.Time{} }

func (f *Feed) CaughtUp(context.Context, map[int]int64) (bool, error) { return false, nil }

func (f *Feed) Commit(context.Context, int, ...consume.Position) error { return nil }
