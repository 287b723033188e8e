#!/usr/bin/env bash
# bench-cli.sh: `quiccli bench` against `quicsrv`, beside a baseline measured
# in the same run, back to back, with every server in its own process on
# 127.0.0.1 and a fresh server for every measurement.
#
#   one-way 64 B messages through the relay: delivered messages/s and what
#     was not delivered, at an unlimited rate and at the highest rate of a
#     ladder at which a calibration run delivered everything;
#   one-way 1 KiB messages through the relay at an unlimited rate;
#   echo round trips, 64 B, one message in flight: p50 and p99;
#   fan-out, 1 publisher -> 10 subscriber connections on one subject, 64 B:
#     delivered messages/s over all subscribers;
#   the ceiling of those three: the same topology through a raw quic-go
#     forwarder (internal/cmd/rawrelay, same TLS 1.3 and quic.Config, no
#     quicmsg layer), against NATS and against quicsrv;
#   a queue group of 4 subscriber connections: delivered messages/s, each
#     message to one member, duplicates checked;
#   request/reply through a responder connection with 1 and with 64 requests
#     in flight: round trips/s, p50 and p99.
#
# Baseline: NATS (nats-server and nats.go from the Go module proxy, built in a
# throwaway module in a temporary directory, never added to this repository's
# go.mod) doing the same: publish/subscribe at the same rates and sizes, to 10
# subscribers and to a queue group of 4, request-reply through a responder
# with 1 and 64 in flight, and the client's PING/PONG to the server. If NATS
# cannot be fetched or built, the raw quic-go benchmarks of ./transport run
# instead (in one process: not the same set-up; the table says so).
#
# Usage: scripts/bench-cli.sh [-o FILE]   (the Markdown table also goes to FILE)
# Environment: ITERATIONS (default 3), DURATION (each measurement, default 5s),
# CALIBRATION (each calibration run, default 3s), NATS_SERVER_VERSION,
# NATS_GO_VERSION; RELAY_ONLY=1 measures only the relay's throughput rows
# (one-way 64 B and 1 KiB, fan-out, and their raw quic-go ceiling) and skips the calibration; TREE builds
# quicsrv and quiccli from another checkout (default: this one; rawrelay always comes from this one), to compare
# trees in the same session of measurements; RELAY_FLAGS are added to quicsrv's flags in the relay rows
# (e.g. "-slow-consumer block"). Needs Go and the usual shell tools; every step is bounded
# by `timeout`.
set -euo pipefail

ITERATIONS=${ITERATIONS:-3}
DURATION=${DURATION:-5s}
CALIBRATION=${CALIBRATION:-3s}
NATS_SERVER_VERSION=${NATS_SERVER_VERSION:-v2.15.2}
NATS_GO_VERSION=${NATS_GO_VERSION:-v1.55.0}
RELAY_ONLY=${RELAY_ONLY:-}
RELAY_FLAGS=${RELAY_FLAGS:-}
SIZE=64
# The one-way measurement with larger messages.
BIG_SIZE=1024
# Fan-out subscribers, queue group members, requests in flight.
FANOUT=10
GROUP_SIZE=4
INFLIGHT=64
# quicsrv -subscriber-queue for one extra unlimited-rate measurement: the
# default is 65536; 1024 shows what a small queue does to bursts.
BIG_QUEUE=${BIG_QUEUE:-1024}
# How long a client waits for deliveries after sending stopped.
DRAIN=2s
# A run waits up to IDLE_WAIT seconds for a second in which the machine was
# at least IDLE_PCT % idle, and is marked busy if there was none.
IDLE_PCT=90
IDLE_WAIT=30

out_file=
while getopts "o:" opt; do
  case $opt in
    o) out_file=$OPTARG ;;
    *) echo "usage: $0 [-o FILE]" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
