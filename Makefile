# Causeway. `make run` starts the embedded demo; `make test` runs every test.
GO      ?= go
BIN     := bin
PKGS    := ./...
FUZZTIME ?= 10s
# The Grafana plugin's backend is a Go module of its own (grafana-plugin/go.mod),
# which the root's ./... does not enter: lint, unit and plugin run the go
# command in it with -C. Its go.mod ignores node_modules, so ./... there means
# the plugin's own packages.
PLUGIN  := grafana-plugin

.PHONY: all build run test deps check-deps unit lint fuzz-short fuzz integration crash soak bench bench-peer bench-fleet eval replay-nezha clean plugin plugin-deps plugin-frontend plugin-test deploy-check profile

all: build

# -buildvcs=auto: record the commit (detector version) even where GOFLAGS
# turns it off, and build without it outside a git checkout.
build:
	$(GO) build -buildvcs=auto -o $(BIN)/detector ./cmd/detector

## run: the embedded demo — in-process Kafka broker, simulated services, an injected fault; API on 127.0.0.1:8080
run: build
	$(BIN)/detector run $(ARGS)

## test: vet, gofmt, unit and golden tests, short fuzzing, then integration tests against a real Kafka broker
test: check-deps lint deploy-check unit fuzz-short plugin-test integration

## deps: install the Debian packages the tests need (chromium, kcat, Alertmanager, Maven, Java): scripts/deps.sh
deps:
	scripts/deps.sh install

# Name what is missing, and the command that installs it, before anything runs.
check-deps:
	@scripts/deps.sh check

lint: proto-check
	$(GO) vet $(PKGS)
	$(GO) -C $(PLUGIN) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## proto: regenerate the fleet's summary code (fleet/fleetpb/summary.pb.go) from its schema, summary.proto; needs protoc (Debian protobuf-compiler); protoc-gen-go is built at the version go.mod pins
PROTO_GEN = GOBIN=$(CURDIR)/$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go && \
	PATH=$(CURDIR)/$(BIN):$$PATH protoc -I fleet/fleetpb --go_opt=paths=source_relative
proto:
	@mkdir -p $(BIN)
	$(PROTO_GEN) --go_out=fleet/fleetpb fleet/fleetpb/summary.proto

## proto-check: the committed summary.pb.go is what its schema generates
proto-check:
	@mkdir -p $(BIN)/_proto
	@$(PROTO_GEN) --go_out=$(BIN)/_proto fleet/fleetpb/summary.proto
	@cmp -s $(BIN)/_proto/summary.pb.go fleet/fleetpb/summary.pb.go || { echo "fleet/fleetpb/summary.pb.go does not match summary.proto: run make proto"; exit 1; }

unit:
	$(GO) test -count=1 $(PKGS)
	$(GO) -C $(PLUGIN) test -count=1 ./...

# Each fuzz target for 20000 inputs (a few seconds each); `make fuzz
# FUZZTIME=5m` for a long run. A count, not a duration: Go's fuzzer can
# report a spurious "context deadline exceeded" when a duration ends on a
# loaded machine (go.dev/issue/75804); a count has no deadline to race.
fuzz-short:
	$(MAKE) fuzz FUZZTIME=20000x

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeProto$$' -fuzztime $(FUZZTIME) ./consume/otlp
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime $(FUZZTIME) ./consume
	$(GO) test -run '^$$' -fuzz '^FuzzConfig$$' -fuzztime $(FUZZTIME) ./cmd/detector
	$(GO) test -run '^$$' -fuzz '^FuzzAPIParams$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzField$$' -fuzztime $(FUZZTIME) ./fleet

## integration: real Apache Kafka (KRaft, from Maven Central) on 127.0.0.1, started and stopped by scripts/integration.sh
integration:
	scripts/integration.sh -run '^TestIntegration' ./...

## crash: the crash-replay test with more kills (make test runs it with 3): a simulated fault replayed from real Kafka, the detector SIGKILLed CRASH_KILLS times at seeded random points (CAUSEWAY_CRASH_SEED=N to repeat a run) and compared with an uninterrupted run
CRASH_KILLS ?= 10
crash:
	CAUSEWAY_CRASH_KILLS=$(CRASH_KILLS) OTELCOL_BIN=$${OTELCOL_BIN:-unused} scripts/integration.sh -run '^TestIntegrationCrashReplay$$' -v ./cmd/detector

## soak: the detector under steady simulated load from a real Kafka broker on loopback for SOAK_DURATION (default 10m), checking flat memory, no growing lag and no late spans
SOAK_DURATION ?= 10m
soak:
	OTELCOL_BIN=unused KAFKA_PORT=19292 KAFKA_DIR=$${TMPDIR:-/tmp}/causeway-kafka-soak SOAK_DURATION=$(SOAK_DURATION) scripts/integration.sh -v -run '^TestSoak$$' ./cmd/detector

