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
# By default every process shares the machine's CPUs (shared-CPU mode): the
# cross row pays for nats-server and two more nodes out of the CPU that the
# single row gives to A alone. NODE_CPU=X (e.g. 0.3) emulates nodes on
# machines of equal size instead: nats-server and each node are started
# inside a cgroup of their own made by this script, limited to X CPUs (cgroup
# v1 cpu.cfs_quota_us / cpu.cfs_period_us, or v2 cpu.max, with a period of
# NODE_CPU_PERIOD_US, default 10000 µs, so that a node that used its quota
# waits at most one short period, as a slower machine would not wait at all);
# quiccli, the load generator, stays unrestricted. The report then also
# gives, per run, the share of its quota each process used and the CPUs
# quiccli used. Needs root (or a delegated cgroup); without a writable cpu
# controller the mode says so and exits non-zero. The script removes the
# cgroups it made on exit. Go sees the limit at start, but rounds it up to
# at least 2 for GOMAXPROCS, so on a 2-CPU machine GOMAXPROCS stays 2.
#
# nats-server is the one on PATH if there is one; otherwise it is built from
# the Go module proxy in a throwaway module in a temporary directory (as
# scripts/cluster.sh does), never added to this repository's go.mod.
#
# Usage: scripts/bench-cluster.sh [-o FILE]   (the table also goes to FILE)
# Environment: ITERATIONS (default 3), DURATION (default 5s), RATE (default
# 20000), NATS_SERVER_VERSION (default v2.15.2), NODE_CPU (default empty:
# shared CPU), NODE_CPU_PERIOD_US (default 10000). Needs Go, jq and the usual
# shell tools; every step is bounded by `timeout`. It stops only the
# processes it started, by PID, on exit.
set -euo pipefail

