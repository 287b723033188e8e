#!/usr/bin/env bash
# scale.sh: starts a quicsrv in echo mode on an ephemeral port of 127.0.0.1,
# runs bin/quicscale against it from another process, prints its figures and
# stops the server by its PID.
#
#   scripts/scale.sh hold N        hold N sessions (make scale N=...)
#   scripts/scale.sh handshake     set-up rate against quicsrv and a raw
#                                  quic-go server (quicscale -mode serve-raw),
#                                  in the same run (make handshake)
#
# Expects bin/quicsrv and bin/quicscale (the make targets build them). Extra
# quicscale flags come from SCALEFLAGS, extra quicsrv flags from SRVFLAGS
# (default: -log-level warn, so that two log lines per session are not part
# of the figures). Every step is bounded by `timeout`. Run heavy sizes under
# the shared lock: flock /tmp/quicmsg-bench.lock make scale N=10000.
#
# With DUMP=FILE (hold mode), the server is ended with SIGQUIT during a 30 s
# hold, once quicscale has printed the figures of the set-up: the Go runtime
# writes every goroutine's stack into FILE, and a count of the server's
# goroutines by the function they wait in is printed. The check after the
# hold then fails, as it must without a server.
set -euo pipefail

mode=${1:-hold}
n=${2:-1000}
SRVFLAGS=${SRVFLAGS:--log-level warn}
SCALEFLAGS=${SCALEFLAGS:-}
DUMP=${DUMP:-}
dir=$(mktemp -d)
pids=()
cleanup() {
	status=$?
	if [ "$status" -ne 0 ]; then
		echo "scale.sh: failed ($status); the last lines quicsrv logged:" >&2
		tail -20 "$dir/srv.err" >&2
		if [ -n "${metrics:-}" ]; then
			echo "scale.sh: quicsrv's quicmsg_ figures that are not 0:" >&2
			curl -s --max-time 5 "$metrics" | grep '^quicmsg_' | grep -v ' 0$' >&2 || true
		fi
	fi
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$dir"
}
trap cleanup EXIT

# waitline FILE REGEX [SECONDS]: waits up to SECONDS (default 20) for a
# line of FILE matching REGEX and prints it.
waitline() {
	for _ in $(seq $((${3:-20} * 10))); do
		if grep -Eq "$2" "$1"; then
			grep -E -m1 "$2" "$1"
			return 0
		fi
		sleep 0.1
	done
	echo "scale.sh: no line matching '$2' in $1:" >&2
	cat "$1" >&2
	return 1
}

# Room for the sessions and for the ones quicscale warms up with.
# shellcheck disable=SC2086
bin/quicsrv -addr 127.0.0.1:0 -mode echo -metrics 127.0.0.1:0 -dev-certs "$dir/certs" \
	-max-sessions $((n + 100)) $SRVFLAGS >"$dir/srv.out" 2>"$dir/srv.err" &
srv=$!
pids+=("$srv")
addr=$(waitline "$dir/srv.out" '^quicsrv listening on' | awk '{print $4}')
metrics=$(waitline "$dir/srv.out" '^metrics: ' | awk '{print $2}')
echo "quicsrv (pid $srv) on $addr, echo mode, flags: -max-sessions $((n + 100)) $SRVFLAGS"

# dump sends SIGQUIT to the server while the sessions are held, once the
# figures of the set-up are out, and counts its goroutines by the function
# each waits in (the first frame outside the runtime and the standard
# library's sync, time and context packages).
dump() {
	waitline "$dir/scale.out" '^client ' 1800 >/dev/null
	kill -QUIT "$srv"
	wait "$srv" 2>/dev/null || true
	cp "$dir/srv.err" "$DUMP"
	echo "server goroutines by the function they wait in (from $DUMP):"
	awk '/^goroutine /{g=1; next} g && /^[a-z].*\(/ && !/^runtime\.|^internal\/|^sync\.|^syscall\.|^time\.|^context\./ {sub(/\([^()]*\)$/, ""); n[$0]++; g=0} END {for (f in n) printf "%8d  %s\n", n[f], f}' "$DUMP" | sort -rn | head -20
	echo "and by the function that started them:"
	grep '^created by' "$DUMP" | sed 's/ in goroutine.*//' | sort | uniq -c | sort -rn | head -20
}

case $mode in
hold)
	args=(-addr "$addr" -ca "$dir/certs/ca.pem" -server-pid "$srv" -metrics "$metrics" -n "$n")
	if [ -z "$DUMP" ]; then
		# shellcheck disable=SC2086
		timeout 30m bin/quicscale "${args[@]}" $SCALEFLAGS
		exit
	fi
	# shellcheck disable=SC2086
	timeout 30m bin/quicscale "${args[@]}" $SCALEFLAGS -hold 30s >"$dir/scale.out" 2>&1 &
	pids+=("$!")
	dump
	cat "$dir/scale.out"
	;;
handshake)
	bin/quicscale -mode serve-raw -addr 127.0.0.1:0 -cert "$dir/certs/server.pem" \
		-key "$dir/certs/server-key.pem" >"$dir/raw.out" 2>&1 &
	pids+=("$!")
	raw=$(waitline "$dir/raw.out" '^raw quic-go listening on' | awk '{print $5}')
	echo "raw quic-go server (pid ${pids[1]}) on $raw"
	# shellcheck disable=SC2086
	timeout 30m bin/quicscale -mode handshake -addr "$addr" -raw-addr "$raw" -server-pid "$srv" -raw-pid "${pids[1]}" \
		-ca "$dir/certs/ca.pem" $SCALEFLAGS
	;;
*)
	echo "usage: scripts/scale.sh hold N | handshake" >&2
	exit 2
	;;
esac