## plugin: the Grafana data source into grafana-plugin/dist: frontend (module.js, plugin.json) and backend gpx_causeway_<os>_<arch>
# The executable's name is the one Grafana looks for: plugin.json's
# "executable" with _<os>_<arch>; -o is relative to $(PLUGIN) (go -C).
PLUGIN_BIN := dist/gpx_causeway_$(shell $(GO) env GOOS)_$(shell $(GO) env GOARCH)
plugin: plugin-frontend
	$(GO) -C $(PLUGIN) build -o $(PLUGIN_BIN) ./cmd/gpx_causeway

# npm ci when node_modules is missing or older than the lock file; never downloads a browser.
plugin-deps: $(PLUGIN)/node_modules/.package-lock.json
$(PLUGIN)/node_modules/.package-lock.json: $(PLUGIN)/package-lock.json
	cd $(PLUGIN) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund

# webpack with the config @grafana/create-plugin lays out (.config/webpack).
plugin-frontend: plugin-deps
	cd $(PLUGIN) && npm run build

## plugin-test: the plugin frontend's tsc, eslint (@grafana/eslint-config), jest, webpack production build, and headless Chromium screenshot (test-results/screenshot.png); Go tests run in unit
plugin-test: plugin-deps
	cd $(PLUGIN) && npm run typecheck && npm run lint && npm test && npm run build && npm run screenshot

