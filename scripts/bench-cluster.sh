#!/usr/bin/env bash
# bench-cluster.sh: cross-node fan-out against the single-node relay, in the
# same run (issue 13). One nats-server and three quicsrv relay nodes (A, B, C)
# joined to it with -cluster, every process on 127.0.0.1 on a free port. Then,
# ITERATIONS times, alternating:
#
#   single: quiccli bench -subscribers 10 -size 64 against node A alone (the
#     publisher and the 10 subscriber connections on A);
#   cross:  the same with -subscriber-addrs B,C: the publisher on A, the 10
#     subscriber connections dialing B and C in turn (5 each);
#
# each at an unlimited rate (delivered msgs/s over all subscribers) and at
# -rate RATE (latency from Send to delivery, p50 and p99). It prints a
# Markdown table: median [min-max] of each figure, and cross / single; then
# the CPU time each process used during each run (from /proc/PID/stat, and
# quiccli's from the shell's `times`) and per delivered message.
#
# Node A is a cluster member in both: single-node runs pay whatever -cluster
# costs on the publishing node when no other node has interest.
#
# nats-server is the one on PATH if there is one; otherwise it is built from
# the Go module proxy in a throwaway module in a temporary directory (as
# scripts/cluster.sh does), never added to this repository's go.mod.
#
# Usage: scripts/bench-cluster.sh [-o FILE]   (the table also goes to FILE)
# Environment: ITERATIONS (default 3), DURATION (default 5s), RATE (default
# 20000), NATS_SERVER_VERSION (default v2.15.2). Needs Go, jq and the usual
# shell tools; every step is bounded by `timeout`. It stops only the
# processes it started, by PID, on exit.
set -euo pipefail

ITERATIONS=${ITERATIONS:-3}
DURATION=${DURATION:-5s}
RATE=${RATE:-20000}
NATS_SERVER_VERSION=${NATS_SERVER_VERSION:-v2.15.2}
SUBSCRIBERS=10
SIZE=64
# How long a client waits for deliveries after sending stopped.
DRAIN=2s

out_file=
while getopts "o:" opt; do
  case $opt in
    o) out_file=$OPTARG ;;
    *) echo "usage: $0 [-o FILE]" >&2; exit 2 ;;
  esac
done

log() { echo "bench-cluster: $*" >&2; }
die() {
  log "$*"
  exit 1
}
command -v jq >/dev/null || die "jq is needed to read quiccli's -json output"

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-cluster.XXXXXX")
bin=$work/bin
results=$work/results
mkdir -p "$bin" "$results"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- build

log "building quicsrv and quiccli"
(cd "$root" && timeout 300 go build -o "$bin/" ./cmd/quicsrv ./cmd/quiccli) || die "go build failed"

# shellcheck source=lib/nats.sh
. "$root/scripts/lib/nats.sh"
nats=$(nats_server "$bin" "$work") || exit 1 # nats_server has said why

# ---------------------------------------------------------------- cluster


"$nats" -a 127.0.0.1 -p -1 >"$work/nats.log" 2>&1 &
pids+=($!)
nats_url=nats://$(wait_line "$work/nats.log" 'Listening for client connections on ' "${pids[-1]}" | grep -oE '[0-9.]+:[0-9]+$')
log "nats-server on $nats_url (pid ${pids[-1]})"

addrs=()
for n in 1 2 3; do
  # One at a time: the first start writes the development certificates
  # that the others reuse.
  "$bin/quicsrv" -addr 127.0.0.1:0 -mode relay -cluster "$nats_url" -server-id "0$n" \
    -dev-certs "$work/dev-certs" >"$work/node$n.out" 2>"$work/node$n.log" &
  pids+=($!)
  addrs+=("$(wait_line "$work/node$n.out" '^quicsrv listening on ' "${pids[-1]}" | awk '{print $4}')")
  log "node $n: ${addrs[-1]} (pid ${pids[-1]})"
done
ca=$work/dev-certs/ca.pem

# ticks PID: the CPU time (user + system, clock ticks) PID has used.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# bench NAME [ARGS...]: quiccli -json bench from node A; the result goes to
# results/NAME.json, and the CPU seconds that nats-server, nodes A, B, C
# and quiccli used during it to results/NAME.cpu, on one line.
bench() {
  local name=$1 p i before=() after=() hz
  shift
  hz=$(getconf CLK_TCK)
  for p in "${pids[@]}"; do before+=("$(ticks "$p")"); done
  (
    timeout 120 "$bin/quiccli" -addr "${addrs[0]}" -ca "$ca" -timeout "$DRAIN" -json bench \
      -subscribers "$SUBSCRIBERS" -size "$SIZE" -duration "$DURATION" "$@" >"$results/$name.json"
    times >"$results/$name.times" # the second line: quiccli's user and system time
  )
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || die "a process of the cluster ended (pid $p); logs in $work"
    after+=("$(ticks "$p")")
  done
  {
    for i in "${!pids[@]}"; do awk -v a="${before[$i]}" -v b="${after[$i]}" -v hz="$hz" 'BEGIN { printf "%.2f ", (b - a) / hz }'; done
    tail -1 "$results/$name.times" | sed -E 's/([0-9]+)m([0-9.]+)s/\1 \2/g' | awk '{ printf "%.2f\n", $1 * 60 + $2 + $3 * 60 + $4 }'
  } >"$results/$name.cpu"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq "$ITERATIONS"); do
  log "iteration $i of $ITERATIONS"
  bench "single-max.$i"
  bench "cross-max.$i" -subscriber-addrs "${addrs[1]},${addrs[2]}"
  bench "single-rate.$i" -rate "$RATE"
  bench "cross-rate.$i" -subscriber-addrs "${addrs[1]},${addrs[2]}" -rate "$RATE"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report

