# quicmsg: build, run, test, benchmark and fuzz.
GO       ?= go
ADDR     ?= 127.0.0.1:4433
# Fuzz time per target for `make fuzz`.
FUZZTIME ?= 20s
# Benchmark repetitions and duration for `make bench`.
BENCHCOUNT ?= 5
BENCHTIME  ?= 1s

# The version and commit stamped into the binaries (quicsrv -version,
# quiccli -version, quicmsg_build_info, /status): git describe and the
# commit of the checkout, unless given (make build VERSION=v1.2.3).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
SRV_LDFLAGS := -X main.stampedVersion=$(VERSION) -X main.stampedCommit=$(COMMIT)
CLI_LDFLAGS := -X main.version=$(VERSION)
# make install puts quicsrv and quiccli into $(DESTDIR)$(PREFIX)/bin.
PREFIX  ?= /usr/local
DESTDIR ?=

.PHONY: all build release install docker docker-check run cluster test vet fmt-check bench bench-hol fuzz soak scale scale-raw handshake clean

all: build

build:
	$(GO) build -ldflags "$(SRV_LDFLAGS)" -o bin/quicsrv ./cmd/quicsrv
	$(GO) build -ldflags "$(CLI_LDFLAGS)" -o bin/quiccli ./cmd/quiccli

# Static release binaries in bin/release, as the Dockerfile builds them:
# no cgo, -trimpath, stripped, version and commit stamped.
release:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(SRV_LDFLAGS)" -o bin/release/quicsrv ./cmd/quicsrv
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(CLI_LDFLAGS)" -o bin/release/quiccli ./cmd/quiccli

install: release
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/release/quicsrv bin/release/quiccli $(DESTDIR)$(PREFIX)/bin/

# The container image (see Dockerfile); needs Docker.
docker:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t quicsrv:$(VERSION) .

# Without Docker: builds what the Dockerfile builds (make release) and
# checks that quicsrv is static, built with the Dockerfile's flags, and
# prints the stamped version and commit (cmd/quicsrv/release_test.go).
docker-check: release
	QUICSRV_RELEASE=$(CURDIR)/bin/release/quicsrv QUICSRV_VERSION=$(VERSION) QUICSRV_COMMIT=$(COMMIT) \
		$(GO) test -tags release -count=1 -run '^TestRelease' ./cmd/quicsrv

# Starts the server on $(ADDR); development certificates are generated into
# .quicmsg/dev-certs on first start and reused afterwards.
run: build
	./bin/quicsrv -addr $(ADDR)

# A local cluster to try: nats-server on 127.0.0.1:4222 (the one on PATH, or
# built from the Go module proxy in a temporary directory) and three quicsrv
# nodes on 127.0.0.1:4433-4435 joined with -cluster; Ctrl-C stops them.
# See scripts/cluster.sh and CLUSTER.md.
cluster: build
	scripts/cluster.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# TestIdleSessionStacks runs again without the race detector, which makes
# every frame larger, on its own after the rest (it is built out of -race).
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -count=1 -run '^TestIdleSessionStacks$$' ./session
	$(MAKE) --no-print-directory docker-check

# Each iteration runs quicmsg and its raw quic-go baseline back to back, so
# that the two share the machine's state; compare them as ratios.
bench:
	mkdir -p bin
	$(GO) test -c -o bin/transport.test ./transport/
	$(GO) test -c -o bin/client.test ./client/
	$(GO) test -c -o bin/session.test ./session/
	$(GO) test -c -o bin/relay.test ./internal/relay/
	for i in $$(seq $(BENCHCOUNT)); do \
		./bin/transport.test -test.run '^$$' -test.bench . -test.benchmem -test.benchtime $(BENCHTIME) -test.timeout 30m || exit 1; \
	done
	./bin/session.test -test.run '^$$' -test.bench IdleSessionMemory -test.count 3 -test.timeout 10m
	for i in $$(seq $(BENCHCOUNT)); do \
		./bin/session.test -test.run '^$$' -test.bench Broadcast -test.benchmem -test.benchtime 20x -test.timeout 10m || exit 1; \
	done
	./bin/client.test -test.run '^$$' -test.bench ReconnectFirstEcho -test.benchtime 20x -test.count 3 -test.timeout 10m
	./bin/client.test -test.run '^$$' -test.bench PoolVsChannels -test.benchtime $(BENCHTIME) -test.count 3 -test.timeout 10m
	for i in $$(seq $(BENCHCOUNT)); do \
		./bin/relay.test -test.run '^$$' -test.bench . -test.benchmem -test.benchtime $(BENCHTIME) -test.timeout 10m || exit 1; \
	done

# Head-of-line blocking under packet loss, quicmsg beside yamux over TCP +
# TLS 1.3 in the same run (network namespaces, needs root; see the script).
# Run it under the shared lock: flock /tmp/quicmsg-bench.lock make bench-hol
bench-hol:
	mkdir -p bin
	scripts/bench-hol.sh -o bin/bench-hol.md -svg bin/bench-hol.svg

# Sessions a quicsrv in echo mode holds, and what they cost it (see
# scripts/scale.sh and internal/cmd/quicscale): make scale N=10000. Run it
# under the shared lock on a shared machine.
N ?= 1000
scale: build
	$(GO) build -o bin/quicscale ./internal/cmd/quicscale
	scripts/scale.sh hold $(N)

# The same for raw quic-go: N connections, each with one stream that echoed
# 64 B, held against a raw quic-go echo server (quicscale -mode serve-raw)
# with quicsrv's TLS and quic.Config: make scale-raw N=10000.
scale-raw: build
	$(GO) build -o bin/quicscale ./internal/cmd/quicscale
	scripts/scale.sh hold-raw $(N)

# Sessions set up per second against quicsrv and raw quic-go, same run.
handshake: build
	$(GO) build -o bin/quicscale ./internal/cmd/quicscale
	scripts/scale.sh handshake

# Long reliability runs: every TestSoak in the module (files with the soak
# build tag), under the race detector except rate measurements in files
# tagged `soak && !race`, which run in a second pass without it (see
# scripts/soak.sh). The output goes to bin/soak.log and the FIGURE lines the
# tests print are collected into one table. Fails if any test fails. The
# network namespace cases in e2e need root and skip without it.
soak:
	GO=$(GO) scripts/soak.sh bin/soak.log

# Every parser of network bytes, one after another for $(FUZZTIME) each.
FUZZTARGETS ?= FuzzMessageDecoder FuzzControlDecoder FuzzHelloDecoder FuzzChannelHeader FuzzHeaderBlock FuzzGap FuzzChannelOptions
fuzz:
	for t in $(FUZZTARGETS); do \
		$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./internal/wire/ || exit 1; \
	done
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/quiclb/

clean:
	rm -rf bin
