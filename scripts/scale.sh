#!/usr/bin/env bash
# scale.sh: starts a quicsrv in echo mode on an ephemeral port of 127.0.0.1,
# runs bin/quicscale against it from another process, prints its figures and
# stops the server by its PID.
#
#   scripts/scale.sh hold N        hold N sessions (make scale N=...)
#   scripts/scale.sh hold-raw N    hold N raw quic-go connections, each with
#                                  one stream that echoed 64 B, against a raw
#                                  quic-go echo server (quicscale -mode
#                                  serve-raw) instead of quicsrv, measured the
#                                  same way (make scale-raw N=...)
#   scripts/scale.sh handshake     set-up rate against quicsrv and a raw
#                                  quic-go server (quicscale -mode serve-raw),
#                                  in the same run (make handshake)
#
# Expects bin/quicsrv and bin/quicscale (the make targets build them). Extra
# quicscale flags come from SCALEFLAGS, extra quicsrv flags from SRVFLAGS
# (default: -log-level warn, so that two log lines per session are not part
# of the figures), extra flags of the raw server in hold-raw mode from
# RAWFLAGS (its -keep-alive and -idle-timeout mean what quicsrv's do), and
# environment variables for the server (either one; e.g. GOMEMLIMIT=600MiB
# or GOGC=50) from SRVENV, space-separated. Every step is bounded by `timeout`. Run heavy sizes under
# the shared lock: flock /tmp/quicmsg-bench.lock make scale N=10000.
#
# With DUMP=FILE (hold and hold-raw modes), the server is ended with SIGQUIT during a 30 s
# hold, once quicscale has printed the figures of the set-up: the Go runtime
# writes every goroutine's stack into FILE, and a count of the server's
# goroutines by the function they wait in is printed. The check after the
# hold then fails, as it must without a server.
#
# With SAMPLE=DIR (hold and hold-raw modes), the server runs with GODEBUG=gctrace=1 and its
# stderr (the GC trace) is kept as DIR/srv.err; every 2 s a line goes to
# DIR/samples.txt: the CPU of quicsrv and of quicscale (% of one core, from
# /proc/PID/stat), the datagrams per second that arrive for the server's port
# and that it sends (counters of an nftables table made for the run and
# deleted after it), the kernel's receive-buffer drops per second
# (/proc/net/snmp, the whole machine), the server socket's receive queue
# and drop count (ss -uamn), the server's goroutines (? when its metrics did
# not answer within 1 s) and the machine's load average.
set -euo pipefail

