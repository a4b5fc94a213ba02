package sim_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/causeway/causeway/sim"
)

func ExampleParseFault() {
	f, err := sim.ParseFault("network_delay:frontend>cartservice:+30ms@40s/1m")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(f.Kind, f.Target, f.Callee, f.Delay, f.Start, f.Duration)
	fmt.Println(f)
	// Output:
	// network_delay frontend cartservice 30ms 40s 1m0s
	// network_delay:frontend>cartservice:+30ms@40s/1m0s
}

func ExampleBatchJob() {
	// A 6-hour baseline test: a 3-minute reindex every 30 minutes, the
	// first 10 minutes in, so the detector sees 12 runs.
	s, err := sim.New(sim.Config{Seed: 1, Batch: &sim.BatchJob{
		Every: 30 * time.Minute, Duration: 3 * time.Minute, Offset: 10 * time.Minute,
		Rate: 10, Slowdown: 0.4,
	}})
	if err != nil {
		log.Fatal(err)
	}
	for _, at := range []time.Duration{0, 10 * time.Minute, 13 * time.Minute, 40 * time.Minute, 5*time.Hour + 41*time.Minute} {
		fmt.Println(at, s.BatchRunning(s.Now().Add(at)))
	}
	// Output:
	// 0s false
	// 10m0s true
	// 13m0s false
	// 40m0s true
	// 5h41m0s true
}

func ExampleSim_Messages() {
	s, err := sim.New(sim.Default())
	if err != nil {
		log.Fatal(err)
	}
	msgs := s.Messages(time.Second)
	fmt.Println(s.Now().Format(time.TimeOnly), len(msgs) > 0, len(msgs[0].Key))
	// Output:
	// 08:00:01 true 32
}

func ExampleSim_Run() {
	s, err := sim.New(sim.Default())
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	batches := 0
	// Speed 0 generates as fast as publish accepts; a real caller would
	// write msgs to Kafka here.
	err = s.Run(ctx, 0, func(_ context.Context, msgs []sim.Message) error {
		if batches++; batches == 50 {
			cancel()
		}
		return nil
	})
	fmt.Println(err, s.Now().Format(time.TimeOnly))
	// Output:
	// <nil> 08:00:10
}
