// Command detector is Causeway's streaming root-cause detector.
//
//	detector run     [flags]   consume spans from Kafka (no --brokers: the embedded demo)
//	detector replay  [flags]   run recorded spans through the same pipeline, offline
//	detector alert test --receiver NAME   send a test event to an alert receiver
//	detector simulate --otlp-endpoint HOST:PORT   simulated traffic to a Collector
//	detector version   the version and commit it was built from
//
// Run `detector <command> -h` for the flags of each.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: detector <command> [flags]

commands:
  run      consume OpenTelemetry spans from Kafka and serve the API
           (without --brokers: an embedded broker fed by simulated services)
  replay   process recorded spans offline: detector replay --input FILE --out OUT.json
  alert    alert test --receiver NAME [--config FILE]: send a test event to a receiver
  simulate send simulated services' traffic, with faults, to an OTLP/gRPC receiver:
           detector simulate --otlp-endpoint 127.0.0.1:4317 [--fault ...] [--history 20m]
  version  the version and commit this binary was built from

Run 'detector <command> -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "detector:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "run":
		cfg, err := parseRunFlags(args[1:], getenv)
		if err != nil {
			return err
		}
		m := &Main{Config: cfg, Log: newLogger(stderr, cfg.LogLevel), Stdout: stdout, Getenv: getenv}
		return m.Run(ctx)
	case "replay":
		a, err := parseReplayFlags(args[1:])
		if err != nil {
			return err
		}
		return replay(a, newLogger(stderr, "info"), stdout)
	case "alert":
		return alertTest(ctx, args[1:], getenv, stdout, newLogger(stderr, "warn"))
	case "simulate":
		a, err := parseSimulateFlags(args[1:])
		if err != nil {
			return err
		}
		return simulate(ctx, a, newLogger(stderr, "info"))
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated with the config
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
