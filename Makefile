# weir — the two commands a newcomer needs are `make run` and `make test`.

GO        ?= go
BIN       := bin
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
QUICKSTART := examples/quickstart
FUZZTIME  ?= 10s

.PHONY: all build run demo test unit fuzz lint fmt vet bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/weir ./cmd/weir

## run: serve the quickstart (catalog + policies, both watched) on the default ports.
run: build
	$(BIN)/weir serve --catalog $(QUICKSTART)/catalog.yaml --policies $(QUICKSTART)/policies

## demo: start the quickstart's backends and a proxyless gRPC client against `make run`.
demo:
	$(GO) build -o $(BIN)/demo-backend ./$(QUICKSTART)/cmd/demo-backend
	$(GO) build -o $(BIN)/demo-client ./$(QUICKSTART)/cmd/demo-client
	@trap 'kill $$backend 2>/dev/null' EXIT INT TERM; \
	$(BIN)/demo-backend & backend=$$!; \
	$(BIN)/demo-client

## test: everything CI runs — formatting, vet, the race-enabled suite and short fuzz runs.
test: lint unit fuzz

unit:
	$(GO) test -race -count=1 ./...

fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=1s ./discovery/file
	$(GO) test -run='^$$' -fuzz='^FuzzParseFile$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=1s ./policy

lint: fmt vet

fmt:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.tools/*')); \
	if [ -n "$$out" ]; then echo "gofmt would rewrite:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## bench: Go benchmarks with allocations.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

clean:
	rm -rf $(BIN)
