# weir — the two commands a newcomer needs are `make run` and `make test`.

GO        ?= go
BIN       := bin
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
QUICKSTART := examples/quickstart
# An execution count, not a duration: Go 1.26's fuzz coordinator can fail a
# duration-bounded run with a spurious "context deadline exceeded" at the
# boundary (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline.
FUZZTIME  ?= 150000x

# Consul for the tests: built from the Go module proxy as a dependency of a
# throwaway module (Consul publishes no Debian package; v1.14.0 is the newest
# MPL-2.0 release whose modules resolve here). Installed once into .tools/.
CONSUL_VERSION ?= v1.14.0
CONSUL_DIR     := $(CURDIR)/.tools/consul-$(CONSUL_VERSION)
CONSUL         := $(CONSUL_DIR)/consul
export WEIR_CONSUL := $(CONSUL)

# go-control-plane's generated encoders, which snapshot.Build and the xDS
# cache hash and serve resources with (see envoy.AppendDeterministic).
# Consul is built without them: they are weir's choice, not its.
export GOFLAGS += -tags=vtprotobuf

.PHONY: proto all build run run-consul demo test unit fuzz lint fmt vet bench clean consul

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/weir ./cmd/weir

## run: serve the quickstart (catalog + policies, both watched) on the default ports.
run: build
	$(BIN)/weir serve --catalog $(QUICKSTART)/catalog.yaml --policies $(QUICKSTART)/policies --state-dir .weir-state \
		--admin-token-file $(QUICKSTART)/admin-token

## run-consul: a local Consul dev agent with the quickstart's instances registered, and weir against it.
run-consul: build $(CONSUL)
	@trap 'kill $$consul 2>/dev/null; wait $$consul 2>/dev/null' EXIT INT TERM; \
	$(CONSUL) agent -dev -bind=127.0.0.1 -client=127.0.0.1 -log-level=warn \
		-config-dir=$(QUICKSTART)/consul & consul=$$!; \
	$(BIN)/weir serve --consul-addr 127.0.0.1:8500 --policies $(QUICKSTART)/policies --state-dir .weir-state \
		--admin-token-file $(QUICKSTART)/admin-token

## demo: start the quickstart's backends and a proxyless gRPC client against `make run`.
demo:
	$(GO) build -o $(BIN)/demo-backend ./$(QUICKSTART)/cmd/demo-backend
	$(GO) build -o $(BIN)/demo-client ./$(QUICKSTART)/cmd/demo-client
	@trap 'kill $$backend 2>/dev/null' EXIT INT TERM; \
	$(BIN)/demo-backend & backend=$$!; \
	$(BIN)/demo-client

## test: everything CI runs — formatting, vet, the race-enabled suite and short fuzz runs.
test: lint unit fuzz

unit: $(CONSUL)
	$(GO) test -race -count=1 -timeout=20m ./...

fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=1000x ./discovery/file
	$(GO) test -run='^$$' -fuzz='^FuzzParseFile$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=1000x ./policy

lint: fmt vet

fmt:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.tools/*')); \
	if [ -n "$$out" ]; then echo "gofmt would rewrite:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## consul: install Consul $(CONSUL_VERSION) into .tools/ if it is missing (about 2 minutes, once).
consul: $(CONSUL)

$(CONSUL):
	@echo "installing Consul $(CONSUL_VERSION) (MPL-2.0) from the Go module proxy into $(CONSUL_DIR)"
	rm -rf $(CONSUL_DIR)/build && mkdir -p $(CONSUL_DIR)/build
	cd $(CONSUL_DIR)/build && export GOFLAGS= && $(GO) mod init consul-build >/dev/null 2>&1 && \
		$(GO) get github.com/hashicorp/consul@$(CONSUL_VERSION) && \
		$(GO) build -o $(CONSUL).tmp github.com/hashicorp/consul
	mv $(CONSUL).tmp $(CONSUL)
	rm -rf $(CONSUL_DIR)/build
	$(CONSUL) version

## proto: regenerate the admin API's Go code from policy/admin/v1/admin.proto (pinned generators).
BUF := $(GO) run github.com/bufbuild/buf/cmd/buf@v1.75.0
proto:
	$(BUF) generate --template policy/admin/v1/buf.gen.yaml --path policy/admin/v1/admin.proto

## bench: speed and memory figures (see BENCHMARKS.md); never asserted in tests.
bench: $(CONSUL) build
	$(GO) test -run='^$$' -bench='^Benchmark(Build|Encode|CheckApplied|ListSet)$$' -benchmem -count=5 ./snapshot/... ./xds/...
	# One change per iteration, each after an untimed new model of up to
	# 20,000 services: a fixed count keeps the untimed part from taking
	# many minutes now that the timed part is short.
	$(GO) test -run='^$$' -bench='^Benchmark(BuildIncremental|Publish)$$' -benchtime=300x -benchmem -count=3 ./snapshot/... ./xds/...
	$(GO) test -run='^$$' -bench=. -benchtime=1x ./discovery/consul ./cmd/weir
	$(GO) test -run='^$$' -bench='^BenchmarkConcurrentOperations$$' -benchtime=20x -count=3 ./policy
	$(GO) run ./cmd/weir-bench --weir $(BIN)/weir --streams 2000

clean:
	rm -rf $(BIN)