ITERATIONS=${ITERATIONS:-3}
DURATION=${DURATION:-5s}
RATE=${RATE:-20000}
NATS_SERVER_VERSION=${NATS_SERVER_VERSION:-v2.15.2}
NODE_CPU=${NODE_CPU:-}
NODE_CPU_PERIOD_US=${NODE_CPU_PERIOD_US:-10000}
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
cgroups=() # the cgroup directories this script made, removed on exit
cleanup() {
  local p g
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  for g in "${cgroups[@]}"; do
    rmdir "$g" 2>/dev/null || log "could not remove cgroup $g"
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- CPU quota

# cgroup_parent: prints "v1 DIR" or "v2 DIR": the cgroup of this shell in
# the hierarchy that has the cpu controller (v1), or in the unified
# hierarchy if it enables the cpu controller for its children (cpu in its
# cgroup.subtree_control; this script does not change that); nothing if
# neither.
cgroup_parent() {
  local line root mnt rel
  # /proc/self/mountinfo: field 4 the mount's root, 5 its mount point, and
  # after "-" the file system type, source and super options.
  line=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break
    if ($(i + 1) == "cgroup" && ("," $(i + 3) ",") ~ /,cpu,/) { print $4, $5; exit } }' /proc/self/mountinfo)
  if [[ -n $line ]]; then
    read -r root mnt <<<"$line"
    rel=$(awk -F: '("," $2 ",") ~ /,cpu,/ { print $3; exit }' /proc/self/cgroup)
    rel=${rel#"${root%/}"}
    echo "v1 $mnt${rel%/}"
    return
  fi
  line=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break
    if ($(i + 1) == "cgroup2") { print $4, $5; exit } }' /proc/self/mountinfo)
  [[ -n $line ]] || return 0
  read -r root mnt <<<"$line"
  rel=$(awk -F: '$1 == "0" { print $3; exit }' /proc/self/cgroup)
  rel=${rel#"${root%/}"}
  if grep -qw cpu "$mnt${rel%/}/cgroup.subtree_control" 2>/dev/null; then
    echo "v2 $mnt${rel%/}"
  fi
}

# cgroup_make NAME: makes the cgroup NAME under the parent with the quota,
# and records its directory in cg_dirs[NAME] (and in cgroups, for removal).
cgroup_make() {
  local dir=$cg_parent/quicmsg-bench-cluster-$$-$1
  mkdir "$dir" || return 1
  cgroups+=("$dir")
  cg_dirs[$1]=$dir
  if [[ $cg_version == v1 ]]; then
    echo "$NODE_CPU_PERIOD_US" >"$dir/cpu.cfs_period_us" && echo "$cg_quota" >"$dir/cpu.cfs_quota_us"
  else
    echo "$cg_quota $NODE_CPU_PERIOD_US" >"$dir/cpu.max"
  fi
}

# in_cgroup NAME CMD [ARGS...]: runs CMD inside the new cgroup NAME (in
# quota mode; as it is otherwise), so that CMD and everything it starts are
# limited from its first instruction, and Go reads the limit at start.
in_cgroup() {
  local name=$1
  shift
  if [[ -z $NODE_CPU ]]; then
    exec "$@"
  fi
  # shellcheck disable=SC2016 # $$ and $1 are the inner shell's.
  exec sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "${cg_dirs[$name]}" "$@"
}

declare -A cg_dirs=()
cg_version='' cg_parent='' cg_quota=''
if [[ -n $NODE_CPU ]]; then
  [[ $NODE_CPU =~ ^[0-9]*\.?[0-9]+$ && $NODE_CPU_PERIOD_US =~ ^[0-9]+$ ]] ||
    die "NODE_CPU must be a number of CPUs (e.g. 0.3) and NODE_CPU_PERIOD_US a whole number of µs"
  cg_quota=$(awk -v c="$NODE_CPU" -v p="$NODE_CPU_PERIOD_US" 'BEGIN { printf "%d", c * p + 0.5 }')
  ((NODE_CPU_PERIOD_US >= 1000 && NODE_CPU_PERIOD_US <= 1000000)) ||
    die "NODE_CPU_PERIOD_US=$NODE_CPU_PERIOD_US: the kernel takes a period of 1000 to 1000000 µs"
  ((cg_quota >= 1000)) ||
    die "NODE_CPU=$NODE_CPU is $cg_quota µs per $NODE_CPU_PERIOD_US µs period: the kernel takes a quota of at least 1000 µs"
  read -r cg_version cg_parent <<<"$(cgroup_parent)"
  [[ -n $cg_parent ]] ||
    die "NODE_CPU=$NODE_CPU: no cgroup cpu controller found (neither a v1 hierarchy with cpu nor cpu in the v2 cgroup.subtree_control of this shell's cgroup); run without NODE_CPU"
  for g in nats node1 node2 node3; do
    cgroup_make "$g" ||
      die "NODE_CPU=$NODE_CPU: cannot make a cgroup with a CPU quota under $cg_parent ($cg_version; needs root or a delegated cgroup); run without NODE_CPU"
  done
  log "CPU quota: $NODE_CPU CPU ($cg_quota µs per $NODE_CPU_PERIOD_US µs) for nats-server and each node, cgroup $cg_version under $cg_parent"
fi

# ---------------------------------------------------------------- build

log "building quicsrv and quiccli"
(cd "$root" && timeout 300 go build -o "$bin/" ./cmd/quicsrv ./cmd/quiccli) || die "go build failed"

# shellcheck source=lib/nats.sh
. "$root/scripts/lib/nats.sh"
nats=$(nats_server "$bin" "$work") || exit 1 # nats_server has said why

# ---------------------------------------------------------------- cluster


in_cgroup nats "$nats" -a 127.0.0.1 -p -1 >"$work/nats.log" 2>&1 &
pids+=($!)
nats_url=nats://$(wait_line "$work/nats.log" 'Listening for client connections on ' "${pids[-1]}" | grep -oE '[0-9.]+:[0-9]+$')
log "nats-server on $nats_url (pid ${pids[-1]})"

addrs=()
for n in 1 2 3; do
  # One at a time: the first start writes the development certificates
  # that the others reuse.
  in_cgroup "node$n" "$bin/quicsrv" -addr 127.0.0.1:0 -mode relay -cluster "$nats_url" -server-id "0$n" \
    -dev-certs "$work/dev-certs" >"$work/node$n.out" 2>"$work/node$n.log" &
  pids+=($!)
  addrs+=("$(wait_line "$work/node$n.out" '^quicsrv listening on ' "${pids[-1]}" | awk '{print $4}')")
  log "node $n: ${addrs[-1]} (pid ${pids[-1]})"
done
ca=$work/dev-certs/ca.pem

# ticks PID: the CPU time (user + system, clock ticks) PID has used.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# bench NAME [ARGS...]: quiccli -json bench from node A; the result goes to
# results/NAME.json, the CPU seconds that nats-server, nodes A, B, C
# and quiccli used during it to results/NAME.cpu, on one line, and the
# wall-clock seconds it took to results/NAME.wall.
bench() {
  local name=$1 p i before=() after=() hz start
  shift
  hz=$(getconf CLK_TCK)
  start=$(date +%s.%N)
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
  awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }' >"$results/$name.wall"
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

# quota_row RUN: the wall-clock seconds of RUN, the share of its quota
# (CPU seconds over quota x wall seconds) that nats-server and each node
# used, and the CPUs quiccli used (CPU over wall seconds); medians.
quota_row() {
  local col cols=() i
  cols+=("$(for i in $(seq "$ITERATIONS"); do cat "$results/$1.$i.wall"; done | median)")
  for col in 1 2 3 4; do
    cols+=("$(for i in $(seq "$ITERATIONS"); do
      awk -v w="$(cat "$results/$1.$i.wall")" -v q="$NODE_CPU" -v f="$col" '{ printf "%.0f\n", 100 * $f / (q * w) }' "$results/$1.$i.cpu"
    done | median) %")
  done
  cols+=("$(for i in $(seq "$ITERATIONS"); do
    awk -v w="$(cat "$results/$1.$i.wall")" '{ printf "%.2f\n", $5 / w }' "$results/$1.$i.cpu"
  done | median)")
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "${cols[@]}"
}

# quota_max: the largest share of its quota any limited process used in any
# run, in per cent, and the run and process.
quota_max() {
  local f
  for f in "$results"/*.cpu; do
    awk -v w="$(cat "${f%.cpu}.wall")" -v q="$NODE_CPU" -v run="$(basename "$f" .cpu)" '{
      split("nats-server node-A node-B node-C", name, " ")
      for (i = 1; i <= 4; i++) printf "%.1f %s %s\n", 100 * $i / (q * w), run, name[i] }' "$f"
  done | sort -g | tail -1
}

{
  echo "Command: ${NODE_CPU:+NODE_CPU=$NODE_CPU NODE_CPU_PERIOD_US=$NODE_CPU_PERIOD_US }ITERATIONS=$ITERATIONS DURATION=$DURATION RATE=$RATE scripts/bench-cluster.sh"
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r), $(go version | awk '{print $3, $4}'); load average $load_before before, $load_after after."
  echo "nats-server $("$nats" --version 2>/dev/null | awk '{print $NF}'), three quicsrv -mode relay -cluster nodes, all on 127.0.0.1; 1 publisher on A, $SUBSCRIBERS subscriber connections, $SIZE B, $DURATION per run;"
  echo "single: all on A; cross: subscribers on B and C (5 each). Median of $ITERATIONS iterations [min–max], single and cross alternating."
  if [[ -n $NODE_CPU ]]; then
    echo "CPU: nodes on machines of equal size, emulated: nats-server and each node in a cgroup ($cg_version) of its own limited to **$NODE_CPU CPU** ($cg_quota µs per $NODE_CPU_PERIOD_US µs period); quiccli unrestricted."
  else
    echo "CPU: shared: all five processes on the machine's $(nproc) CPUs, no quota."
  fi
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
  if [[ -n $NODE_CPU ]]; then
    echo
    echo "Share of its $NODE_CPU CPU quota each process used per run (CPU seconds / ($NODE_CPU × wall seconds); the wall time includes connecting and the drain), and the CPUs quiccli used (CPU / wall seconds); medians of $ITERATIONS:"
    echo
    echo "| run | wall s | nats-server | node A | node B | node C | quiccli CPUs |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for run in single-max cross-max single-rate cross-rate; do
      quota_row "$run"
    done
    echo
    read -r qmax qrun qproc <<<"$(quota_max)"
    awk -v m="$qmax" -v r="$qrun" -v p="$qproc" 'BEGIN { printf "Largest share of the quota in any run: %.1f %% (%s, %s): %s.\n", m, p, r, (m <= 102 ? "every limited process stayed within its quota" : "over the quota: the limit did not hold") }'
  fi
} | tee "${out_file:-/dev/null}"