mode=${1:-hold}
n=${2:-1000}
SRVFLAGS=${SRVFLAGS:--log-level warn}
SCALEFLAGS=${SCALEFLAGS:-}
RAWFLAGS=${RAWFLAGS:-}
SRVENV=${SRVENV:-}
DUMP=${DUMP:-}
SAMPLE=${SAMPLE:-}
dir=$(mktemp -d)
pids=()
cleanup() {
	status=$?
	if [ "$status" -ne 0 ]; then
		echo "scale.sh: failed ($status); the last lines the server logged:" >&2
		tail -20 "$dir/srv.err" >&2
		if [ -n "${metrics:-}" ]; then
			echo "scale.sh: the server's quicmsg_ figures that are not 0:" >&2
			curl -s --max-time 5 "$metrics" | grep '^quicmsg_' | grep -v ' 0$' >&2 || true
		fi
	fi
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$SAMPLE" ]; then
		cp "$dir/srv.err" "$SAMPLE/srv.err"
		nft delete table inet "quicscale${addr##*:}" 2>/dev/null || true
	fi
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

# shellcheck disable=SC2206
srvenv=($SRVENV)
if [ -n "$SAMPLE" ]; then
	mkdir -p "$SAMPLE"
	srvenv+=(GODEBUG=gctrace=1)
fi
if [ "$mode" = hold-raw ]; then
	# The development certificates quicsrv makes, without running it.
	bin/quicsrv -dev-certs "$dir/certs" -dev-client-cert scale >/dev/null
	# shellcheck disable=SC2086
	env "${srvenv[@]}" bin/quicscale -mode serve-raw -addr 127.0.0.1:0 -metrics 127.0.0.1:0 -cert "$dir/certs/server.pem" \
		-key "$dir/certs/server-key.pem" $RAWFLAGS >"$dir/srv.out" 2>"$dir/srv.err" &
	srv=$!
	pids+=("$srv")
	addr=$(waitline "$dir/srv.out" '^raw quic-go listening on' | awk '{print $5}')
	metrics=$(waitline "$dir/srv.out" '^metrics: ' | awk '{print $2}')
	echo "raw quic-go echo server (pid $srv) on $addr, flags: $RAWFLAGS; environment: ${srvenv[*]}"
else
	# Room for the sessions and for the ones quicscale warms up with.
	# shellcheck disable=SC2086
	env "${srvenv[@]}" bin/quicsrv -addr 127.0.0.1:0 -mode echo -metrics 127.0.0.1:0 -dev-certs "$dir/certs" \
		-max-sessions $((n + 100)) $SRVFLAGS >"$dir/srv.out" 2>"$dir/srv.err" &
	srv=$!
	pids+=("$srv")
	addr=$(waitline "$dir/srv.out" '^quicsrv listening on' | awk '{print $4}')
	metrics=$(waitline "$dir/srv.out" '^metrics: ' | awk '{print $2}')
	echo "quicsrv (pid $srv) on $addr, echo mode, flags: -max-sessions $((n + 100)) $SRVFLAGS; environment: ${srvenv[*]}"
fi

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

# cputicks PID: user + system CPU time of PID in clock ticks (1/100 s).
cputicks() {
	awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# udpdrops: the kernel's RcvbufErrors.
udpdrops() {
	awk '/^Udp: [0-9]/ {print $6}' /proc/net/snmp
}

# countports: an nftables table counting the datagrams to and from the
# server's port; nftcount CHAIN prints a chain's count.
countports() {
	local t="quicscale${addr##*:}"
	nft add table inet "$t"
	nft add chain inet "$t" in '{ type filter hook input priority 0; policy accept; }'
	nft add chain inet "$t" out '{ type filter hook output priority 0; policy accept; }'
	nft add rule inet "$t" in udp dport "${addr##*:}" counter
	nft add rule inet "$t" out udp sport "${addr##*:}" counter
}
nftcount() {
	nft list chain inet "quicscale${addr##*:}" "$1" | awk '/counter packets/ {for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1)}'
}

# sample PID: one line every 2 s into $SAMPLE/samples.txt until the
# quicscale whose parent (timeout) is PID exits.
sample() {
	local port=${addr##*:} cli t0 s0 c0 in0 out0 err0 t1 s1 c1 in1 out1 err1 q g cs
	for _ in $(seq 50); do
		cli=$(cat "/proc/$1/task/$1/children" 2>/dev/null || true)
		[ -n "$cli" ] && break
		sleep 0.1
	done
	cli=${cli%% *}
	countports
	echo "# time srv_cpu% cli_cpu% srv_in/s srv_out/s rcvbuf_drops/s srv_recvq_bytes srv_sock_drops srv_goroutines loadavg" >"$SAMPLE/samples.txt"
	t0=$(date +%s%2N) s0=$(cputicks "$srv") c0=$(cputicks "$cli") in0=$(nftcount in) out0=$(nftcount out) err0=$(udpdrops)
	while kill -0 "$cli" 2>/dev/null; do
		sleep 2
		t1=$(date +%s%2N) s1=$(cputicks "$srv") c1=$(cputicks "$cli") in1=$(nftcount in) out1=$(nftcount out) err1=$(udpdrops)
		cs=$((t1 - t0)) # centiseconds, the unit of the CPU ticks
		q=$(timeout 2 ss -uamnH "sport = :$port" | awk '{getline m; match(m, /r[0-9]+/); r=substr(m, RSTART+1, RLENGTH-1); match(m, /d[0-9]+\)/); print r, substr(m, RSTART+1, RLENGTH-2); exit}' || true)
		g=$(curl -s --max-time 1 "$metrics" | awk '$1 == "go_goroutines" {print $2}' || true)
		echo "$(date +%T) $(((s1 - s0) * 100 / cs)) $(((c1 - c0) * 100 / cs)) $(((in1 - in0) * 100 / cs)) $(((out1 - out0) * 100 / cs)) $(((err1 - err0) * 100 / cs)) ${q:-? ?} ${g:-?} $(cut -d' ' -f1 /proc/loadavg)" >>"$SAMPLE/samples.txt"
		t0=$t1 s0=$s1 c0=$c1 in0=$in1 out0=$out1 err0=$err1
	done
}

case $mode in
hold | hold-raw)
	args=(-addr "$addr" -ca "$dir/certs/ca.pem" -server-pid "$srv" -metrics "$metrics" -n "$n")
	if [ "$mode" = hold-raw ]; then
		args+=(-raw)
	fi
	if [ -n "$SAMPLE" ]; then
		# shellcheck disable=SC2086
		timeout 30m bin/quicscale "${args[@]}" $SCALEFLAGS &
		cli=$!
		pids+=("$cli")
		sample "$cli" &
		pids+=("$!")
		wait "$cli"
		exit
	fi
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
	echo "usage: scripts/scale.sh hold N | hold-raw N | handshake" >&2
	exit 2
	;;
esac
