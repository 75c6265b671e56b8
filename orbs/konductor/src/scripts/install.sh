#!/usr/bin/env bash
# Install locomotive (and konductor) from a Konductor release tarball.
# Shared by the CircleCI orb (konductor/install) and the GitHub Action.
#
# Environment:
#   KONDUCTOR_PARAM_VERSION      release, e.g. 0.1.0 or v0.1.0
#   KONDUCTOR_PARAM_URL          tarball URL; empty means the GitHub release asset
#   KONDUCTOR_PARAM_SHA256       expected SHA-256 of the tarball; empty skips the check
#   KONDUCTOR_PARAM_INSTALL_DIR  target directory (default /usr/local/bin)
# Does nothing when locomotive is already on PATH.
set -euo pipefail

log() { printf 'konductor/install: %s\n' "$*"; }
die() { printf 'konductor/install: error: %s\n' "$*" >&2; exit 1; }

if command -v locomotive >/dev/null 2>&1; then
  log "locomotive is already installed at $(command -v locomotive); skipping the download"
  exit 0
fi

version="${KONDUCTOR_PARAM_VERSION:-}"
version="${version#v}"
url="${KONDUCTOR_PARAM_URL:-}"
if [ -z "$url" ]; then
  [ -n "$version" ] || die "give a version or a url"
  url="https://github.com/konductor/konductor/releases/download/v${version}/konductor-x86_64-unknown-linux-gnu.tar.gz"
fi
dir="${KONDUCTOR_PARAM_INSTALL_DIR:-/usr/local/bin}"

# Install into $dir directly, with sudo, or else into ~/.local/bin.
sudo_cmd=()
if ! { mkdir -p "$dir" 2>/dev/null && [ -w "$dir" ]; }; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
    "${sudo_cmd[@]}" mkdir -p "$dir"
  else
    log "$dir is not writable and sudo is unavailable; using $HOME/.local/bin"
    dir="$HOME/.local/bin"
    mkdir -p "$dir"
  fi
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
archive="$tmp/konductor.tar.gz"

log "downloading $url"
if command -v curl >/dev/null 2>&1; then
  curl --fail --silent --show-error --location --retry 3 --output "$archive" "$url"
elif command -v wget >/dev/null 2>&1; then
  wget --quiet --tries=3 --output-document="$archive" "$url"
else
  die "neither curl nor wget is installed"
fi

if [ -n "${KONDUCTOR_PARAM_SHA256:-}" ]; then
  printf '%s  %s\n' "$KONDUCTOR_PARAM_SHA256" "$archive" | sha256sum --check --status \
    || die "SHA-256 of $url does not match $KONDUCTOR_PARAM_SHA256"
  log "SHA-256 verified"
fi

mkdir "$tmp/x"
tar -xzf "$archive" -C "$tmp/x"
for bin in locomotive konductor; do
  # The binaries may sit at the top of the tarball or in one directory.
  src="$(find "$tmp/x" -type f -name "$bin" -print -quit)"
  if [ -z "$src" ]; then
    [ "$bin" = konductor ] && continue
    die "the tarball holds no $bin binary"
  fi
  "${sudo_cmd[@]}" install -m 0755 "$src" "$dir/$bin"
  log "installed $dir/$bin"
done

case ":$PATH:" in
  *":$dir:"*) ;;
  *)
    # Later steps: CircleCI sources $BASH_ENV, GitHub Actions reads $GITHUB_PATH.
    if [ -n "${GITHUB_PATH:-}" ]; then
      printf '%s\n' "$dir" >>"$GITHUB_PATH"
    elif [ -n "${BASH_ENV:-}" ]; then
      # shellcheck disable=SC2016 # $PATH is expanded later, when BASH_ENV is sourced
      printf 'export PATH="%s:$PATH"\n' "$dir" >>"$BASH_ENV"
    else
      log "add $dir to PATH"
    fi
    ;;
esac