# values NAME FILTER: the jq FILTER of every NAME.I.json, one a line.
values() {
  local i
  for i in $(seq "$ITERATIONS"); do
    jq -r "$2" "$results/$1.$i.json"
  done
}

# spread FORMAT: median [min-max] of the numbers on stdin.
spread() {
  sort -g | awk -v f="$1" '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf f " [" f "–" f "]", m, v[1], v[NR] }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# row LABEL FILTER FORMAT: single, cross and cross / single of the medians.
row() {
  local s c
  s=$(values "single-$4" "$2" | median)
  c=$(values "cross-$4" "$2" | median)
  printf '| %s | %s | %s | %s |\n' "$1" "$(values "single-$4" "$2" | spread "$3")" \
    "$(values "cross-$4" "$2" | spread "$3")" "$(awk -v s="$s" -v c="$c" 'BEGIN { if (s > 0) printf "**%.2f**", c / s; else print "–" }')"
}

# cpu_row RUN: the medians of RUN's CPU seconds per process, their sum,
# and the sum's median over the messages delivered.
cpu_row() {
  local col cols=() i all=() per=()
  for col in 1 2 3 4 5; do
    cols+=("$(for i in $(seq "$ITERATIONS"); do cut -d' ' -f"$col" "$results/$1.$i.cpu"; done | median)")
  done
  for i in $(seq "$ITERATIONS"); do
    all+=("$(awk '{ print $1 + $2 + $3 + $4 + $5 }' "$results/$1.$i.cpu")")
    per+=("$(awk -v c="${all[-1]}" -v d="$(jq -r .delivered "$results/$1.$i.json")" 'BEGIN { if (d > 0) printf "%.2f", c * 1e6 / d; else print 0 }')")
  done
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "${cols[@]}" \
    "$(printf '%s\n' "${all[@]}" | median)" "$(printf '%s\n' "${per[@]}" | median)"
}

{
  echo "Command: ITERATIONS=$ITERATIONS DURATION=$DURATION RATE=$RATE scripts/bench-cluster.sh"
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r), $(go version | awk '{print $3, $4}'); load average $load_before before, $load_after after."
  echo "nats-server $("$nats" --version 2>/dev/null | awk '{print $NF}'), three quicsrv -mode relay -cluster nodes, all on 127.0.0.1; 1 publisher on A, $SUBSCRIBERS subscriber connections, $SIZE B, $DURATION per run;"
  echo "single: all on A; cross: subscribers on B and C (5 each). Median of $ITERATIONS iterations [min–max], single and cross alternating."
  echo
  echo "| fan-out 1 → $SUBSCRIBERS, 64 B | single node (A) | cross-node (A → B, C) | cross / single |"
  echo "| --- | --- | --- | --- |"
  row "unlimited rate: delivered msgs/s (all subscribers)" .msgs_per_sec "%.0f" max
  row "unlimited rate: undelivered, messages" .undelivered "%.0f" max
  row "unlimited rate: latency p50 µs" .latency_us.p50 "%.0f" max
  row "unlimited rate: latency p99 µs" .latency_us.p99 "%.0f" max
  row "-rate $RATE: delivered msgs/s (all subscribers)" .msgs_per_sec "%.0f" rate
  row "-rate $RATE: undelivered, messages" .undelivered "%.0f" rate
  row "-rate $RATE: latency p50 µs" .latency_us.p50 "%.0f" rate
  row "-rate $RATE: latency p99 µs" .latency_us.p99 "%.0f" rate
  echo
  sp50=$(values single-rate .latency_us.p50 | median)
  cp50=$(values cross-rate .latency_us.p50 | median)
  sp99=$(values single-rate .latency_us.p99 | median)
  cp99=$(values cross-rate .latency_us.p99 | median)
  awk -v a="$sp50" -v b="$cp50" -v c="$sp99" -v d="$cp99" -v r="$RATE" \
    'BEGIN { printf "Added latency at -rate %s (cross − single, medians): p50 %+.0f µs, p99 %+.0f µs.\n", r, b - a, d - c }'
  s=$(values single-max .msgs_per_sec | median)
  c=$(values cross-max .msgs_per_sec | median)
  awk -v s="$s" -v c="$c" 'BEGIN { printf "Goal cross-node ≥ 0.8 × single node (unlimited rate): %.2f, %s.\n", c / s, (c >= 0.8 * s ? "met" : "not met") }'
  echo
  echo "CPU seconds per run (median of $ITERATIONS; user + system), and per delivered message:"
  echo
  echo "| run | nats-server | node A | node B | node C | quiccli | all | µs per delivered message |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  for run in single-max cross-max single-rate cross-rate; do
    cpu_row "$run"
  done
} | tee "${out_file:-/dev/null}"
