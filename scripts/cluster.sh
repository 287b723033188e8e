#!/usr/bin/env bash
# cluster.sh: a local quicsrv cluster to try (make cluster): one nats-server
# on 127.0.0.1:4222 and three quicsrv nodes in relay mode joined to it with
# -cluster, on 127.0.0.1:4433, 4434 and 4435 (server IDs 01, 02, 03; metrics
# and /healthz on 127.0.0.1:9464, 9465 and 9466). It prints how to try it
# with quiccli and runs until Ctrl-C (or SIGTERM), which stops the processes
# it started, by their PIDs.
#
# nats-server is the one on PATH if there is one; otherwise it is built from
# the Go module proxy in a throwaway module in a temporary directory (as
# scripts/bench-cli.sh does), never added to this repository's go.mod.
# The nodes share the development certificates in .quicmsg/dev-certs, which
# quiccli trusts by default. Logs go to a temporary directory (printed).
#
# Expects bin/quicsrv and bin/quiccli (make cluster builds them).
# Environment: NATS_SERVER_VERSION (default v2.15.2), NATS_PORT (4222),
# SRVFLAGS (extra quicsrv flags, e.g. "-log-level debug").
set -euo pipefail

NATS_SERVER_VERSION=${NATS_SERVER_VERSION:-v2.15.2}
NATS_PORT=${NATS_PORT:-4222}
SRVFLAGS=${SRVFLAGS:-}
NODES=(4433 4434 4435)
METRICS=(9464 9465 9466)

cd "$(dirname "$0")/.."
log() { echo "cluster.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}
[[ -x bin/quicsrv && -x bin/quiccli ]] || die "bin/quicsrv and bin/quiccli are missing: run make cluster (or make build)"

work=$(mktemp -d "${TMPDIR:-/tmp}/quicmsg-cluster.XXXXXX")
pids=()
stop() {
  trap - INT TERM EXIT
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  log "stopped; logs in $work"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=lib/nats.sh
. "$(dirname "$0")/lib/nats.sh"
nats=$(nats_server "$work" "$work") || exit 1 # nats_server has said why

"$nats" -a 127.0.0.1 -p "$NATS_PORT" >"$work/nats.log" 2>&1 &
pids+=($!)
wait_line "$work/nats.log" "Server is ready" "${pids[-1]}" >/dev/null
log "nats-server $("$nats" --version 2>/dev/null || true) on 127.0.0.1:$NATS_PORT (pid ${pids[-1]})"

for i in "${!NODES[@]}"; do
  # shellcheck disable=SC2086 # SRVFLAGS is a list of flags
  ./bin/quicsrv -addr "127.0.0.1:${NODES[$i]}" -cluster "nats://127.0.0.1:$NATS_PORT" \
    -server-id "0$((i + 1))" -metrics "127.0.0.1:${METRICS[$i]}" $SRVFLAGS \
    >"$work/node$((i + 1)).out" 2>"$work/node$((i + 1)).log" &
  pids+=($!)
  # One at a time: the first start writes the development certificates
  # that the others reuse.
  wait_line "$work/node$((i + 1)).out" "^quicsrv listening on" "${pids[-1]}" >/dev/null
  log "node $((i + 1)): 127.0.0.1:${NODES[$i]}, server ID 0$((i + 1)), metrics http://127.0.0.1:${METRICS[$i]}/metrics (pid ${pids[-1]})"
done

cat <<EOF

A cluster of three quicsrv nodes is running (logs in $work).
Try it, each in its own terminal:

  ./bin/quiccli -addr 127.0.0.1:4434 listen chat 'orders.>'
  ./bin/quiccli -addr 127.0.0.1:4435 listen chat
  ./bin/quiccli -addr 127.0.0.1:4433 send chat 'hello from node 1'
  ./bin/quiccli -addr 127.0.0.1:4435 send orders.eu.new 'an order'

  ./bin/quiccli -addr 127.0.0.1:4434 reply time.now "\$(date)"
  ./bin/quiccli -addr 127.0.0.1:4433 req time.now

  curl -s http://127.0.0.1:9464/healthz
  curl -s http://127.0.0.1:9464/metrics | grep quicmsg_cluster_

quiccli send sends each argument as one message; it trusts
.quicmsg/dev-certs/ca.pem by default. Ctrl-C stops the cluster.
EOF

# Runs until Ctrl-C, or until one of the processes ends.
wait -n "${pids[@]}" || true
log "a process of the cluster ended; stopping the others"
