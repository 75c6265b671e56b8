#!/usr/bin/env bash
# Install locomotive and konductor from a Konductor release archive.
# Shared by the CircleCI orb (konductor/install) and the GitHub Action.
#
# A release folder holds one static (musl) archive per architecture,
# konductor-<arch>-unknown-linux-musl.tar.gz, and SHA256SUMS (`make dist`).
#
# Environment:
#   KONDUCTOR_PARAM_VERSION      release, e.g. 0.1.0 or v0.1.0
#   KONDUCTOR_PARAM_BASE_URL     release folder; empty means the GitHub release of VERSION,
#                                https://github.com/konductor/konductor/releases/download/v<version>
#   KONDUCTOR_PARAM_URL          one archive to install instead (no architecture choice);
#                                its SHA256SUMS is read from the same folder
#   KONDUCTOR_PARAM_SHA256       expected SHA-256 of the archive (pinned); empty means the
#                                archive's line in the folder's SHA256SUMS
#   KONDUCTOR_PARAM_INSTALL_DIR  target directory (default /usr/local/bin)
# The archive is always verified: a mismatch, a missing SHA256SUMS or a SHA256SUMS
# without the archive's line installs nothing. Does nothing when locomotive is
# already on PATH.
set -euo pipefail

log() { printf 'konductor/install: %s\n' "$*"; }
die() { printf 'konductor/install: error: %s\n' "$*" >&2; exit 1; }

if command -v locomotive >/dev/null 2>&1; then
  log "locomotive is already installed at $(command -v locomotive); skipping the download"
  exit 0
fi

version="${KONDUCTOR_PARAM_VERSION:-}"
version="${version#v}"
pinned="${KONDUCTOR_PARAM_SHA256:-}"
pinned="$(printf '%s' "$pinned" | tr 'A-F' 'a-f')"
if [ -n "$pinned" ] && ! [[ "$pinned" =~ ^[0-9a-f]{64}$ ]]; then
  die "sha256 \`$pinned\` is not a SHA-256 digest (64 hex digits)"
fi

url="${KONDUCTOR_PARAM_URL:-}"
if [ -z "$url" ]; then
  os="$(uname -s)"
  [ "$os" = Linux ] || die "Konductor releases are built for Linux, not \`$os\`; use the ghcr.io/konductor/konductor image or build from source"
  machine="$(uname -m)"
  case "$machine" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) die "no Konductor release for architecture \`$machine\` (there are x86_64 and aarch64); build from source" ;;
  esac
  base="${KONDUCTOR_PARAM_BASE_URL:-}"
  if [ -z "$base" ]; then
    [ -n "$version" ] || die "give a version, a base-url or a url"
    base="https://github.com/konductor/konductor/releases/download/v${version}"
  fi
  url="${base%/}/konductor-${arch}-unknown-linux-musl.tar.gz"
fi
name="${url##*/}"
name="${name%%\?*}"
sums_url="${url%/*}/SHA256SUMS"
dir="${KONDUCTOR_PARAM_INSTALL_DIR:-/usr/local/bin}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# download URL FILE
download() {
  if command -v curl >/dev/null 2>&1; then
    curl --fail --silent --show-error --location --retry 3 --output "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget --quiet --tries=3 --output-document="$2" "$1"
  else
    die "neither curl nor wget is installed"
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | awk '{print $1}'
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | awk '{print $1}'
  else
    die "neither sha256sum nor shasum is installed: cannot verify the download"
  fi
}

# Everything is downloaded and checked before anything is installed.
archive="$tmp/$name"
log "downloading $url"
download "$url" "$archive" || die "cannot download \`$url\`"

if [ -n "$pinned" ]; then
  want="$pinned"
  what="the pinned sha256"
else
  log "downloading $sums_url"
  download "$sums_url" "$tmp/SHA256SUMS" \
    || die "cannot download \`$sums_url\`: a release folder needs SHA256SUMS (\`make dist\` writes it), or pin the archive's digest with sha256"
  # Lines are `<digest>  <file>` (sha256sum; `*<file>` in binary mode).
  want="$(awk -v n="$name" '$2 == n || $2 == "*" n {print tolower($1)}' "$tmp/SHA256SUMS")"
  case "$(printf '%s' "$want" | grep -c .)" in
    1) ;;
    0) die "\`$sums_url\` has no line for \`$name\`" ;;
    *) die "\`$sums_url\` has more than one line for \`$name\`" ;;
  esac
  [[ "$want" =~ ^[0-9a-f]{64}$ ]] || die "\`$sums_url\` gives \`$want\` for \`$name\`, not a SHA-256 digest"
  what="SHA256SUMS"
fi
got="$(sha256_of "$archive")"
if [ "$got" != "$want" ]; then
  die "SHA-256 of \`$url\` is $got, but $what says $want: refusing to install it"
fi
log "SHA-256 verified against $what ($got)"

mkdir "$tmp/x"
tar -xzf "$archive" -C "$tmp/x" || die "\`$url\` is not a gzip tar archive"
srcs=()
for bin in locomotive konductor; do
  # The binaries may sit at the top of the archive or in one directory.
  src="$(find "$tmp/x" -type f -name "$bin" -print -quit)"
  [ -n "$src" ] || die "the archive \`$name\` holds no $bin binary"
  srcs+=("$src")
done

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
for src in "${srcs[@]}"; do
  bin="$(basename "$src")"
  # Copy next to the target, then rename: no half-written binary on PATH.
  "${sudo_cmd[@]}" install -m 0755 "$src" "$dir/.$bin.konductor-install"
  "${sudo_cmd[@]}" mv -f "$dir/.$bin.konductor-install" "$dir/$bin"
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
