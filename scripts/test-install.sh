#!/usr/bin/env bash
# shellcheck disable=SC2016 # expected messages hold backquotes, as the script quotes values
# Test the release install (orbs/konductor/src/scripts/install.sh) against a
# release folder served over HTTP on loopback (python3 -m http.server), the way
# CI runs it: the script itself, the packed orb's `install` command (its
# `command:` text, from orbs/konductor/orb.yml) and the GitHub Action's
# "Install locomotive" step (its `run:`, from integrations/github/action.yml).
#
# The archives are small fakes (a shell `konductor`/`locomotive` that print
# their architecture), laid out as `make dist` lays out the real ones, with a
# SHA256SUMS written by sha256sum. `uname` is faked through PATH to pick the
# architecture.
#
# Prints `ok   <what>` / `FAIL <what>: <reason>` per check and ends with
# `N passed, M failed`; exit 0 only if nothing failed. Run by
# scripts/validate-integrations.sh (`make test`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SCRIPT=orbs/konductor/src/scripts/install.sh
ORB=orbs/konductor/orb.yml
ACTION=integrations/github/action.yml

for tool in python3 curl tar sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || { echo "test-install: missing $tool" >&2; exit 2; }
done
python3 -c 'import yaml' 2>/dev/null || { echo "test-install: missing python3 module yaml (PyYAML)" >&2; exit 2; }

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

