#!/usr/bin/env bash
# Release archives (`make dist`): one static (musl) build of konductor and
# locomotive per target, dist/konductor-<target>.tar.gz, and dist/SHA256SUMS.
#
#   DIST_TARGETS  targets to build (default: x86_64-unknown-linux-musl
#                 aarch64-unknown-linux-musl)
#   scripts/dist.sh --sums   only (re)write dist/SHA256SUMS for the archives in dist/
#
# A target of the machine's own architecture is built with musl-gcc (Debian's
# musl-tools; installed with apt when missing and possible). Another
# architecture is cross-built with cargo-zigbuild, zig being the linker; both
# come from PyPI (ziglang, cargo-zigbuild) into a virtualenv, target/dist-venv.
# libgit2, OpenSSL and libssh2 are built from source and linked in (the
# `vendored` feature of konductor-core), so the binaries need no system
# library. Each binary must come out statically linked, or the build fails.
# The binaries still run `git` and `ssh-keygen` from PATH where Konductor uses
# them (pushes with the git CLI, SSH signatures).
#
# The archives are reproducible for a given commit: sorted names, owner 0,
# mtimes from the commit (SOURCE_DATE_EPOCH), gzip without a timestamp.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
DIST="$ROOT/dist"
VENV="$ROOT/target/dist-venv"
TARGETS="${DIST_TARGETS:-x86_64-unknown-linux-musl aarch64-unknown-linux-musl}"

log() { printf 'dist: %s\n' "$*"; }
die() { printf 'dist: error: %s\n' "$*" >&2; exit 1; }

write_sums() {
  local archives=()
  mapfile -t archives < <(cd "$DIST" && ls konductor-*.tar.gz 2>/dev/null)
  ((${#archives[@]})) || die "no archive in dist/ to sum"
  (cd "$DIST" && sha256sum "${archives[@]}" >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
  log "wrote dist/SHA256SUMS:"
  sed 's/^/  /' "$DIST/SHA256SUMS"
}

if [ "${1:-}" = --sums ]; then
  write_sums
  exit 0
fi
[ $# = 0 ] || die "unknown argument \`$1\` (only --sums)"

# apt_install PACKAGE: as root or with passwordless sudo; else say what to run.
apt_install() {
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null 2>&1 && "${sudo[@]}" true 2>/dev/null; then
    log "installing $1 with apt"
    "${sudo[@]}" apt-get install -y --no-install-recommends "$1" >/dev/null
  else
    die "$1 is missing: install it (Debian/Ubuntu: apt-get install $1)"
  fi
}

zigbuild_ready() {
  if [ ! -x "$VENV/bin/cargo-zigbuild" ] || ! "$VENV/bin/python3" -m ziglang version >/dev/null 2>&1; then
    log "installing ziglang and cargo-zigbuild (PyPI) into ${VENV#"$ROOT"/}"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install --quiet ziglang cargo-zigbuild || die "pip could not install ziglang and cargo-zigbuild"
  fi
}

command -v file >/dev/null 2>&1 || apt_install file
host_arch="$(uname -m)"
case "$host_arch" in amd64) host_arch=x86_64 ;; arm64) host_arch=aarch64 ;; esac
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
# Not exported: only tar reads it.
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
mkdir -p "$DIST"
log "konductor $version for: $TARGETS"

for target in $TARGETS; do
  case "$target" in
    x86_64-unknown-linux-musl | aarch64-unknown-linux-musl) ;;
    *) die "unsupported target \`$target\` (x86_64-unknown-linux-musl, aarch64-unknown-linux-musl)" ;;
  esac
  arch="${target%%-*}"
  if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
    log "rustup target add $target"
    rustup target add "$target"
  fi
  build=(build)
  if [ "$arch" = "$host_arch" ]; then
    command -v musl-gcc >/dev/null 2>&1 || apt_install musl-tools
  else
    zigbuild_ready
    build=(zigbuild)
    export PATH="$VENV/bin:$PATH"
  fi
  log "cargo ${build[*]} --target $target"
  "$CARGO" "${build[@]}" --release --locked --target "$target" -p konductor -p locomotive \
    --features konductor-core/vendored

  stage="$ROOT/target/dist-stage/konductor-$target"
  rm -rf "$stage"
  mkdir -p "$stage"
  for bin in konductor locomotive; do
    out="target/$target/release/$bin"
    desc="$(file -b "$out")"
    case "$desc" in
      *"statically linked"* | *"static-pie linked"*) ;;
      *) die "$out is not statically linked: $desc" ;;
    esac
    # No program interpreter, no shared library.
    if command -v readelf >/dev/null 2>&1 && { readelf -d "$out" | grep -q NEEDED || readelf -l "$out" | grep -q INTERP; }; then
      die "$out needs a dynamic loader or shared libraries: $(readelf -d "$out" | grep NEEDED | tr -s ' ' | head -n3)"
    fi
    install -m 0755 "$out" "$stage/$bin"
    if [ "$arch" = "$host_arch" ]; then
      strip "$stage/$bin"
      "$stage/$bin" --version >/dev/null || die "$out does not run"
    fi
    log "$bin ($target): $(grep -Eo 'static(ally|-pie) linked' <<<"$desc"), $(du -k "$stage/$bin" | cut -f1) KiB"
  done
  cp README.md "$stage/"
  [ ! -f LICENSE ] || cp LICENSE "$stage/"
  archive="$DIST/konductor-$target.tar.gz"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -C "$ROOT/target/dist-stage" -cf - "konductor-$target" | gzip -n -9 >"$archive.tmp"
  mv "$archive.tmp" "$archive"
  log "wrote ${archive#"$ROOT"/} ($(du -k "$archive" | cut -f1) KiB)"
done
write_sums