## deploy-check: render the Kubernetes kustomizations with a pinned kustomize (Go module proxy, cached in the Go build cache), decode them strictly into the Kubernetes API types (deploy/kubelint), validate the Collector config with the Collector's own code (deploy/otelcheck), and check them, the Dockerfile, the compose stack and the Collector config (go test ./deploy/...)
KUSTOMIZE ?= $(GO) run sigs.k8s.io/kustomize/kustomize/v5@v5.8.2
DEPLOY_KUSTOMIZATIONS := overlays/dev overlays/production kafka-topics
.PHONY: deploy-check
deploy-check:
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	for k in $(DEPLOY_KUSTOMIZATIONS); do \
		echo "kustomize build deploy/kubernetes/$$k"; \
		$(KUSTOMIZE) build deploy/kubernetes/$$k > "$$dir/$$(basename $$k).yaml" || exit 1; \
	done && \
	$(GO) -C deploy/kubelint vet . && $(GO) -C deploy/kubelint test -count=1 . && \
	$(GO) -C deploy/kubelint run . "$$dir"/*.yaml && \
	$(GO) -C deploy/otelcheck vet . && $(GO) -C deploy/otelcheck test -count=1 . && \
	$(GO) -C deploy/otelcheck run . validate --config=file:../collector/collector.yaml && echo "ok          deploy/collector/collector.yaml (Collector v0.155.0 validate)" && \
	DEPLOY_RENDERED="$$dir" $(GO) test -count=1 ./deploy/...

## bench: decode, aggregation, baseline and ranking costs; the pipeline on one core against the generated-struct path (medians of BENCHCOUNT runs); then the whole detector reading from a real Kafka broker on loopback (scripts/integration.sh starts one)
BENCHCOUNT ?= 5
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./consume/... ./graph/... ./model/... ./pipeline/...
	@mkdir -p $(BIN)
	$(GO) test -run '^$$' -bench . -skip '^BenchmarkScale' -benchmem -count $(BENCHCOUNT) -cpu 1 ./bench > $(BIN)/bench.txt || { cat $(BIN)/bench.txt; exit 1; }
	$(GO) test -run '^$$' -bench '^BenchmarkScale' -benchtime 1x -count 1 -cpu 1 ./bench >> $(BIN)/bench.txt || { cat $(BIN)/bench.txt; exit 1; }
	OTELCOL_BIN=unused KAFKA_PORT=19192 KAFKA_DIR=$${TMPDIR:-/tmp}/causeway-kafka-bench scripts/integration.sh -run '^$$' -bench '^BenchmarkKafkaEndToEnd$$' -benchtime 3x -count 1 ./cmd/detector >> $(BIN)/bench.txt || { cat $(BIN)/bench.txt; exit 1; }
	python3 scripts/bench_summary.py < $(BIN)/bench.txt

## bench-peer: this build's whole `detector replay` against the OpenTelemetry Collector's spanmetrics connector on the same spans, in the same run (../shared/peer, copied with ../shared/eval into PEER_DIR: its README); prints its summary, the median of per-run ratios ours / spanmetrics+decode at P1 and P2. A few minutes cold, then PEER_RUNS runs
PEER_SRC      ?= ../shared
PEER_DIR      ?= $${TMPDIR:-/tmp}/cw-bench
PEER_RUNS     ?= 3
PEER_DATASETS ?= ob tt
bench-peer: build
	@test -d $(PEER_SRC)/peer || { echo "bench-peer: $(PEER_SRC)/peer not found (set PEER_SRC)"; exit 1; }
	mkdir -p $(PEER_DIR) && cp -r $(PEER_SRC)/peer $(PEER_SRC)/eval $(PEER_DIR)/
	cd $(PEER_DIR)/peer && RUNS=$(PEER_RUNS) PASSES=1 DATASETS="$(PEER_DATASETS)" NO_COLLECTOR=1 \
		OURS_CMD='$(CURDIR)/$(BIN)/detector replay --input {lpb} --format otlp_proto --out $(PEER_DIR)/ours.json' ./run.sh

## bench-fleet: CPU seconds per million spans of one detector, one cluster member and two, trace-keyed and re-keyed, reading the same simulated traffic (50 requests/s for 10 min, 500/s for 3 min) from a real broker on loopback (TestFleetCost); prints one table (FLEETCOST_RUNS=3: medians of three runs; FLEETCOST_TRAFFIC='500 req/s': one density; FLEETCOST_MERGE=every_member: without the sharded merge)
bench-fleet:
	OTELCOL_BIN=unused KAFKA_PORT=19392 KAFKA_DIR=$${TMPDIR:-/tmp}/causeway-kafka-fleetcost scripts/integration.sh -run '^TestFleetCost$$' -v ./cmd/detector

## profile: CPU and allocation profiles of the pipeline replaying two simulated minutes (622k spans) on one core, and the top of each; files in bin/profile
profile:
	@mkdir -p $(BIN)/profile
	$(GO) test -run '^$$' -bench '^BenchmarkDecodeAggregate$$' -benchtime 5x -cpu 1 -o $(BIN)/profile/bench.test \
		-cpuprofile $(BIN)/profile/cpu.pprof -memprofile $(BIN)/profile/mem.pprof ./bench
	$(GO) tool pprof -top -nodecount 20 $(BIN)/profile/bench.test $(BIN)/profile/cpu.pprof
	$(GO) tool pprof -top -nodecount 20 -sample_index=alloc_space $(BIN)/profile/bench.test $(BIN)/profile/mem.pprof
	@echo "profiles: $(BIN)/profile/{cpu,mem}.pprof (go tool pprof -http=127.0.0.1:0 ...); a recorded file: bin/detector replay --input F --cpuprofile F --memprofile F"

## eval: root-cause accuracy on three data sets: the development suite of ../shared/eval (56 generated scenarios, scripts/eval_dev.sh; generated on first use into ~/.cache/causeway/dev-suite, ~3 GB, ~90 s), the 47 Nezha Online Boutique fault cases (needs ../shared/datasets/nezha-ob, scripts/eval_nezha.py) and the simulator's scenario suite (cmd/simeval); and, as a check that a change generalizes, the holdout suite (40 scenarios from the same generator with other targets, magnitudes and seeds, scripts/holdout_suite.py, cached in ~/.cache/causeway/holdout-suite, ~2 GB). Tables in bin/eval-*; the output ends with the Nezha latency faults' and the holdout suite's lines, then one line per data set in score.py's format: AC@1=.. AC@3=.. Avg@5=.. detected=n/m median_delay_s=.. false_per_hour=..
NEZHA    ?= ../shared/datasets/nezha-ob
EVAL_DIR ?= ../shared/eval
EVAL_LINES = awk -F'\t' '{ printf "%-49s %s\n", $$1 ":", $$2 }'
eval: build
	@rm -f $(BIN)/eval-*.summary
	@echo "== development suite ($(EVAL_DIR)) =="
	EVAL_DIR=$(EVAL_DIR) SUMMARY=$(BIN)/eval-dev.summary scripts/eval_dev.sh $(BIN)/detector
	@echo "== holdout suite (scripts/holdout_suite.py) =="
	SUITE_KIND=holdout EVAL_DIR=$(EVAL_DIR) SUMMARY=$(BIN)/eval-holdout.summary scripts/eval_dev.sh $(BIN)/detector
	@echo "== Nezha Online Boutique ($(NEZHA)) =="
	python3 scripts/eval_nezha.py --detector $(BIN)/detector --dataset $(NEZHA) \
		--summary $(BIN)/eval-nezha.summary --latency-summary $(BIN)/eval-nezha-latency.summary
	@echo "== simulator suite (cmd/simeval) =="
	$(GO) run ./cmd/simeval -summary $(BIN)/eval-sim.summary
	@echo
	@$(EVAL_LINES) $(BIN)/eval-nezha-latency.summary $(BIN)/eval-holdout.summary
	@$(EVAL_LINES) $(BIN)/eval-dev.summary $(BIN)/eval-nezha.summary $(BIN)/eval-sim.summary

## replay-nezha: the fault-free Online Boutique minute through the pipeline
replay-nezha: build
	$(BIN)/detector replay --input ../shared/datasets/nezha-ob/normal-2022-08-23.jsonl.gz --out /tmp/causeway-nezha-graph.json

clean:
	rm -rf $(BIN)
