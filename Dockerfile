# syntax=docker/dockerfile:1
#
# Konductor image: `konductor` and `locomotive` in /usr/local/bin, with git and
# CA certificates, running as a non-root user (uid 10001). Used by the CircleCI
# orb executor, the Argo verification workflow and the tick CronJob.
#
#   docker build -t ghcr.io/konductor/konductor:latest .
#
# BuildKit is required (cache mounts).

ARG RUST_VERSION=1.89
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder

# git2's https feature links OpenSSL (openssl-sys finds it with pkg-config);
# libgit2, libssh2 and zlib are built from the vendored sources.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The whole workspace: Cargo needs every member's manifest (tests/ included).
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY tests ./tests

RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p konductor -p locomotive \
 && mkdir -p /out \
 && cp target/release/konductor target/release/locomotive /out/

FROM debian:${DEBIAN_RELEASE}-slim AS runtime

LABEL org.opencontainers.image.title="konductor" \
      org.opencontainers.image.description="Konductor release-train coordinator: konductor and locomotive" \
      org.opencontainers.image.source="https://github.com/konductor/konductor" \
      org.opencontainers.image.licenses="Apache-2.0"

# git and openssh-client for remotes and debugging, ca-certificates for https,
# libssl3 for the binaries' OpenSSL.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git libssl3 openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 konductor \
 && useradd --system --uid 10001 --gid konductor --home-dir /home/konductor --create-home \
      --shell /usr/sbin/nologin konductor

COPY --from=builder /out/konductor /out/locomotive /usr/local/bin/

USER 10001:10001
WORKDIR /home/konductor
ENV HOME=/home/konductor

# No ENTRYPOINT: CI systems and Kubernetes give the command
# (`konductor tick`, `locomotive set-step-state ...`).
CMD ["konductor", "--help"]