passed=0
failed=0
pass() { printf 'ok   %s\n' "$1"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s: %s\n' "$1" "$2"; failed=$((failed + 1)); }
oneline() { printf '%s' "$1" | tr -s '[:space:]' ' ' | head -c 300; }

# ------------------------------------------------------------------ the three runners
# The packed orb's install command and the action's install step, as CI would run them.
python3 - "$ORB" "$ACTION" "$WORK" <<'PY'
import pathlib, sys, yaml
orb, action, work = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
run = yaml.safe_load(open(orb))["commands"]["install"]["steps"][0]["run"]
(work / "orb-install.sh").write_text(run["command"])
(work / "orb-install.env").write_text("\n".join(sorted(run["environment"])) + "\n")
steps = yaml.safe_load(open(action))["runs"]["steps"]
step = next(s for s in steps if s.get("name") == "Install locomotive")
(work / "action-install.sh").write_text(step["run"])
(work / "action-install.env").write_text("\n".join(sorted(step["env"])) + "\n")
PY

# Both must pass every parameter the script reads.
script_vars="$(grep -oE 'KONDUCTOR_PARAM_[A-Z0-9_]+' "$SCRIPT" | sort -u)"
for runner in orb action; do
  missing="$(comm -23 <(printf '%s\n' "$script_vars") "$WORK/$runner-install.env")"
  if [ -z "$missing" ]; then
    pass "$runner install step passes every KONDUCTOR_PARAM_* the script reads"
  else
    fail "$runner install step" "does not pass $(oneline "$missing")"
  fi
done

# ------------------------------------------------------------------ release folders
# make_archive DIR ARCH: konductor-ARCH-unknown-linux-musl.tar.gz in DIR, as `make dist` makes it.
make_archive() {
  local dir="$1" arch="$2" name="konductor-$2-unknown-linux-musl" bin
  mkdir -p "$WORK/src/$name"
  for bin in konductor locomotive; do
    printf '#!/bin/sh\necho "%s 0.1.0 %s"\n' "$bin" "$arch" >"$WORK/src/$name/$bin"
    chmod +x "$WORK/src/$name/$bin"
  done
  echo "Konductor" >"$WORK/src/$name/README.md"
  tar -czf "$dir/$name.tar.gz" -C "$WORK/src" "$name"
}
WWW="$WORK/www"
GOOD="$WWW/good/v0.1.0"
mkdir -p "$GOOD"
make_archive "$GOOD" x86_64
make_archive "$GOOD" aarch64
(cd "$GOOD" && sha256sum ./*.tar.gz | sed 's|  \./|  |' >SHA256SUMS)
X86_SHA="$(sha256sum "$GOOD/konductor-x86_64-unknown-linux-musl.tar.gz" | awk '{print $1}')"

# The same release after someone swapped the x86_64 archive: SHA256SUMS is the original.
TAMPERED="$WWW/tampered/v0.1.0"
mkdir -p "$TAMPERED"
cp "$GOOD"/* "$TAMPERED/"
rm -rf "$WORK/src"
make_archive "$TAMPERED" x86_64
sed -i 's/echo "konductor 0.1.0 x86_64"/echo "konductor 0.1.0 x86_64"; echo pwned/' \
  "$WORK/src/konductor-x86_64-unknown-linux-musl/konductor"
tar -czf "$TAMPERED/konductor-x86_64-unknown-linux-musl.tar.gz" -C "$WORK/src" konductor-x86_64-unknown-linux-musl
if [ "$(sha256sum "$TAMPERED/konductor-x86_64-unknown-linux-musl.tar.gz" | awk '{print $1}')" = "$X86_SHA" ]; then
  echo "test-install: the tampered archive has the good digest; the test is broken" >&2
  exit 2
fi

# No SHA256SUMS at all; and a SHA256SUMS that lists only the aarch64 archive.
NOSUMS="$WWW/nosums/v0.1.0"
mkdir -p "$NOSUMS"
cp "$GOOD"/*.tar.gz "$NOSUMS/"
PARTIAL="$WWW/partial/v0.1.0"
mkdir -p "$PARTIAL"
cp "$GOOD"/*.tar.gz "$PARTIAL/"
grep aarch64 "$GOOD/SHA256SUMS" >"$PARTIAL/SHA256SUMS"

# ------------------------------------------------------------------ the server
python3 -u -m http.server --bind 127.0.0.1 --directory "$WWW" 0 >"$WORK/http.log" 2>&1 &
SERVER_PID=$!
PORT=""
for _ in $(seq 100); do
  PORT="$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$WORK/http.log" | head -n1)"
  [ -n "$PORT" ] && break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "test-install: the HTTP server did not start: $(cat "$WORK/http.log")" >&2; exit 2; }
BASE="http://127.0.0.1:$PORT"

# ------------------------------------------------------------------ fake uname and curl
FAKE="$WORK/fake"
mkdir -p "$FAKE"
cat >"$FAKE/uname" <<'SH'
#!/bin/sh
case "$1" in
  -m) echo "${FAKE_UNAME_M:?}" ;;
  -s) echo "${FAKE_UNAME_S:-Linux}" ;;
  *) echo "${FAKE_UNAME_S:-Linux}" ;;
esac
SH
chmod +x "$FAKE/uname"
# A curl that only records its URL and fails (for the default GitHub URL: no network).
mkdir -p "$WORK/offline"
cat >"$WORK/offline/curl" <<'SH'
#!/bin/sh
for a; do last="$a"; done
echo "$last" >>"$CURL_LOG"
exit 22
SH
chmod +x "$WORK/offline/curl"
BASE_PATH="/usr/local/bin:/usr/bin:/bin"

# ------------------------------------------------------------------ cases
# run_install RUNNER MACHINE [VAR=VALUE...]: runs one runner (script, orb, action) in a
# clean environment into a fresh $WORK/run/bin; sets RC and OUT.
n=0
run_install() {
  local runner="$1" machine="$2"
  shift 2
  n=$((n + 1))
  RUN="$WORK/run$n"
  mkdir -p "$RUN/home"
  : >"$RUN/bash_env"
  local cmd=(bash "$ROOT/$SCRIPT")
  case "$runner" in
    orb) cmd=(bash "$WORK/orb-install.sh") ;;
    action) cmd=(bash --noprofile --norc -eo pipefail "$WORK/action-install.sh") ;;
  esac
  RC=0
  OUT="$(cd "$RUN" && env -i PATH="${TEST_PATH:-$FAKE:$BASE_PATH}" HOME="$RUN/home" BASH_ENV="$RUN/bash_env" \
    FAKE_UNAME_M="$machine" KONDUCTOR_PARAM_INSTALL_DIR="$RUN/bin" GITHUB_ACTION_PATH="$ROOT/integrations/github" \
    KONDUCTOR_PARAM_VERSION=0.1.0 "$@" "${cmd[@]}" 2>&1)" || RC=$?
}
# The action writes to the install dir runner.temp/konductor-bin: its env sets it.
# Here every runner gets KONDUCTOR_PARAM_INSTALL_DIR from the environment, as
# the action's `env:` and the orb's `environment:` give it.

# expect_installed LABEL ARCH: exit 0, both binaries in $RUN/bin, and they are ARCH's.
expect_installed() {
  local label="$1" arch="$2" got
  if [ "$RC" != 0 ]; then
    fail "$label" "exit $RC: $(oneline "$OUT")"
    return
  fi
  got="$("$RUN/bin/konductor" 2>&1 || true) / $("$RUN/bin/locomotive" 2>&1 || true)"
  if [ "$got" = "konductor 0.1.0 $arch / locomotive 0.1.0 $arch" ]; then
    pass "$label"
  else
    fail "$label" "installed binaries say \`$(oneline "$got")\`, expected the $arch build: $(oneline "$OUT")"
  fi
}
# expect_refused LABEL PATTERN: exit 1, the message matches PATTERN, nothing installed.
expect_refused() {
  local label="$1" pattern="$2" left
  left="$(find "$RUN/bin" "$RUN/home" -type f 2>/dev/null | head -n3 || true)"
  if [ "$RC" != 1 ]; then
    fail "$label" "exit $RC, expected 1: $(oneline "$OUT")"
  elif ! grep -Eq -- "$pattern" <<<"$OUT"; then
    fail "$label" "refused, but not for /$pattern/: $(oneline "$OUT")"
  elif [ -n "$left" ] || [ -s "$RUN/bash_env" ]; then
    fail "$label" "refused, but left $(oneline "$left $(cat "$RUN/bash_env")")"
  else
    pass "$label: $(grep -Eo -m1 -- ".{0,50}$pattern.{0,50}" <<<"$OUT")"
  fi
}

for runner in script orb action; do
  run_install "$runner" x86_64 KONDUCTOR_PARAM_BASE_URL="$BASE/good/v0.1.0"
  expect_installed "$runner: installs the x86_64 archive, verified against SHA256SUMS" x86_64
  if [ "$RC" = 0 ] && ! grep -q "$RUN/bin" "$RUN/bash_env"; then
    fail "$runner: PATH for later steps" "\$BASH_ENV does not add $RUN/bin"
  fi
  run_install "$runner" x86_64 KONDUCTOR_PARAM_BASE_URL="$BASE/tampered/v0.1.0"
  expect_refused "$runner: refuses a tampered archive" 'says [0-9a-f]{64}: refusing'
  run_install "$runner" x86_64 KONDUCTOR_PARAM_BASE_URL="$BASE/nosums/v0.1.0/" KONDUCTOR_PARAM_SHA256="$X86_SHA"
  expect_installed "$runner: a pinned sha256 works without SHA256SUMS" x86_64
  run_install "$runner" x86_64 KONDUCTOR_PARAM_BASE_URL="$BASE/good/v0.1.0" KONDUCTOR_PARAM_SHA256="$(printf '0%.0s' {1..64})"
  expect_refused "$runner: refuses a wrong pinned sha256" 'the pinned sha256 says'
done

for m in x86_64:x86_64 amd64:x86_64 aarch64:aarch64 arm64:aarch64; do
  run_install script "${m%%:*}" KONDUCTOR_PARAM_BASE_URL="$BASE/good/v0.1.0"
  expect_installed "uname -m ${m%%:*} picks the ${m#*:} archive" "${m#*:}"
done
run_install action arm64 KONDUCTOR_PARAM_BASE_URL="$BASE/good/v0.1.0"
expect_installed "action: uname -m arm64 picks the aarch64 archive" aarch64
run_install script riscv64 KONDUCTOR_PARAM_BASE_URL="$BASE/good/v0.1.0"
expect_refused "refuses an architecture without a release" 'no Konductor release for architecture `riscv64`'
run_install script x86_64 KONDUCTOR_PARAM_BASE_URL="$BASE/good/v0.1.0" FAKE_UNAME_S=Darwin
expect_refused "refuses a system other than Linux" 'built for Linux, not `Darwin`'

run_install script x86_64 KONDUCTOR_PARAM_BASE_URL="$BASE/nosums/v0.1.0"
expect_refused "refuses a release folder without SHA256SUMS" 'SHA256SUMS`: a release folder needs SHA256SUMS'
run_install script x86_64 KONDUCTOR_PARAM_BASE_URL="$BASE/partial/v0.1.0"
expect_refused "refuses a SHA256SUMS without the archive's line" 'has no line for `konductor-x86_64-unknown-linux-musl.tar.gz`'
run_install script x86_64 KONDUCTOR_PARAM_BASE_URL="$BASE/good/v0.1.0" KONDUCTOR_PARAM_SHA256=not-a-digest
expect_refused "refuses a pinned sha256 that is not a digest" 'sha256 `not-a-digest` is not a SHA-256 digest'
run_install script x86_64 KONDUCTOR_PARAM_BASE_URL="$BASE/missing/v0.1.0"
expect_refused "refuses a release folder that is not there" 'cannot download `http://127.0.0.1:[0-9]+/missing/v0.1.0/konductor-x86_64'

# url: one archive, whatever the machine; SHA256SUMS from its folder.
run_install action arm64 KONDUCTOR_PARAM_URL="$BASE/good/v0.1.0/konductor-x86_64-unknown-linux-musl.tar.gz"
expect_installed "url: installs that archive, verified against its folder's SHA256SUMS" x86_64
run_install orb x86_64 KONDUCTOR_PARAM_URL="$BASE/tampered/v0.1.0/konductor-x86_64-unknown-linux-musl.tar.gz"
expect_refused "url: refuses a tampered archive" 'says [0-9a-f]{64}: refusing'

# The default is the GitHub release of the version (no network: a curl that records the URL).
CURL_LOG="$WORK/curl.log"
: >"$CURL_LOG"
TEST_PATH="$WORK/offline:$FAKE:$BASE_PATH" run_install script aarch64 KONDUCTOR_PARAM_VERSION=v2.3.4 CURL_LOG="$CURL_LOG"
want_url="https://github.com/konductor/konductor/releases/download/v2.3.4/konductor-aarch64-unknown-linux-musl.tar.gz"
if [ "$RC" = 1 ] && [ "$(cat "$CURL_LOG")" = "$want_url" ]; then
  pass "default: downloads $want_url"
else
  fail "default URL" "exit $RC, curl asked for \`$(oneline "$(cat "$CURL_LOG")")\`, expected $want_url"
fi

# Already on PATH: nothing is downloaded.
mkdir -p "$WORK/have"
printf '#!/bin/sh\n' >"$WORK/have/locomotive"
chmod +x "$WORK/have/locomotive"
TEST_PATH="$WORK/have:$FAKE:$BASE_PATH" run_install orb x86_64 KONDUCTOR_PARAM_BASE_URL="$BASE/missing/v0.1.0"
if [ "$RC" = 0 ] && grep -q 'already installed' <<<"$OUT" && [ ! -e "$RUN/bin" ]; then
  pass "orb: skips the download when locomotive is on PATH"
else
  fail "orb: already installed" "exit $RC: $(oneline "$OUT")"
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
