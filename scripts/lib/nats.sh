# Shell functions shared by scripts/cluster.sh and scripts/bench-cluster.sh.
# Source it after defining log and die; NATS_SERVER_VERSION names the
# nats-server version to build when none is on PATH.

# nats_server OUT WORK: prints the path of a nats-server: the one on PATH,
# or one built from the Go module proxy in a throwaway module under WORK and
# written to OUT/nats-server.
nats_server() {
  local out=$1 work=$2 found
  found=$(command -v nats-server || true)
  if [[ -n $found ]]; then
    echo "$found"
    return
  fi
  log "building nats-server $NATS_SERVER_VERSION from the Go module proxy in a throwaway module"
  mkdir -p "$work/nats"
  printf 'module natsserver\n\ngo 1.26.0\n' >"$work/nats/go.mod"
  if ! (
    cd "$work/nats"
    export GOFLAGS=-mod=mod GOWORK=off
    timeout 300 go get "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION" &&
      timeout 300 go build -o "$out/nats-server" github.com/nats-io/nats-server/v2
  ) >"$work/nats-build.log" 2>&1; then
    tail -20 "$work/nats-build.log" >&2
    die "building nats-server failed (log above); put a nats-server on PATH instead"
  fi
  echo "$out/nats-server"
}

# wait_line FILE REGEX PID: waits up to 10 s until FILE has a line matching
# REGEX while PID runs, and prints that line.
wait_line() {
  local i
  for i in $(seq 100); do
    if grep -m1 -E "$2" "$1" 2>/dev/null; then
      return 0
    fi
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$1" >&2
  die "no line matching '$2' in $1"
}
