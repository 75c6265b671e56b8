# Konductor: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build demo demo-tick test test-deps test-rust test-integrations lint fmt bench bench-verify bench-scale soak soak-cas fuzz dist clean

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
## against their official schemas. Installs what they need first (test-deps).
test: test-deps test-rust test-integrations

## What the tests need beyond the toolchain and git: lighttpd, sshd, Chromium, … with apt
## (only what is missing), and the Python validators in a virtualenv, target/test-venv.
test-deps:
	bash scripts/test-deps.sh

test-rust: test-deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

test-integrations: test-deps
	bash scripts/validate-integrations.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Benchmarks (figures, not pass/fail): see benches/README.md. SCALE_SIZES="1000 100000"
## skips the 1,000,000-tag run of benches/scale.sh.
bench:
	$(CARGO) build --release --workspace --bins
	bash benches/run.sh
	bash benches/scale.sh
	python3 benches/serve.py
	$(MAKE) bench-verify

## Verifying 1,000 signed tags: ssh-keygen processes against in-process (docs/architecture.md).
bench-verify:
	$(CARGO) test --release -p konductor-core --lib verify_1000_signed_tags -- --ignored --nocapture

## Only the scale benchmark: tick, push and gc at 1,000 / 100,000 / 1,000,000 tags.
bench-scale:
	$(CARGO) build --release --workspace --bins
	bash benches/scale.sh

## Load test: 4 concurrent tick loops and a random fake CI over SOAK_TRAINS (200) trains,
## opened SOAK_BATCH (10) at a time, on git over HTTP; stops early after SOAK_SECONDS.
## Prints the counts.
SOAK_TRAINS ?= 200
SOAK_BATCH ?= 10
SOAK_SECONDS ?= 2700
soak:
	$(CARGO) build --release --workspace --bins
	SOAK_TRAINS=$(SOAK_TRAINS) SOAK_BATCH=$(SOAK_BATCH) SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) test --release -p konductor-tests --test e2e soak -- --ignored --nocapture

## Compare-and-swap under load: 4 racing `publish-manifests` CAS_ROUNDS (200) times with
## busy CPUs; fails on any round where a writer that exited 0 is missing from the chain.
CAS_ROUNDS ?= 200
soak-cas:
	$(CARGO) build --release --workspace --bins
	CAS_ROUNDS=$(CAS_ROUNDS) $(CARGO) test --release -p konductor-tests --test e2e racing_publishes_under_load -- --ignored --nocapture

## Fuzz the tag, SDD and signature parsers (nightly + cargo-fuzz); see docs/fuzzing.md.
fuzz:
	bash fuzz/run.sh

## Release archives: static (musl) konductor + locomotive for x86_64 and aarch64 Linux,
## dist/konductor-<target>.tar.gz and dist/SHA256SUMS. DIST_TARGETS picks targets.
dist:
	bash scripts/dist.sh

clean:
	$(CARGO) clean
