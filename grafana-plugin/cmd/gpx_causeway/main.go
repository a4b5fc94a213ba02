// Command gpx_causeway is the backend of Causeway's Grafana data source.
// Grafana starts it as a plugin process and talks to it over gRPC; it
// answers queries by reading the Causeway detector's REST API.
package main

import (
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/causeway/causeway/grafana-plugin/pkg/grafanads"
)

func main() {
	// Manage serves until Grafana stops the process; it creates one
	// Datasource per configured data source and replaces it when the
	// settings change.
	if err := datasource.Manage(grafanads.PluginID, grafanads.NewDatasource, datasource.ManageOpts{}); err != nil {
		log.DefaultLogger.Error("plugin exited", "error", err.Error())
		os.Exit(1)
	}
}
