#!/usr/bin/env bash
# integration.sh: run the Go integration tests (build tag `integration`)
# against a fresh single-node Kafka, and always stop that broker afterwards.
#
#   scripts/integration.sh [go test flags and packages]   (default: ./...)
#
# The broker listens on 127.0.0.1:$KAFKA_PORT (default 19092, away from a
# Kafka a developer may run on 9092) with its files in $KAFKA_DIR (default
# $TMPDIR/causeway-kafka-it, kept after the run for its logs). Tests find it
# in KAFKA_BROKERS; its SASL_SSL listener (SCRAM-SHA-256/512 over TLS, on
# $KAFKA_SASL_PORT, default 19094) in KAFKA_SASL_BROKERS, KAFKA_TLS_CA_FILE,
# KAFKA_SCRAM_USER and KAFKA_SCRAM_PASSWORD_FILE. If KAFKA_BROKERS is
# already set, that broker is used and none is started (the SASL tests then
# need those variables too). The broker-restart test starts and kills a
# broker of its own with scripts/kafka.sh. The OpenTelemetry Collector the producer tests run is
# built by scripts/collector.sh and passed in OTELCOL_BIN (set it to use
# another build). The exit code is go test's.
set -euo pipefail
cd "$(dirname "$0")/.."

args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(./...)

# go test runs in its own process group, in the background, so that a signal
# to this script is acted on at once (bash runs traps only between commands,
# and `wait` is such a point) and ends go test together with its test binaries.
gotest=
# shellcheck disable=SC2317 # called from the traps below
on_signal() {
	if [[ -n $gotest ]]; then
		kill -TERM -- "-$gotest" 2>/dev/null || true
		wait "$gotest" 2>/dev/null || true
	fi
	exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# The real-producer tests (TestIntegrationCollector) run an OpenTelemetry
# Collector built by scripts/collector.sh, found in OTELCOL_BIN. Built first,
# before a broker is running; cached after the first time. A failed build
# does not stop the other tests: the Collector tests fail, saying so.
if [[ -z ${OTELCOL_BIN:-} ]]; then
	if built=$(scripts/collector.sh build); then
		OTELCOL_BIN=$(tail -n 1 <<<"$built")
		export OTELCOL_BIN
		echo "integration: collector at OTELCOL_BIN=$OTELCOL_BIN"
	else
		export OTELCOL_BUILD_ERROR="scripts/collector.sh build failed (exit $?); its output precedes the test run"
		echo "integration: $OTELCOL_BUILD_ERROR" >&2
	fi
fi

# Tests that need a broker of their own (TestIntegrationBrokerRestart kills
# and restarts one) start it with scripts/kafka.sh in a directory under
# CAUSEWAY_IT_BROKERS_DIR and stop it when they end; on exit this script
# stops any that a killed test left running, and the shared broker.
export CAUSEWAY_IT_BROKERS_DIR=${CAUSEWAY_IT_BROKERS_DIR:-${TMPDIR:-/tmp}/causeway-kafka-it-own}
mkdir -p "$CAUSEWAY_IT_BROKERS_DIR"
shared_broker_dir=
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	local d
	for d in "$CAUSEWAY_IT_BROKERS_DIR"/*/; do
		[[ ! -f $d/kafka.pid ]] || scripts/kafka.sh stop --dir "$d" || true
	done
	[[ -z $shared_broker_dir ]] || scripts/kafka.sh stop --dir "$shared_broker_dir" || true
}
trap cleanup EXIT

if [[ -n ${KAFKA_BROKERS:-} ]]; then
	echo "integration: using the broker at KAFKA_BROKERS=$KAFKA_BROKERS"
else
	export KAFKA_DIR=${KAFKA_DIR:-${TMPDIR:-/tmp}/causeway-kafka-it}
	export KAFKA_PORT=${KAFKA_PORT:-19092}
	export KAFKA_SASL_PORT=${KAFKA_SASL_PORT:-19094}
	scripts/kafka.sh install
	# Stop the broker however this script ends: normal exit, test failure,
	# Ctrl-C or SIGTERM (the signal traps end go test and exit, running EXIT).
	shared_broker_dir=$KAFKA_DIR
	# The broker also listens with SASL_SSL (SCRAM over TLS, throwaway CA)
	# on KAFKA_SASL_PORT; start prints KAFKA_BROKERS, KAFKA_SASL_BROKERS and
	# the CA and credential files, one NAME=value a line, for the tests.
	started=$(scripts/kafka.sh start --dir "$KAFKA_DIR" --port "$KAFKA_PORT" --sasl-port "$KAFKA_SASL_PORT")
	while IFS= read -r line; do
		[[ $line =~ ^(KAFKA_[A-Z_]+)=(.*)$ ]] && export "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
	done <<<"$started"
	echo "integration: broker at KAFKA_BROKERS=$KAFKA_BROKERS, SASL_SSL at KAFKA_SASL_BROKERS=$KAFKA_SASL_BROKERS, logs in $KAFKA_DIR/kafka.log"
fi

# -timeout: the cmd/detector tests (Collector, fleet, broker restart) take
# several minutes on a loaded 2-core machine; a -timeout in args wins.
setsid go test -tags integration -count=1 -timeout 20m "${args[@]}" &
gotest=$!
rc=0
wait "$gotest" || rc=$?
gotest=
if ((rc != 0)) && [[ -n ${KAFKA_DIR:-} ]]; then
	echo "integration: go test failed (exit $rc); broker log: $KAFKA_DIR/kafka.log" >&2
fi
exit "$rc"
