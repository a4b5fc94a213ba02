package main

import (
	"context"
	"fmt"
	"sync"
)

// group runs the detector's parts: the first that fails cancels the rest.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errc   chan error
}

func newGroup(ctx context.Context, cancel context.CancelFunc) *group {
	return &group{ctx: ctx, cancel: cancel, errc: make(chan error, 8)}
}

// run starts f on its own goroutine; its error, named, stops the others.
func (g *group) run(name string, f func(context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(g.ctx); err != nil {
			g.errc <- fmt.Errorf("%s: %w", name, err)
			g.cancel()
		}
	}()
}

// wait waits for every part to return.
func (g *group) wait() { g.wg.Wait() }

// err returns the first part's error, if one failed.
func (g *group) err() error {
	select {
	case e := <-g.errc:
		return e
	default:
		return nil
	}
}
