#!/usr/bin/env bash
# bench-hol.sh: head-of-line blocking, measured. In two network namespaces
# joined by a veth pair, with random packet loss from nftables (a netdev
# ingress rule `numgen random mod 1000 < N drop` on each end, so each
# direction loses N per mille; this kernel has no netem), at each loss level:
# 64 B request/response round trips on one channel while 4 other channels of
# the same connection send 64 KiB messages continuously (p50, p99, p99.9 and
# the bulk rate), for
#   quicmsg-prio  the request/response channel at urgency 0 (PRIORITY option),
#                 the bulk channels at the default (3, incremental);
#   quicmsg       every channel at the default priority;
#   quicmsg-prio-win  as quicmsg-prio against a server whose receive windows
#                 (connection and channel) are capped at WINDOW bytes: less
#                 bulk data in flight ahead of a request;
#   yamux         hashicorp/yamux over TCP + TLS 1.3, the same load (built in a
#                 throwaway module in a temporary directory, never added to
#                 this repository's go.mod).
# Segmentation offloads (TSO, GSO, GRO) are turned off on the veth pair so
# that a drop loses one packet, for TCP and UDP alike, as on a real link
# (OFFLOADS=on keeps them: a drop then loses a whole TSO or GSO super-packet
# of up to 64 KiB, a burst of consecutive packets).
#
# Usage: scripts/bench-hol.sh [-o FILE.md] [-svg FILE.svg]   (run as root)
# Environment: LOSSES (per mille, default "0 5 10 20"), DURATION (each
# measurement, default 10s), WARMUP (default 2s), WINDOW (default 262144),
# OFFLOADS (off), YAMUX_VERSION, PROFILE_DIR (when set, CPU profiles of the quicmsg server on
# the default windows, for the whole run, and of each quicmsg-prio client go
# there).
# Installs nftables, iproute2 and ethtool with apt-get when missing. Removes
# the namespaces it created on exit.
set -euo pipefail

LOSSES=${LOSSES:-"0 5 10 20"}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
WINDOW=${WINDOW:-262144}
PROFILE_DIR=${PROFILE_DIR:-}
OFFLOADS=${OFFLOADS:-off}
YAMUX_VERSION=${YAMUX_VERSION:-v0.1.2}

out_file=
svg_file=
while [ $# -gt 0 ]; do
  case $1 in
    -o) out_file=$2; shift 2 ;;
    -svg) svg_file=$2; shift 2 ;;
    *) echo "usage: $0 [-o FILE.md] [-svg FILE.svg]" >&2; exit 2 ;;
  esac
done

