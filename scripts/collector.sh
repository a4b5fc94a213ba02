#!/usr/bin/env bash
# collector.sh: the OpenTelemetry Collector that feeds Causeway in tests.
#
#   scripts/collector.sh build    build otelcol-causeway (cached); prints its path last
#   scripts/collector.sh path     print the cached binary's path; fails if not built
#
# The Collector is assembled by the collector builder (ocb) from
# deploy/collector/builder-config.yaml: the OTLP receiver, the batch
# processor and the contrib kafka exporter. The builder is installed with
# `go install` and the components come from the Go module proxy, so the build
# needs nothing but Go and the proxy. The binary lands in
# $CAUSEWAY_CACHE/otelcol-causeway-$VERSION/otelcol-causeway and is reused
# until the manifest, the builder version or the Go version changes.
#
# Environment: CAUSEWAY_CACHE (default ~/.cache/causeway), GO (default go),
# COLLECTOR_MANIFEST (default deploy/collector/builder-config.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."

# The builder release; the manifest's v0 components must carry the same
# number (checked below), its v1 ones the matching stable number.
readonly OCB_VERSION=0.155.0
readonly DIST=otelcol-causeway

CACHE_ROOT=${CAUSEWAY_CACHE:-$HOME/.cache/causeway}
GO=${GO:-go}
MANIFEST=${COLLECTOR_MANIFEST:-deploy/collector/builder-config.yaml}
OUT=$CACHE_ROOT/$DIST-$OCB_VERSION
BIN=$OUT/$DIST
OCB=$CACHE_ROOT/tools/ocb-$OCB_VERSION/builder

log() { printf 'collector.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() {
	sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# go_env sets what every go command below runs with. Only the module proxy
# is reachable from the machines this runs on: drop a `direct` fallback, so
# a module the proxy refuses fails at once with the proxy's answer instead
# of an attempt to clone its repository. GOWORK=off keeps a developer's
# go.work out of the Collector's own module; GOTOOLCHAIN defaults to the Go
# in PATH (set it to take another toolchain from the proxy).
go_env() {
	local proxy
	proxy=$("$GO" env GOPROXY)
	proxy=${proxy//,direct/}
	proxy=${proxy//|direct/}
	if [[ -z $proxy || $proxy == direct || $proxy == off ]]; then
		proxy=https://proxy.golang.org
	fi
	export GOPROXY=$proxy
	export GOWORK=off
	export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
	# Module cache files writable, so a cache directory can be removed.
	export GOFLAGS="${GOFLAGS:+$GOFLAGS }-modcacherw"
}

# check_versions fails when a v0 component of the manifest is not at the
# builder's release: the builder would compile it against another core and
# stop with a version conflict after minutes of downloads.
check_versions() {
	local bad
	bad=$(grep -E '^[[:space:]]*-?[[:space:]]*gomod:' "$MANIFEST" |
		grep -E ' v0\.[0-9]+\.[0-9]+' | grep -v " v$OCB_VERSION\b" || true)
	[[ -z $bad ]] || die "$MANIFEST: components not at v$OCB_VERSION (the builder's release):
$bad"
}

install_builder() {
	if [[ -x $OCB ]]; then
		return 0
	fi
	log "installing the collector builder v$OCB_VERSION into $(dirname "$OCB")"
	mkdir -p "$(dirname "$OCB")"
	GOBIN=$(dirname "$OCB") "$GO" install "go.opentelemetry.io/collector/cmd/builder@v$OCB_VERSION" ||
		die "go install of the collector builder v$OCB_VERSION failed (see above)"
	[[ -x $OCB ]] || die "go install did not produce $OCB"
}

# stamp identifies a build: the manifest, the builder and the Go toolchain.
stamp() {
	{
		cat "$MANIFEST"
		printf 'ocb v%s\n' "$OCB_VERSION"
		"$GO" env GOVERSION
	} | sha256sum | cut -d' ' -f1
}

built() {
	[[ -x $BIN && -f $OUT/.stamp && $(cat "$OUT/.stamp") == "$1" ]]
}

cmd_build() {
	[[ $# -eq 0 ]] || usage
	[[ -f $MANIFEST ]] || die "no manifest at $MANIFEST"
	command -v "$GO" >/dev/null || die "Go ($GO) not found"
	check_versions
	go_env
	local want
	want=$(stamp)
	mkdir -p "$OUT"
	# One build at a time per cache; a second caller waits, then reuses it.
	exec 9>"$OUT/.lock"
	flock 9
	if built "$want"; then
		log "$DIST v$OCB_VERSION is up to date"
		printf '%s\n' "$BIN"
		return 0
	fi
	install_builder
	# Scratch directories of earlier failed builds were kept for their logs.
	rm -rf "$OUT"/build.*

	local work start
	work=$(mktemp -d "$OUT/build.XXXXXX")
	cp "$MANIFEST" "$work/builder-config.yaml"
	start=$SECONDS
	log "building $DIST v$OCB_VERSION from $MANIFEST in $work (GOPROXY=$GOPROXY; several minutes the first time)"
	# The manifest's output_path is relative: it resolves inside $work.
	if ! (cd "$work" && "$OCB" --config builder-config.yaml) >"$work/build.log" 2>&1; then
		tail -n 40 "$work/build.log" >&2
		die "the collector build failed; full log and sources in $work"
	fi
	local out
	out=$(find "$work" -type f -name "$DIST" -perm -u+x | head -n 1)
	[[ -n $out ]] || die "the builder succeeded but no $DIST binary is in $work (log: $work/build.log)"
	"$out" components >"$work/components.txt" 2>&1 ||
		die "the built $DIST does not run: $(head -n 5 "$work/components.txt")"
	local c
	for c in otlp batch kafka; do
		grep -Eq "^[[:space:]]*-?[[:space:]]*name: $c\$" "$work/components.txt" ||
			die "the built $DIST lacks the $c component (see $work/components.txt)"
	done
	mv -f "$out" "$BIN.tmp"
	mv -f "$BIN.tmp" "$BIN"
	printf '%s\n' "$want" >"$OUT/.stamp"
	rm -rf "$work"
	log "built $BIN in $((SECONDS - start))s"
	printf '%s\n' "$BIN"
}

cmd_path() {
	[[ $# -eq 0 ]] || usage
	[[ -x $BIN ]] || die "$DIST is not built: run scripts/collector.sh build"
	printf '%s\n' "$BIN"
}

main() {
	[[ $# -ge 1 ]] || usage
	local cmd=$1
	shift
	case $cmd in
	build) cmd_build "$@" ;;
	path) cmd_path "$@" ;;
	*) usage ;;
	esac
}

main "$@"
