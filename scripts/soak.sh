#!/usr/bin/env bash
# soak.sh: runs every soak test of the module and prints one table of the
# figures they measured.
#
# Soak tests live in files with the `soak` build tag and are named TestSoak...
# They run one package at a time (-p 1, so that no package's figures share
# the machine with another's), under the race detector, except those in
# files tagged `soak && !race` (rates and latencies the race detector would
# distort), which run in a second pass without it. The output of both passes goes to LOG, and
# scripts/soak-table.sh turns its FIGURE lines into a table. The exit status
# is non-zero if any test failed.
#
# Usage: scripts/soak.sh [LOG]   (default bin/soak.log)
# Environment: GO (default go), SOAKTIMEOUT (per pass, default 60m),
# SOAKRUN (test name pattern, default ^TestSoak).
set -uo pipefail

log=${1:-bin/soak.log}
go=${GO:-go}
timeout=${SOAKTIMEOUT:-60m}
run=${SOAKRUN:-^TestSoak}
cd "$(dirname "$0")/.."
mkdir -p "$(dirname "$log")"
: >"$log"

# Packages and names of the tests built only without the race detector.
norace_files=$(grep -rl --include='*_test.go' '^//go:build soak && !race$' . || true)
norace_pkgs=$(for f in $norace_files; do dirname "$f"; done | sort -u)
norace_tests=$(for f in $norace_files; do grep -o '^func TestSoak[A-Za-z0-9_]*' "$f" | cut -d' ' -f2; done |
	{ grep -E -- "$run" || true; } | paste -sd'|')

status=0
echo "== soak, race detector on: $run" | tee -a "$log"
$go test -race -p 1 -tags soak -count=1 -run "$run" -v -timeout "$timeout" ./... 2>&1 | tee -a "$log" || status=1
if [[ -n $norace_tests ]]; then
	echo "== soak, race detector off: ^($norace_tests)\$" | tee -a "$log"
	# shellcheck disable=SC2086 # one argument per package
	$go test -p 1 -tags soak -count=1 -run "^($norace_tests)\$" -v -timeout "$timeout" $norace_pkgs 2>&1 | tee -a "$log" || status=1
fi

echo
scripts/soak-table.sh "$log" || status=1
if [[ $status != 0 ]]; then
	echo "soak: a test failed, see $log" >&2
fi
exit $status
