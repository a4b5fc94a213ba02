package sim

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name  string
		speed float64
		wall  time.Duration
	}{
		{"real time", 1, 10 * time.Second},
		{"ten times faster", 10, 3 * time.Second},
		{"slower", 0.5, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := Config{Seed: 1, ByTrace: true}
				s, _ := New(cfg)
				twin, _ := New(cfg)
				ctx, cancel := context.WithTimeout(context.Background(), tt.wall)
				defer cancel()
				begin := time.Now()
				var got []Message
				err := s.Run(ctx, tt.speed, func(_ context.Context, msgs []Message) error {
					wall := float64(time.Since(begin)) * tt.speed
					sim := float64(msgs[0].Time.Sub(s.cfg.Start))
					if lag := wall - sim; lag < 0 || lag > float64(s.cfg.Interval)+float64(10*time.Millisecond)*tt.speed {
						t.Errorf("simulated time %v at wall time %v×%v", time.Duration(sim), time.Since(begin), tt.speed)
					}
					got = append(got, msgs...)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				want := time.Duration(float64(tt.wall) * tt.speed)
				if reached := s.Now().Sub(s.cfg.Start); reached > want || reached < want-2*s.cfg.Interval {
					t.Errorf("simulated %v in %v at speed %v", reached, tt.wall, tt.speed)
				}
				// Run gives the same messages as stepping by hand.
				var manual []Message
				for twin.now < s.now {
					manual = append(manual, twin.Messages(s.cfg.Interval)...)
				}
				if len(got) != len(manual) || len(got) == 0 {
					t.Fatalf("Run published %d messages, stepping gives %d", len(got), len(manual))
				}
				for i := range got {
					if !bytes.Equal(got[i].Value, manual[i].Value) || !bytes.Equal(got[i].Key, manual[i].Key) {
						t.Fatalf("message %d differs from stepping by hand", i)
					}
				}
			})
		})
	}
}

func TestRunStops(t *testing.T) {
	boom := errors.New("broker down")
	tests := []struct {
		name    string
		speed   float64
		publish func(calls int, cancel func()) error
		want    error
		calls   int
	}{
		{"publish error", 1, func(n int, _ func()) error {
			if n == 3 {
				return boom
			}
			return nil
		}, boom, 3},
		{"unpaced until cancelled", 0, func(n int, cancel func()) error {
			if n == 5 {
				cancel()
			}
			return nil
		}, nil, 5},
		{"error after cancel is shutdown", 0, func(n int, cancel func()) error {
			if n == 2 {
				cancel()
				return context.Canceled
			}
			return nil
		}, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, _ := New(Config{Seed: 1})
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				calls := 0
				err := s.Run(ctx, tt.speed, func(context.Context, []Message) error {
					calls++
					return tt.publish(calls, cancel)
				})
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Fatalf("Run returned %v, want %v", err, tt.want)
				}
				if calls != tt.calls {
					t.Errorf("publish called %d times, want %d", calls, tt.calls)
				}
			})
		})
	}
	s, _ := New(Config{})
	if err := s.Run(context.Background(), -1, nil); err == nil {
		t.Error("negative speed accepted")
	}
}
