package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/causeway/causeway/alert"
)

// alertTest is `detector alert test --receiver NAME`: it reads the same
// configuration as `detector run` and sends one test event to the named
// receiver, so on-call can check the route before an incident does.
func alertTest(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 || args[0] != "test" {
		return errors.New("usage: detector alert test --receiver NAME [--config FILE] [--webhook-url URL]")
	}
	cfg := defaultConfig()
	fs := flag.NewFlagSet("alert test", flag.ContinueOnError)
	path := fs.String("config", "", "YAML configuration `FILE`, as detector run reads it")
	name := fs.String("receiver", "", "receiver to test (\"webhook\" for --webhook-url)")
	timeout := fs.Duration("timeout", 15*time.Second, "give up after this long")
	var webhook string
	fs.StringVar(&webhook, "webhook-url", "", "test this generic webhook (also CAUSEWAY_WEBHOOK_URL)")
	fs.SetOutput(new(bytes.Buffer))
	if err := fs.Parse(args[1:]); err != nil {
		fs.SetOutput(stdout)
		if errors.Is(err, flag.ErrHelp) {
			fs.PrintDefaults()
		}
		return err
	}
	if *path != "" {
		if err := cfg.loadFile(*path); err != nil {
			return err
		}
	}
	if err := cfg.envOverrides(getenv); err != nil {
		return err
	}
	if webhook != "" {
		cfg.WebhookURL = webhook
	}
	cfg.addWebhook()
	if *name == "" {
		switch len(cfg.Alerts.Receivers) {
		case 0:
			return errors.New("alert test: no receivers configured: give --config with alerts.receivers, or --webhook-url")
		case 1:
		default:
			return fmt.Errorf("alert test: --receiver is required with %d receivers configured", len(cfg.Alerts.Receivers))
		}
		*name = cfg.Alerts.Receivers[0].Name
	}
	if err := cfg.Alerts.Resolve(getenv); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "causeway-alert-test-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	n, err := alert.New(cfg.Alerts, alert.Options{Dir: dir, Log: log})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := n.Test(ctx, *name); err != nil {
		return fmt.Errorf("alert test %s: %w", *name, err)
	}
	for _, r := range n.Status() {
		if r.Name == *name {
			fmt.Fprintf(stdout, "test event delivered to %s (%s, %s)\n", r.Name, r.Kind, r.URL)
		}
	}
	return nil
}
