# quicmsg: build, run, test, benchmark and fuzz.
GO       ?= go
ADDR     ?= 127.0.0.1:4433
# Fuzz time per target for `make fuzz`.
FUZZTIME ?= 20s
# Benchmark repetitions and duration for `make bench`.
BENCHCOUNT ?= 5
BENCHTIME  ?= 1s

.PHONY: all build run test vet fmt-check bench fuzz clean

all: build

build:
	$(GO) build -o bin/quicsrv ./cmd/quicsrv
	$(GO) build -o bin/quiccli ./cmd/quiccli

# Starts the server on $(ADDR); development certificates are generated into
# .quicmsg/dev-certs on first start and reused afterwards.
run: build
	./bin/quicsrv -addr $(ADDR)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test: fmt-check vet
	$(GO) test -race -count=1 -timeout 15m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) -benchtime $(BENCHTIME) -timeout 60m ./transport/

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzMessageDecoder$$' -fuzztime $(FUZZTIME) ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzControlDecoder$$' -fuzztime $(FUZZTIME) ./internal/wire/

clean:
	rm -rf bin
