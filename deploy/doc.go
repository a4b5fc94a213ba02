// Package deploy holds the deployment files of Causeway (the container
// image, Kubernetes manifests, a local compose stack and the OpenTelemetry
// Collector configuration) and no code. Its tests check those files
// structurally: what can be verified without a container engine or a
// cluster, such as probes, security settings, pinned images and that every
// configuration names the topic and encoding the detector reads. See
// docs/operations.md.
package deploy
