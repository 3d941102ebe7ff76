# crs-ci — `make help` lists the targets.
SHELL   := /bin/bash
GO      ?= go
BIN     := bin/crs-ci
PKG     := github.com/crs-ci/crs-ci
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -s -w -buildid= -X $(PKG)/core/version.Version=$(VERSION) -X $(PKG)/core/version.Commit=$(COMMIT)
export CGO_ENABLED := 0

.PHONY: help deps build test test-go lint demo bench probe

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install the Debian packages the build, tests and demo need
	scripts/install-deps.sh

build: ## build bin/crs-ci, statically linked
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./core/cmd/crs-ci
	@if readelf -l $(BIN) | grep -q 'program interpreter'; then echo "$(BIN) is not static" >&2; exit 1; fi

lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l core); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test-go: build ## all Go tests (they start the servers and build the images they need)
	$(GO) test -count=1 -timeout 75m ./...

test: deps lint test-go test-shims fuzz-short ## install what tests need, then run every test (Go, probe, matrix, shims, bounded fuzzing)

demo: deps build ## the main job end to end on an embedded default
	scripts/demo.sh

bench: deps build ## benchmarks; results go to docs/benchmarks.md
	scripts/bench.sh

# ---- probe: the in-container C library (probe/, core/probe/) ----
.PHONY: test-probe
probe: ## build the probe artifacts + decide-harness, gate them (debug/elf), copy into core/probe/artifacts
	probe/build.sh probe/build
	$(GO) run ./core/probe/gate probe/src/exports.txt probe/build/crs-probe-*.so
	cp probe/build/crs-probe-*.so core/probe/artifacts/

test-probe: ## probe tests: gate, reproducibility, real programs in real root filesystems and a container
	$(GO) test -count=1 -timeout 30m ./core/probe/... ./probe/...

.PHONY: test-shims
test-shims: build ## CI shim tests: GitHub Action, Azure DevOps task, Jenkins library, pre-push hook
	scripts/test-shims.sh

# ---- truth matrix: check's verdict vs the probe at runtime (core/internal/matrix; also run by test-go) ----
.PHONY: matrix
matrix: deps build ## the truth matrix on every image kind; writes docs/matrix.md
	scripts/matrix.sh

# ---- fuzzing (scripts/fuzz.sh; Go native targets under core/ and the probe's C targets in probe/fuzz) ----
.PHONY: fuzz fuzz-short
fuzz-short: ## every fuzz target for a bounded time (~10-15 s each, under 5 minutes); make test runs it
	scripts/fuzz.sh short

fuzz: ## every fuzz target for longer (FUZZ_TIME per Go target, default 5m; FUZZ_C_SECONDS per C target)
	scripts/fuzz.sh long
