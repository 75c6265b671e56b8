# Konductor: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build demo demo-tick test test-rust test-integrations lint fmt bench soak clean

all: build

build:
	$(CARGO) build --workspace --bins

## Run a whole release train end to end on an embedded local setup.
demo: build
	bash scripts/demo.sh

## The same demo, with jobs advancing the train themselves (`locomotive --tick`).
demo-tick: build
	DEMO_TICK=1 bash scripts/demo.sh

## Every test: Rust unit and end-to-end tests (real git servers), then the CI wiring files
## against their official schemas.
test: test-rust test-integrations

test-rust:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

test-integrations:
	bash scripts/validate-integrations.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Benchmarks (figures, not pass/fail): see benches/README.md.
bench:
	$(CARGO) build --release --workspace --bins
	bash benches/run.sh

## Load test: concurrent ticks and a random fake CI over many trains on git over HTTP.
soak:
	$(CARGO) build --release --workspace --bins
	bash benches/soak.sh

clean:
	$(CARGO) clean
