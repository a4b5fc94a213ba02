// Command otelcheck is an OpenTelemetry Collector holding only the
// components deploy/collector/collector.yaml uses, at the version of the
// Collector image the compose stack runs (v0.155.0). `make deploy-check`
// runs its validate subcommand on that file, so the Collector's own code
// refuses unknown or misplaced keys, bad values and broken pipelines here,
// without a container engine:
//
//	go -C deploy/otelcheck run . validate --config=file:../collector/collector.yaml
//
// It is its own module so that the detector's go.mod does not carry the
// Collector's modules.
package main

import (
	"fmt"
	"os"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/kafkaexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "otelcheck:", err)
		os.Exit(1)
	}
}

// run runs the Collector's command line with args.
func run(args []string) error {
	set := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "otelcheck", Description: "Collector config check for Causeway", Version: "0.155.0"},
		Factories: factories,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
		}},
	}
	cmd := otelcol.NewCommand(set)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	return cmd.Execute()
}

// factories are the components collector.yaml may use.
func factories() (otelcol.Factories, error) {
	var f otelcol.Factories
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap(otlpreceiver.NewFactory()); err != nil {
		return f, err
	}
	if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](batchprocessor.NewFactory(), memorylimiterprocessor.NewFactory()); err != nil {
		return f, err
	}
	if f.Exporters, err = otelcol.MakeFactoryMap(kafkaexporter.NewFactory()); err != nil {
		return f, err
	}
	if f.Extensions, err = otelcol.MakeFactoryMap(healthcheckextension.NewFactory()); err != nil {
		return f, err
	}
	f.Telemetry = otelconftelemetry.NewFactory()
	return f, nil
}
