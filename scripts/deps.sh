#!/usr/bin/env bash
# deps.sh: the tools `make test` needs beyond Go, Node/npm and Java's JDK
# from the machine image, by the command that is looked for and the Debian
# package that provides it.
#
#   scripts/deps.sh check     name what is missing and the command that installs it (exit 1)
#   scripts/deps.sh install   install what is missing with apt-get (root, or sudo)
#
# .ci/run installs with it; `make test` checks with it first; `make deps`
# installs.
set -euo pipefail

# command -> Debian package that provides it
declare -A provides=(
	[kcat]=kcat
	[mvn]=maven
	[java]=openjdk-17-jre-headless
	[make]=make
	[setsid]=util-linux
	[sha256sum]=coreutils
	[openssl]=openssl
	[prometheus-alertmanager]=prometheus-alertmanager
	[chromium]=chromium
	[protoc]=protobuf-compiler
)
# what the tests use each for, to say why it is needed
declare -A why=(
	[kcat]="a real Kafka client in the integration tests"
	[mvn]="fetching Apache Kafka from Maven Central"
	[java]="running the Apache Kafka broker"
	[make]="the build"
	[setsid]="stopping the broker's process group"
	[sha256sum]="checking downloads"
	[openssl]="the TLS and SASL test certificates"
	[prometheus-alertmanager]="the Alertmanager receiver's integration test"
	[chromium]="rendering the Grafana panel in the plugin's screenshot test"
	[protoc]="checking that the committed fleet summary code matches its schema (make proto-check)"
)

missing=()
packages=()
for cmd in $(printf '%s\n' "${!provides[@]}" | sort); do
	if ! command -v "$cmd" >/dev/null; then
		missing+=("$cmd")
		packages+=("${provides[$cmd]}")
	fi
done
base_missing=()
for cmd in go npm; do
	command -v "$cmd" >/dev/null || base_missing+=("$cmd")
done

case "${1:-check}" in
check)
	status=0
	if ((${#base_missing[@]})); then
		echo "deps: not installed: ${base_missing[*]} (Go 1.26 and Node 20 with npm come with the machine image)" >&2
		status=1
	fi
	if ((${#missing[@]})); then
		for cmd in "${missing[@]}"; do
			echo "deps: $cmd is missing (Debian package ${provides[$cmd]}), needed for ${why[$cmd]}" >&2
		done
		echo "deps: install them with: make deps   (or: sudo apt-get install -y --no-install-recommends ${packages[*]})" >&2
		status=1
	fi
	exit $status
	;;
install)
	if ((${#missing[@]})); then
		sudo=""
		[[ $(id -u) -eq 0 ]] || sudo=sudo
		echo "deps: installing ${packages[*]}"
		export DEBIAN_FRONTEND=noninteractive
		$sudo apt-get update -q
		$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
	else
		echo "deps: all present: $(printf '%s ' "${!provides[@]}")"
	fi
	if ((${#base_missing[@]})); then
		echo "deps: not installed: ${base_missing[*]} (Go 1.26 and Node 20 with npm come with the machine image)" >&2
		exit 1
	fi
	;;
*)
	echo "usage: scripts/deps.sh check|install" >&2
	exit 2
	;;
esac
