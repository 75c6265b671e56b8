#!/usr/bin/env bash
# Install what `make test` needs beyond the Rust toolchain and git, so that it passes on a
# fresh machine. `make test` runs this first; it is quick when everything is in place.
#
#   System tools, with apt, only for a binary that is missing (one `apt-get update`):
#     lighttpd (smart HTTP git server), sshd + ssh/ssh-keygen (ssh:// remotes, signing),
#     chromium (the board in a real browser), python3 + venv, curl (the orb's install.sh
#     checks), kill (procps), mount (the full-disk test), openssl (GitHub App test keys)
#   Python validators of scripts/requirements-ci.txt, in a virtualenv: target/test-venv
#     (KONDUCTOR_TEST_VENV overrides the path). It is rebuilt only when the requirements
#     or its Python change, or it stops working: target/test-venv/.requirements.sha256
#     holds the hash of the requirements and the venv's Python version.
#     scripts/validate-integrations.sh finds the validators there.
#
# Not root: apt runs through sudo when sudo exists; otherwise the script prints what to
# install and exits 1. No apt-get (not Debian or Ubuntu): the same.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REQS=scripts/requirements-ci.txt
VENV="${KONDUCTOR_TEST_VENV:-$ROOT/target/test-venv}"
STAMP="$VENV/.requirements.sha256"
case "$VENV" in /*/*) ;; *) echo "test-deps: KONDUCTOR_TEST_VENV must be an absolute path below /, not \`$VENV\`" >&2; exit 2 ;; esac

say() { printf 'test-deps: %s\n' "$*" >&2; }

# ------------------------------------------------------------------ system tools
# Each entry: a binary, then the Debian package that ships it. A binary is found on PATH
# or in the sbin directories (lighttpd and sshd live there, often off a user's PATH).
TOOLS=(
  lighttpd lighttpd
  sshd openssh-server
  ssh openssh-client
  ssh-keygen openssh-client
  chromium chromium
  python3 python3
  curl curl
  tar tar
  sha256sum coreutils
  kill procps
  mount mount
  openssl openssl
)

have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local d
  for d in /usr/sbin /sbin /usr/local/sbin; do
    [ -x "$d/$1" ] && return 0
  done
  return 1
}

need_pkgs=()
need_why=()
add_pkg() {
  local p
  for p in "${need_pkgs[@]}"; do [ "$p" = "$1" ] && return 0; done
  need_pkgs+=("$1")
  need_why+=("$2")
}

for ((i = 0; i < ${#TOOLS[@]}; i += 2)); do
  have "${TOOLS[i]}" || add_pkg "${TOOLS[i + 1]}" "${TOOLS[i]}"
done

# ------------------------------------------------------------------ the virtualenv
# The requirements and the venv's own Python: a venv made by another python3 than the one on
# PATH now is kept while it works.
want_hash() { { cat "$REQS"; "$VENV/bin/python3" --version 2>&1; } | sha256sum | awk '{print $1}'; }

venv_current() {
  [ -f "$STAMP" ] && [ -x "$VENV/bin/python3" ] \
    && "$VENV/bin/python3" -c '' 2>/dev/null \
    && [ "$(cat "$STAMP")" = "$(want_hash)" ]
}

# Creates the venv (pip included). Debian's python3 needs python3-venv for that.
make_venv() {
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" >"$VENV.log" 2>&1
}

build_venv=0
if ! venv_current; then
  build_venv=1
  if ! have python3; then
    add_pkg python3-venv "python3 -m venv"
  elif ! make_venv; then
    # Most likely "ensurepip is not available": the python3-venv package is missing.
    add_pkg python3-venv "python3 -m venv"
    rm -rf "$VENV"
  fi
fi

# ------------------------------------------------------------------ apt
if ((${#need_pkgs[@]})); then
  list=""
  for ((i = 0; i < ${#need_pkgs[@]}; i++)); do list+="${need_pkgs[i]} (for ${need_why[i]}), "; done
  say "missing: ${list%, }"
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      say "not root and no sudo: install them as root, then run make test again:"
      say "  apt-get update && apt-get install -y --no-install-recommends ${need_pkgs[*]}"
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "no apt-get on this machine: install the equivalents of these Debian packages, then run make test again:"
    say "  ${need_pkgs[*]}"
    exit 1
  fi
  say "installing with apt-get: ${need_pkgs[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  for ((i = 0; i < ${#TOOLS[@]}; i += 2)); do
    if ! have "${TOOLS[i]}"; then
      say "apt-get installed ${TOOLS[i + 1]}, but ${TOOLS[i]} is still not found"
      exit 1
    fi
  done
fi

# ------------------------------------------------------------------ pip
if ((build_venv)); then
  if [ ! -x "$VENV/bin/python3" ] && ! make_venv; then
    say "python3 -m venv $VENV failed:"
    cat "$VENV.log" >&2
    exit 1
  fi
  rm -f "$VENV.log"
  say "installing $REQS into ${VENV#"$ROOT"/}"
  "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check -r "$REQS"
  # Written last: a venv without its stamp (an interrupted install) is rebuilt next time.
  want_hash >"$STAMP"
fi

say "ready (validators in ${VENV#"$ROOT"/})"
