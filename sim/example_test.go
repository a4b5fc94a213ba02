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