log() { echo "bench-hol: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (ip netns, nft)"
missing=
command -v nft >/dev/null || missing="$missing nftables"
command -v ip >/dev/null || missing="$missing iproute2"
command -v ethtool >/dev/null || missing="$missing ethtool"
if [ -n "$missing" ]; then
  log "installing$missing"
  DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y $missing >&2 || die "apt-get install$missing failed"
fi
command -v openssl >/dev/null || die "needs openssl"

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-hol.XXXXXX")
tag=$$
ns_srv=qmhol${tag}s
ns_cli=qmhol${tag}c
if_srv=vh${tag}s
if_cli=vh${tag}c
srv_ip=10.213.0.1
cli_ip=10.213.0.2
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$ns_srv" 2>/dev/null || true
  ip netns del "$ns_cli" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- build

log "building holbench"
(cd "$root" && timeout 300 go build -o "$work/holbench" ./internal/cmd/holbench) || die "go build failed"
log "building the yamux baseline ($YAMUX_VERSION) in a throwaway module"
mkdir -p "$work/yamux"
cp "$root/internal/cmd/holbench/load.go" "$work/yamux/load.go"
cp "$root/scripts/holyamux/main.go.txt" "$work/yamux/main.go"
(cd "$work/yamux" && go mod init holyamux >/dev/null 2>&1 &&
  timeout 300 go get "github.com/hashicorp/yamux@$YAMUX_VERSION" >/dev/null 2>&1 &&
  timeout 300 go build -o "$work/holyamux" .) || die "building the yamux baseline failed"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=holbench -addext subjectAltName=DNS:holbench \
  -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1 || die "openssl failed"

# ---------------------------------------------------------------- network

log "namespaces $ns_srv and $ns_cli"
ip netns add "$ns_srv"
ip netns add "$ns_cli"
ip link add "$if_srv" netns "$ns_srv" type veth peer name "$if_cli" netns "$ns_cli"
ip -n "$ns_srv" addr add "$srv_ip/24" dev "$if_srv"
ip -n "$ns_cli" addr add "$cli_ip/24" dev "$if_cli"
for pair in "$ns_srv:$if_srv" "$ns_cli:$if_cli"; do
  ns=${pair%%:*}; dev=${pair#*:}
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$dev" up
  if [ "$OFFLOADS" = off ]; then
    ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 || log "ethtool -K $dev failed: offloads stay on"
  fi
done

# set_loss N: each end drops N per mille of the packets it receives.
set_loss() {
  for pair in "$ns_srv:$if_srv" "$ns_cli:$if_cli"; do
    ns=${pair%%:*}; dev=${pair#*:}
    ip netns exec "$ns" nft delete table netdev holloss 2>/dev/null || true
    [ "$1" = 0 ] && continue
    ip netns exec "$ns" nft -f - <<NFT
table netdev holloss {
  chain in {
    type filter hook ingress device "$dev" priority 0; policy accept;
    numgen random mod 1000 < $1 drop
  }
}
NFT
  done
}

# ---------------------------------------------------------------- measure

srv_prof=()
if [ -n "$PROFILE_DIR" ]; then
  mkdir -p "$PROFILE_DIR"
  PROFILE_DIR=$(cd "$PROFILE_DIR" && pwd)
  srv_prof=(-cpuprofile "$PROFILE_DIR/server.pprof")
  cp "$work/holbench" "$PROFILE_DIR/holbench"
fi
ip netns exec "$ns_srv" "$work/holbench" -mode server -addr "$srv_ip:4500" -certs "$work" "${srv_prof[@]}" &
pids+=($!)
ip netns exec "$ns_srv" "$work/holbench" -mode server -addr "$srv_ip:4502" -certs "$work" -window "$WINDOW" &
pids+=($!)
ip netns exec "$ns_srv" "$work/holyamux" -mode server -addr "$srv_ip:4501" -certs "$work" &
pids+=($!)
sleep 1

results=$work/results.jsonl
# run LOSS NAME CMD...: one measurement, its JSON line tagged with the loss.
run() {
  loss=$1; name=$2; shift 2
  log "loss $loss per mille: $name"
  line=$(timeout 120 ip netns exec "$ns_cli" "$@" -name "$name" -certs "$work" -warmup "$WARMUP" -dur "$DURATION") ||
    die "$name at $loss per mille failed"
  echo "${line%\}},\"loss_pct\":$(awk "BEGIN{print $loss/10}")}" >>"$results"
}
for loss in $LOSSES; do
  set_loss "$loss"
  prof=()
  [ -n "$PROFILE_DIR" ] && prof=(-cpuprofile "$PROFILE_DIR/client-prio-$loss.pprof")
  run "$loss" quicmsg-prio "$work/holbench" -addr "$srv_ip:4500" -prio "${prof[@]}"
  run "$loss" quicmsg "$work/holbench" -addr "$srv_ip:4500"
  run "$loss" quicmsg-prio-win "$work/holbench" -addr "$srv_ip:4502" -prio
  run "$loss" yamux "$work/holyamux" -addr "$srv_ip:4501"
done
set_loss 0

svg_arg=()
[ -n "$svg_file" ] && svg_arg=(-svg "$svg_file")
"$work/holbench" -mode report -in "$results" -baseline yamux "${svg_arg[@]}" | tee "${out_file:-/dev/null}"