tree=$(cd "${TREE:-$root}" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-cli.XXXXXX")
bin=$work/bin
results=$work/results
mkdir -p "$bin" "$results"
# The server running now, if any: the only process the script leaves behind
# when it is interrupted.
srv_pid=

cleanup() {
  if [ -n "$srv_pid" ]; then
    kill -KILL "$srv_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

log() { echo "bench-cli: $*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- build

log "building quicsrv and quiccli"
(cd "$tree" && timeout 300 go build -o "$bin/" ./cmd/quicsrv ./cmd/quiccli) || die "go build failed"
# The ceiling of the relay rows, from this checkout whatever TREE says.
(cd "$root" && timeout 300 go build -o "$bin/" ./internal/cmd/rawrelay) || die "go build rawrelay failed"

# report: JSON fields, metrics, and the final table; standard library only.
mkdir -p "$work/report"
cat >"$work/report/go.mod" <<'EOF'
module benchreport

go 1.26.0
EOF
cat >"$work/report/main.go" <<'EOF'
// Command benchreport reads the results of bench-cli.sh.
//
//	benchreport field FILE PATH          a number from a JSON file (PATH: a.b.c)
//	benchreport metric URL NAME          an unlabelled sample from a Prometheus endpoint
//	benchreport table DIR RATE BASELINE  the Markdown table (BASELINE: nats or rawquic)
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: benchreport field|metric|table ...")
	}
	switch os.Args[1] {
	case "field":
		v, err := field(os.Args[2], os.Args[3])
		check(err)
		fmt.Println(strconv.FormatFloat(v, 'f', -1, 64))
	case "metric":
		v, err := metric(os.Args[2], os.Args[3])
		check(err)
		fmt.Println(strconv.FormatFloat(v, 'f', -1, 64))
	case "table":
		check(table(os.Stdout, os.Args[2], os.Args[3], os.Args[4]))
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(msg string) { fmt.Fprintln(os.Stderr, "benchreport:", msg); os.Exit(1) }

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func field(file, path string) (float64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return 0, fmt.Errorf("%s: no %s", file, path)
		}
		v = m[k]
	}
	f, ok := v.(float64)
	if !ok {
		return 0, fmt.Errorf("%s: %s is not a number", file, path)
	}
	return f, nil
}

func metric(url, name string) (float64, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no sample %s", url, name)
}

// series holds one figure per iteration.
type series []float64

func (s series) median() float64 {
	c := slices.Clone(s)
	slices.Sort(c)
	n := len(c)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

func (s series) spread(f func(float64) string) string {
	if len(s) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s [%s–%s]", f(s.median()), f(slices.Min(s)), f(slices.Max(s)))
}

// ratios returns the ratio of the medians and the range of the
// per-iteration ratios.
func ratios(a, b series) string {
	if len(a) == 0 || len(b) == 0 || b.median() == 0 {
		return "–"
	}
	var r series
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return fmt.Sprintf("**%.2f** [%.2f–%.2f]", a.median()/b.median(), slices.Min(r), slices.Max(r))
}

func rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0f k", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func count(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

func micros(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func pct(v float64) string { return fmt.Sprintf("%.1f %%", v) }

// load reads PATH of every DIR/NAME.I.json, in iteration order.
func load(dir, name, path string) series {
	files, _ := filepath.Glob(filepath.Join(dir, name+".*.json"))
	slices.SortFunc(files, func(a, b string) int { return iteration(a) - iteration(b) })
	var s series
	for _, f := range files {
		v, err := field(f, path)
		check(err)
		s = append(s, v)
	}
	return s
}

func iteration(file string) int {
	parts := strings.Split(filepath.Base(file), ".")
	n, _ := strconv.Atoi(parts[len(parts)-2])
	return n
}

// lossPct is undelivered as a percentage of sent, per iteration.
func lossPct(dir, name string) series { return lossPctOf(dir, name, "sent") }

// lossPctOf is undelivered as a percentage of the field base ("sent", or
// "expected": sent x subscribers in a fan-out), per iteration.
func lossPctOf(dir, name, base string) series {
	want, lost := load(dir, name, base), load(dir, name, "undelivered")
	var s series
	for i := range min(len(want), len(lost)) {
		s = append(s, 100*lost[i]/max(want[i], 1))
	}
	return s
}

func table(w io.Writer, dir, rateArg, baseline string) error {
	r, err := strconv.ParseFloat(rateArg, 64)
	if err != nil {
		return err
	}
	row := func(cells ...string) { fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | ")) }
	if baseline == "nats" {
		row("measurement (64 B)", "quicsrv + quiccli", "NATS", "quicmsg / NATS")
		row("---", "---", "---", "---")
		qMax, nMax := load(dir, "quic-oneway-max", "msgs_per_sec"), load(dir, "nats-pubsub-max", "msgs_per_sec")
		row("one-way, unlimited rate: delivered msgs/s", qMax.spread(rate), nMax.spread(rate), ratios(qMax, nMax))
		row("one-way, unlimited rate: undelivered, % of sent", lossPct(dir, "quic-oneway-max").spread(pct), lossPct(dir, "nats-pubsub-max").spread(pct), "")
		row("one-way, unlimited rate: dropped by the relay, messages", load(dir, "quic-oneway-max-drops", "dropped").spread(count), "–", "")
		q1k, n1k := load(dir, "quic-oneway-1k", "msgs_per_sec"), load(dir, "nats-pubsub-1k", "msgs_per_sec")
		row("one-way 1 KiB, unlimited rate: delivered msgs/s", q1k.spread(rate), n1k.spread(rate), ratios(q1k, n1k))
		row("one-way 1 KiB, unlimited rate: undelivered, % of sent", lossPct(dir, "quic-oneway-1k").spread(pct), lossPct(dir, "nats-pubsub-1k").spread(pct), "")
		row("one-way 1 KiB, unlimited rate: dropped by the relay, messages", load(dir, "quic-oneway-1k-drops", "dropped").spread(count), "–", "")
		big := "quicsrv -subscriber-queue " + os.Getenv("BIG_QUEUE")
		qBig := load(dir, "quic-oneway-bigq", "msgs_per_sec")
		row("one-way, unlimited rate, "+big+": delivered msgs/s", qBig.spread(rate), nMax.spread(rate), ratios(qBig, nMax))
		row("one-way, unlimited rate, "+big+": undelivered, % of sent", lossPct(dir, "quic-oneway-bigq").spread(pct), lossPct(dir, "nats-pubsub-max").spread(pct), "")
		row("one-way, unlimited rate, "+big+": dropped by the relay, messages", load(dir, "quic-oneway-bigq-drops", "dropped").spread(count), "–", "")
		qR, nR := load(dir, "quic-oneway-rate", "msgs_per_sec"), load(dir, "nats-pubsub-rate", "msgs_per_sec")
		row(fmt.Sprintf("one-way at -rate %s: delivered msgs/s", rate(r)), qR.spread(rate), nR.spread(rate), ratios(qR, nR))
		row(fmt.Sprintf("one-way at -rate %s: undelivered messages (of %s sent)", rate(r), load(dir, "quic-oneway-rate", "sent").spread(count)), load(dir, "quic-oneway-rate", "undelivered").spread(count), load(dir, "nats-pubsub-rate", "undelivered").spread(count), "")
		row(fmt.Sprintf("one-way at -rate %s: dropped by the relay, messages", rate(r)), load(dir, "quic-oneway-rate-drops", "dropped").spread(count), "–", "")
		qP50, nP50 := load(dir, "quic-echo", "latency_us.p50"), load(dir, "nats-reqrep", "p50_us")
		qP99, nP99 := load(dir, "quic-echo", "latency_us.p99"), load(dir, "nats-reqrep", "p99_us")
		row("RTT p50 µs: quicsrv echo / NATS request-reply", qP50.spread(micros), nP50.spread(micros), ratios(qP50, nP50))
		row("RTT p99 µs: quicsrv echo / NATS request-reply", qP99.spread(micros), nP99.spread(micros), ratios(qP99, nP99))
		pP50, pP99 := load(dir, "nats-ping", "p50_us"), load(dir, "nats-ping", "p99_us")
		row("RTT p50 µs: quicsrv echo / NATS PING-PONG", qP50.spread(micros), pP50.spread(micros), ratios(qP50, pP50))
		row("RTT p99 µs: quicsrv echo / NATS PING-PONG", qP99.spread(micros), pP99.spread(micros), ratios(qP99, pP99))
		row("round trips measured (echo / request-reply / PING-PONG)", load(dir, "quic-echo", "delivered").spread(count), load(dir, "nats-reqrep", "count").spread(count)+" / "+load(dir, "nats-ping", "count").spread(count), "")
		pubsubRows(row, dir, true)
		ceilingRows(row, dir)
		return nil
	}
	row("measurement (64 B)", "quicsrv + quiccli (separate processes)", "raw quic-go (one process, ./transport)", "quicmsg / raw")
	row("---", "---", "---", "---")
	qMax, rMax := load(dir, "quic-oneway-max", "msgs_per_sec"), load(dir, "rawquic-oneway", "msgs_per_sec")
	row("one-way, unlimited rate: delivered msgs/s", qMax.spread(rate), rMax.spread(rate), ratios(qMax, rMax))
	row("one-way, unlimited rate: undelivered, % of sent", lossPct(dir, "quic-oneway-max").spread(pct), "0 (no relay)", "")
	qBig := load(dir, "quic-oneway-bigq", "msgs_per_sec")
	row("one-way, unlimited rate, quicsrv -subscriber-queue "+os.Getenv("BIG_QUEUE")+": delivered msgs/s", qBig.spread(rate), rMax.spread(rate), ratios(qBig, rMax))
	row("one-way, unlimited rate, quicsrv -subscriber-queue "+os.Getenv("BIG_QUEUE")+": undelivered, % of sent", lossPct(dir, "quic-oneway-bigq").spread(pct), "0 (no relay)", "")
	qR := load(dir, "quic-oneway-rate", "msgs_per_sec")
	row(fmt.Sprintf("one-way at -rate %s: delivered msgs/s", rate(r)), qR.spread(rate), "–", "")
	qP50, rP50 := load(dir, "quic-echo", "latency_us.p50"), load(dir, "rawquic-rr", "p50_us")
	qP99, rP99 := load(dir, "quic-echo", "latency_us.p99"), load(dir, "rawquic-rr", "p99_us")
	row("RTT p50 µs", qP50.spread(micros), rP50.spread(micros), ratios(qP50, rP50))
	row("RTT p99 µs", qP99.spread(micros), rP99.spread(micros), ratios(qP99, rP99))
	pubsubRows(row, dir, false)
	return nil
}

// ceilingRows adds the raw quic-go forwarder's figures: against NATS (what
// QUIC allows), and quicsrv against it (what quicmsg costs on top).
func ceilingRows(row func(...string), dir string) {
	fanout := os.Getenv("FANOUT")
	for _, c := range []struct{ label, quic, raw, nats string }{
		{"one-way 64 B", "quic-oneway-max", "raw-oneway-max", "nats-pubsub-max"},
		{"one-way 1 KiB", "quic-oneway-1k", "raw-oneway-1k", "nats-pubsub-1k"},
		{"fan-out 1 → " + fanout + ", 64 B, over all subscribers", "quic-fanout", "raw-fanout", "nats-fanout"},
	} {
		q, r, n := load(dir, c.quic, "msgs_per_sec"), load(dir, c.raw, "msgs_per_sec"), load(dir, c.nats, "msgs_per_sec")
		row("ceiling, "+c.label+": raw quic-go forwarder / NATS, delivered msgs/s", r.spread(rate), n.spread(rate), ratios(r, n))
		row("ceiling, "+c.label+": raw quic-go forwarder, undelivered, % of sent (bench CPU s)", lossPctOf(dir, c.raw, "expected").spread(pct)+" ("+load(dir, c.raw, "client_cpu_seconds").spread(micros)+")", "", "")
		row("ceiling, "+c.label+": quicsrv / raw quic-go forwarder, delivered msgs/s", q.spread(rate), r.spread(rate), ratios(q, r))
	}
}

// pubsubRows adds fan-out, queue group and request/reply; without NATS its
// columns stay empty.
func pubsubRows(row func(...string), dir string, nats bool) {
	fanout, group, inflight := os.Getenv("FANOUT"), os.Getenv("GROUP_SIZE"), os.Getenv("INFLIGHT")
	nload := func(name, path string) series {
		if !nats {
			return nil
		}
		return load(dir, "nats-"+name, path)
	}
	rates := func(label, q, n string) {
		qs, ns := load(dir, q, "msgs_per_sec"), nload(n, "msgs_per_sec")
		row(label, qs.spread(rate), ns.spread(rate), ratios(qs, ns))
	}
	losses := func(label, q, n string) {
		var ns series
		if nats {
			ns = lossPctOf(dir, "nats-"+n, "expected")
		}
		row(label, lossPctOf(dir, q, "expected").spread(pct), ns.spread(pct), "")
	}
	rates("fan-out 1 → "+fanout+" subscribers, unlimited rate: delivered msgs/s over all subscribers", "quic-fanout", "fanout")
	losses("fan-out 1 → "+fanout+": undelivered, % of sent × "+fanout, "quic-fanout", "fanout")
	row("fan-out 1 → "+fanout+": dropped by the relay / by NATS (slow consumer), messages", load(dir, "quic-fanout-drops", "dropped").spread(count), nload("fanout", "dropped").spread(count), "")
	rates("queue group of "+group+", unlimited rate: delivered msgs/s", "quic-group", "group")
	losses("queue group of "+group+": undelivered, % of sent", "quic-group", "group")
	row("queue group of "+group+": messages delivered twice", load(dir, "quic-group", "duplicates").spread(count), nload("group", "duplicates").spread(count), "")
	for _, k := range []string{"1", inflight} {
		q, n := "quic-req"+k, "reqrep"
		if k != "1" {
			n += k
		}
		rates("request/reply, "+k+" in flight: round trips/s", q, n)
		qP50, nP50 := load(dir, q, "latency_us.p50"), nload(n, "p50_us")
		qP99, nP99 := load(dir, q, "latency_us.p99"), nload(n, "p99_us")
		row("request/reply, "+k+" in flight: RTT p50 µs", qP50.spread(micros), nP50.spread(micros), ratios(qP50, nP50))
		row("request/reply, "+k+" in flight: RTT p99 µs", qP99.spread(micros), nP99.spread(micros), ratios(qP99, nP99))
	}
}
EOF
(cd "$work/report" && GOFLAGS=-mod=mod GOWORK=off timeout 120 go build -o "$bin/benchreport" .) || die "building the report tool failed"
report() { "$bin/benchreport" "$@"; }

# natsbench and nats-server, in a throwaway module.
build_nats() {
  local dir=$work/nats
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<'EOF'
module natsbench

go 1.26.0
EOF
  cat >"$dir/main.go" <<'EOF'
// Command natsbench measures NATS the way quiccli bench measures quicsrv:
// publish/subscribe of fixed-size messages to -subs subscriber connections
// (fan-out, or with -group a queue group: each message to one of them;
// delivered messages/s over all subscribers from the first publish to the
// last delivery, and what was not delivered), and round trips
// (request-reply through a responder with -inflight requests in flight,
// and the client's PING/PONG to the server). It prints one JSON object.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/bits"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

type result struct {
	Mode        string  `json:"mode"`
	Size        int     `json:"size"`
	Rate        float64 `json:"rate"`
	Subscribers int     `json:"subscribers"`
	Group       string  `json:"group,omitempty"`
	Inflight    int     `json:"inflight,omitempty"`
	Seconds     float64 `json:"seconds"`
	Sent        uint64  `json:"sent"`
	Expected    uint64  `json:"expected"`
	Delivered   uint64  `json:"delivered"`
	Undelivered uint64  `json:"undelivered"`
	Duplicates  uint64  `json:"duplicates"`
	Dropped     int     `json:"dropped"` // slow-consumer drops counted by the subscribers
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	Count       int     `json:"count"`
	Errors      int64   `json:"errors"`
}

var asyncErrors atomic.Int64

func main() {
	url := flag.String("url", nats.DefaultURL, "server URL")
	mode := flag.String("mode", "pubsub", "pubsub, reqrep or ping")
	size := flag.Int("size", 64, "message size in bytes (at least 8 with -group: a sequence number)")
	dur := flag.Duration("duration", 5*time.Second, "how long to send")
	rate := flag.Float64("rate", 0, "messages per second; 0: as fast as possible")
	wait := flag.Duration("timeout", 2*time.Second, "how long to wait for deliveries after sending stopped")
	subs := flag.Int("subs", 1, "pubsub: subscriber connections")
	group := flag.String("group", "", "pubsub: the subscribers form this queue group")
	inflight := flag.Int("inflight", 1, "reqrep: requests in flight")
	flag.Parse()
	var r *result
	var err error
	switch *mode {
	case "pubsub":
		r, err = pubsub(*url, *size, *dur, *rate, *wait, *subs, *group)
	case "reqrep", "ping":
		r, err = roundTrips(*url, *mode, *size, *dur, *inflight)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsbench:", err)
		os.Exit(1)
	}
	r.Errors = asyncErrors.Load()
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func connect(url string) (*nats.Conn, error) {
	return nats.Connect(url, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) { asyncErrors.Add(1) }))
}

// subscriber is one subscribing connection.
type subscriber struct {
	nc   *nats.Conn
	sub  *nats.Subscription
	mu   sync.Mutex // guards seen and dups, written by the callback
	seen []uint64   // sequence numbers received, with -group
	dups uint64
}

func (s *subscriber) record(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := int(seq / 64)
	if w >= len(s.seen) {
		s.seen = append(s.seen, make([]uint64, max(w+1-len(s.seen), len(s.seen)))...)
	}
	if s.seen[w]&(1<<(seq%64)) != 0 {
		s.dups++
	}
	s.seen[w] |= 1 << (seq % 64)
}

// duplicates counts deliveries of a sequence number already delivered.
func duplicates(subs []*subscriber) uint64 {
	var union []uint64
	var dups uint64
	each := 0
	for _, s := range subs {
		s.mu.Lock()
		dups += s.dups
		if len(s.seen) > len(union) {
			union = append(union, make([]uint64, len(s.seen)-len(union))...)
		}
		for i, w := range s.seen {
			each += bits.OnesCount64(w)
			union[i] |= w
		}
		s.mu.Unlock()
	}
	for _, w := range union {
		each -= bits.OnesCount64(w)
	}
	return dups + uint64(each)
}

func subscribe(url string, n int, group string, delivered *atomic.Uint64, last *atomic.Int64) ([]*subscriber, error) {
	var subs []*subscriber
	for range n {
		nc, err := connect(url)
		if err != nil {
			return subs, err
		}
		s := &subscriber{nc: nc}
		subs = append(subs, s)
		cb := func(m *nats.Msg) {
			if group != "" && len(m.Data) >= 8 {
				s.record(binary.LittleEndian.Uint64(m.Data))
			}
			delivered.Add(1)
			last.Store(time.Now().UnixNano())
		}
		if group != "" {
			s.sub, err = nc.QueueSubscribe("bench", group, cb)
		} else {
			s.sub, err = nc.Subscribe("bench", cb)
		}
		if err != nil {
			return subs, err
		}
		if err := nc.Flush(); err != nil { // the server knows the subscription
			return subs, err
		}
	}
	return subs, nil
}

func pubsub(url string, size int, dur time.Duration, rate float64, wait time.Duration, n int, group string) (*result, error) {
	var delivered atomic.Uint64
	var last atomic.Int64
	subs, err := subscribe(url, n, group, &delivered, &last)
	defer func() {
		for _, s := range subs {
			s.nc.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	pub, err := connect(url)
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	payload := make([]byte, size)
	start := time.Now()
	end := start.Add(dur)
	var sent uint64
	for {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		if rate > 0 {
			// Message i is due at start + i/rate, as in quiccli bench.
			if d := start.Add(time.Duration(float64(sent) / rate * 1e9)).Sub(now); d > 0 {
				time.Sleep(d)
				continue
			}
		}
		if len(payload) >= 8 {
			binary.LittleEndian.PutUint64(payload, sent)
		}
		if err := pub.Publish("bench", payload); err != nil {
			return nil, err
		}
		sent++
	}
	if err := pub.Flush(); err != nil {
		return nil, err
	}
	expected := sent * uint64(n)
	if group != "" {
		expected = sent
	}
	deadline := time.Now().Add(wait)
	for delivered.Load() < expected && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r := &result{Mode: "pubsub", Size: size, Rate: rate, Subscribers: n, Group: group, Sent: sent, Expected: expected}
	for _, s := range subs {
		d, _ := s.sub.Dropped()
		r.Dropped += d
	}
	r.Delivered = delivered.Load()
	r.Duplicates = duplicates(subs)
	r.Undelivered = r.Expected - min(r.Expected, r.Delivered)
	if l := last.Load(); l > start.UnixNano() {
		r.Seconds = float64(l-start.UnixNano()) / 1e9
		r.MsgsPerSec = float64(r.Delivered) / r.Seconds
	}
	return r, nil
}

func roundTrips(url, mode string, size int, dur time.Duration, inflight int) (*result, error) {
	req, err := connect(url)
	if err != nil {
		return nil, err
	}
	defer req.Close()
	if mode == "reqrep" {
		resp, err := connect(url)
		if err != nil {
			return nil, err
		}
		defer resp.Close()
		if _, err := resp.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
			return nil, err
		}
		if err := resp.Flush(); err != nil {
			return nil, err
		}
	} else {
		inflight = 1
	}
	var mu sync.Mutex
	var rtts []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range inflight {
		wg.Go(func() {
			payload := make([]byte, size)
			var mine []time.Duration
			for time.Since(start) < dur {
				t0 := time.Now()
				var err error
				if mode == "reqrep" {
					_, err = req.Request("echo", payload, 5*time.Second)
				} else {
					_, err = req.RTT()
				}
				if err != nil {
					mu.Lock()
					firstErr = firstOf(firstErr, err)
					mu.Unlock()
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			rtts = append(rtts, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	secs := time.Since(start).Seconds()
	slices.Sort(rtts)
	// Nearest rank, as quiccli's histogram ranks.
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(rtts)))) - 1
		return float64(rtts[max(0, min(i, len(rtts)-1))]) / 1e3
	}
	r := &result{Mode: mode, Size: size, Seconds: secs, Count: len(rtts), P50us: q(0.50), P99us: q(0.99),
		MsgsPerSec: float64(len(rtts)) / secs}
	if mode == "reqrep" {
		r.Inflight = inflight
	}
	return r, nil
}

// firstOf returns the first non-nil error.
func firstOf(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
EOF
  (
    cd "$dir"
    export GOFLAGS=-mod=mod GOWORK=off
    timeout 300 go get "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION" "github.com/nats-io/nats.go@$NATS_GO_VERSION" &&
      timeout 300 go build -o "$bin/natsbench" . &&
      timeout 300 go build -o "$bin/nats-server" github.com/nats-io/nats-server/v2
  )
}

baseline=nats
log "building nats-server $NATS_SERVER_VERSION and nats.go $NATS_GO_VERSION in a throwaway module"
if ! build_nats >"$work/nats-build.log" 2>&1; then
  log "NATS could not be fetched or built (see below); falling back to raw quic-go from ./transport"
  tail -20 "$work/nats-build.log" >&2
  baseline=rawquic
fi

# ---------------------------------------------------------------- servers

# wait_line FILE REGEX PID: waits up to 10 s until FILE has a line matching
# REGEX, and prints it.
wait_line() {
  local i
  for i in $(seq 100); do
    if grep -m1 -E "$2" "$1" 2>/dev/null; then
      return 0
    fi
    kill -0 "$3" 2>/dev/null || die "server exited early: $(cat "$1")"
    sleep 0.1
  done
  die "no line matching $2 in $1 within 10 s"
}

# start_quicsrv MODE [FLAGS...]: starts quicsrv; sets srv_pid, srv_addr,
# srv_ca, srv_metrics.
start_quicsrv() {
  local log=$work/quicsrv.$RANDOM mode=$1
  shift
  "$bin/quicsrv" -addr 127.0.0.1:0 -mode "$mode" -dev-certs "$work/dev-certs" -metrics 127.0.0.1:0 "$@" \
    >"$log.out" 2>"$log.err" &
  srv_pid=$!
  srv_addr=$(wait_line "$log.out" '^quicsrv listening on ' "$srv_pid" | awk '{print $4}')
  srv_metrics=$(wait_line "$log.out" '^metrics: ' "$srv_pid" | awk '{print $2}')
  srv_ca=$work/dev-certs/ca.pem
}

# start_nats: starts nats-server; sets srv_pid, srv_url.
start_nats() {
  local log=$work/nats-server.$RANDOM
  "$bin/nats-server" -a 127.0.0.1 -p -1 >"$log.out" 2>"$log.err" &
  srv_pid=$!
  srv_url=nats://$(wait_line "$log.err" 'Listening for client connections on ' "$srv_pid" | grep -oE '[0-9.]+:[0-9]+$')
}

# stop_server: SIGTERM, then SIGKILL if it has not exited within 15 s.
stop_server() {
  kill -TERM "$srv_pid" 2>/dev/null || true
  local i
  for i in $(seq 150); do
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=
}

# wait_idle NAME: waits up to IDLE_WAIT s for one second in which the machine
# was at least IDLE_PCT % idle; records NAME as busy if there was none.
wait_idle() {
  local i a b
  for i in $(seq "$IDLE_WAIT"); do
    a=$(head -1 /proc/stat)
    sleep 1
    b=$(head -1 /proc/stat)
    if awk -v a="$a" -v b="$b" -v pct="$IDLE_PCT" 'BEGIN {
        n = split(a, x); split(b, y); total = 0
        for (i = 2; i <= n; i++) total += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        exit !(total > 0 && 100 * idle / total >= pct) }'; then
      return 0
    fi
  done
  echo "$1" >>"$work/busy"
  log "machine not ${IDLE_PCT} % idle within ${IDLE_WAIT} s; measuring $1 anyway"
}

# quic_bench FILE ARGS...: quiccli -json bench against the running quicsrv.
quic_bench() {
  local file=$1
  shift
  timeout 120 "$bin/quiccli" -addr "$srv_addr" -ca "$srv_ca" -timeout "$DRAIN" -json bench -size "$SIZE" "$@" >"$file"
}

# relay_run NAME ITERATION "QUICSRV FLAGS" [BENCH ARGS...]: one-way
# through a fresh relay; the result goes to NAME.ITERATION.json and the
# relay's drop counter to NAME-drops.ITERATION.json.
relay_run() {
  local name=$1 i=$2 flags=$3
  shift 3
  wait_idle "$name.$i"
  # shellcheck disable=SC2086 # the flags are meant to split
  start_quicsrv relay $flags $RELAY_FLAGS
  quic_bench "$results/$name.$i.json" -duration "$DURATION" "$@"
  printf '{"dropped": %s}\n' "$(report metric "$srv_metrics" quicmsg_relay_dropped_total)" >"$results/$name-drops.$i.json"
  stop_server
}

# raw_run NAME ITERATION [RAWRELAY BENCH ARGS...]: the same one-way
# topology through a fresh raw quic-go forwarder (internal/cmd/rawrelay):
# the ceiling of the relay rows; the result goes to NAME.ITERATION.json.
raw_run() {
  local name=$1 i=$2 log=$work/rawrelay.$RANDOM
  shift 2
  wait_idle "$name.$i"
  "$bin/rawrelay" -mode server -addr 127.0.0.1:0 -certs "$work/dev-certs" >"$log.out" 2>"$log.err" &
  srv_pid=$!
  srv_addr=$(wait_line "$log.out" '^rawrelay listening on ' "$srv_pid" | awk '{print $4}')
  timeout 120 "$bin/rawrelay" -mode bench -addr "$srv_addr" -certs "$work/dev-certs" -size "$SIZE" \
    -duration "$DURATION" -timeout "$DRAIN" "$@" >"$results/$name.$i.json"
  stop_server
}

# ---------------------------------------------------------------- calibration

# The highest rate of a ladder (half the unlimited delivered rate, then
# x0.7 each step) at which one calibration run delivered everything.
rate=0 max_rate=0
[ -z "$RELAY_ONLY" ] && log "calibrating the rate quicsrv relays without drops"
[ -z "$RELAY_ONLY" ] && start_quicsrv relay
if [ -z "$RELAY_ONLY" ]; then
quic_bench "$work/cal-max.json" -duration "$CALIBRATION"
stop_server
max_rate=$(report field "$work/cal-max.json" msgs_per_sec)
rate=$(awk -v r="$max_rate" 'BEGIN { printf "%d", int(r * 0.5 / 10000) * 10000 }')
for step in $(seq 8); do
  start_quicsrv relay
  quic_bench "$work/cal-$step.json" -duration "$CALIBRATION" -rate "$rate"
  stop_server
  lost=$(report field "$work/cal-$step.json" undelivered)
  log "  -rate $rate: $lost undelivered"
  if [ "$lost" = 0 ]; then
    break
  fi
  rate=$(awk -v r="$rate" 'BEGIN { printf "%d", int(r * 0.7 / 10000) * 10000 }')
  [ "$rate" -gt 0 ] || die "no rate without drops"
done
fi

# ---------------------------------------------------------------- measurements

for i in $(seq "$ITERATIONS"); do
  log "iteration $i of $ITERATIONS"

  relay_run quic-oneway-max "$i" ""
  relay_run quic-oneway-1k "$i" "" -size "$BIG_SIZE"
  relay_run quic-fanout "$i" "" -subscribers "$FANOUT"
  raw_run raw-oneway-max "$i"
  raw_run raw-oneway-1k "$i" -size "$BIG_SIZE"
  raw_run raw-fanout "$i" -subscribers "$FANOUT"
  if [ -z "$RELAY_ONLY" ]; then
    # The same with a subscriber queue far above the default 1024 messages.
    relay_run quic-oneway-bigq "$i" "-subscriber-queue $BIG_QUEUE"
    relay_run quic-oneway-rate "$i" "" -rate "$rate"

    wait_idle "quic-echo.$i"
    start_quicsrv echo
    quic_bench "$results/quic-echo.$i.json" -duration "$DURATION" -mode echo
    stop_server

    relay_run quic-group "$i" "" -subscribers "$GROUP_SIZE" -group workers
    relay_run quic-req1 "$i" "" -mode request -inflight 1
    relay_run quic-req64 "$i" "" -mode request -inflight "$INFLIGHT"
  fi

  if [ "$baseline" = nats ]; then
    runs=("pubsub-max:-mode pubsub" "pubsub-1k:-mode pubsub -size $BIG_SIZE" "fanout:-mode pubsub -subs $FANOUT")
    if [ -z "$RELAY_ONLY" ]; then
      runs+=("pubsub-rate:-mode pubsub -rate $rate" "reqrep:-mode reqrep" "ping:-mode ping"
        "group:-mode pubsub -subs $GROUP_SIZE -group workers" "reqrep64:-mode reqrep -inflight $INFLIGHT")
    fi
    for run in "${runs[@]}"; do
      name=${run%%:*}
      wait_idle "nats-$name.$i"
      start_nats
      # The later -size of a run wins. shellcheck disable=SC2086 # the arguments are meant to split
      timeout 120 "$bin/natsbench" -url "$srv_url" -size "$SIZE" -duration "$DURATION" -timeout "$DRAIN" ${run#*:} \
        >"$results/nats-$name.$i.json"
      stop_server
    done
  fi
done

if [ "$baseline" = rawquic ]; then
  log "running the raw quic-go benchmarks of ./transport"
  (cd "$root" && timeout 900 go test -run '^$' -bench '^BenchmarkOneWay$/^size=64$/^rawquic$' -benchtime 1s -count "$ITERATIONS" ./transport/) >"$work/rawquic-oneway.txt"
  (cd "$root" && timeout 900 go test -run '^$' -bench '^BenchmarkRequestResponse$/^rawquic$' -benchtime 1s -count "$ITERATIONS" ./transport/) >"$work/rawquic-rr.txt"
  cat "$work/rawquic-oneway.txt" "$work/rawquic-rr.txt" >&2
  n=0
  grep -E '^BenchmarkOneWay' "$work/rawquic-oneway.txt" | while read -r line; do
    n=$((n + 1))
    v=$(echo "$line" | awk '{for (i = 1; i < NF; i++) if ($(i+1) == "msgs/s") print $i}')
    printf '{"msgs_per_sec": %s}\n' "$v" >"$results/rawquic-oneway.$n.json"
  done
  grep -E '^BenchmarkRequestResponse' "$work/rawquic-rr.txt" | while read -r line; do
    n=$((n + 1))
    p50=$(echo "$line" | awk '{for (i = 1; i < NF; i++) if ($(i+1) == "p50-µs") print $i}')
    p99=$(echo "$line" | awk '{for (i = 1; i < NF; i++) if ($(i+1) == "p99-µs") print $i}')
    printf '{"p50_us": %s, "p99_us": %s}\n' "$p50" "$p99" >"$results/rawquic-rr.$n.json"
  done
fi

# ---------------------------------------------------------------- report

{
  echo "Command: ITERATIONS=$ITERATIONS DURATION=$DURATION CALIBRATION=$CALIBRATION scripts/bench-cli.sh; baseline: $baseline$( [ "$baseline" = nats ] && echo " (nats-server $NATS_SERVER_VERSION, nats.go $NATS_GO_VERSION)")."
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r), $(go version | awk '{print $3, $4}')."
  echo "Median of $ITERATIONS iterations [min–max], $DURATION per measurement, a fresh server per measurement;"
  echo "the ratio is of the medians, the bracket after it the range of the per-iteration ratios."
  echo "Rate without drops found by calibration: $rate msgs/s (unlimited calibration run: $(awk -v r="$max_rate" 'BEGIN { printf "%d", r }') msgs/s delivered)."
  if [ -s "$work/busy" ]; then
    echo "Measurements that started on a machine less than ${IDLE_PCT} % idle: $(tr '\n' ' ' <"$work/busy")"
  else
    echo "Every measurement started after a second in which the machine was at least ${IDLE_PCT} % idle."
  fi
  echo
  BIG_QUEUE=$BIG_QUEUE FANOUT=$FANOUT GROUP_SIZE=$GROUP_SIZE INFLIGHT=$INFLIGHT report table "$results" "$rate" "$baseline"
} | tee "${out_file:-/dev/null}"
